"""
Built-in offline corpora from Debian/Ubuntu documentation packages (docs/data.md), fetched with
`apt-get download` and `dpkg -x` into .cache/debian/.

    python prepare/debian_docs.py --lang en          # -> data/builtin_en  (byte tokens)
    python prepare/debian_docs.py --lang zh --tokenizer gpt2   # -> data/builtin_zh_gpt2
    python prepare/debian_docs.py --lang de --parallel_only    # -> data/builtin_de_parallel
    python prepare/debian_docs.py --lang zh --manpages         # -> data/builtin_zh_man
    python prepare/debian_docs.py --lang de --packages fortunes-de --name fortunes_de
"""
import os
import re
import sys
import gzip
import zlib
import time
import shutil
import struct
import argparse
import hashlib
import subprocess
import multiprocessing as mp
from html.parser import HTMLParser

if not __package__:  # run as a script: import from the repository root, as prepare.common
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from prepare import common  # noqa: E402
from util import fail  # noqa: E402

# ----------------------------------------------------------------------------- the corpora
# package -> regex of the files to read (matched against the path in the package)
ENGLISH = {  # pre-training: none of these are (translations of) the fine-tuning manuals
    'python3-doc': r'/html/_sources/.*\.txt$',
    'linux-doc': r'/Documentation/(?!translations/).*\.(rst|txt)(\.gz)?$',
    'postgresql-doc': r'/html/[^/]*\.html$', 'perl-doc': r'\.pod$', 'sqlite3-doc': r'\.html$',
    'git-doc': r'/git-doc/[^/]*\.txt$', 'manpages': r'/man/man\d/[^/]*\.gz$',
    'manpages-dev': r'/man/man\d/[^/]*\.gz$', 'sword-text-web': r'\.bzz$',
    'fortunes': r'/games/fortunes/[^/.]+$', 'fortunes-min': r'/games/fortunes/[^/.]+$',
    'jargon-text': r'jargon\.txt\.gz$',
}
# fine-tuning: the same manuals in each language; 'pkg' is the language suffix of package names,
# 'dirs' the language's directory names inside multi-language packages
TARGETS = {
    'de': {'pkg': 'de', 'dirs': ['de-DE', 'de'], 'manpages': 'manpages-de'},
    'es': {'pkg': 'es', 'dirs': ['es-ES', 'es'], 'manpages': 'manpages-es'},
    'zh': {'pkg': 'zh-cn', 'dirs': ['zh-CN', 'zh_CN', 'zh-cn'], 'manpages': 'manpages-zh'},
}

def corpus_packages(lang, manpages=False):
    if lang == 'en':
        return dict(ENGLISH)
    t, pk = TARGETS[lang], TARGETS[lang]['pkg']
    d = '(' + '|'.join(map(re.escape, t['dirs'])) + ')'
    packages = {
        f'libreoffice-help-{pk}': rf'/help/{d}/text/.*\.html$',
        'debian-handbook': rf'/html/{d}/[^/]*\.html$',
        'installation-guide-amd64': rf'/installation-guide-amd64/{d}/[^/]*\.html$',
        f'debian-reference-{pk}': r'/debian-reference/[^/]*\.html$',
        f'maint-guide-{pk}': r'/html/[^/]*\.html$',
    }
    if manpages:
        packages[t['manpages']] = r'/man/[^/]+/man\d/[^/]*\.gz$'
    return packages

def guess_pattern(package):
    """A package of --packages: the known pattern, else text-like files but copyright, changelog."""
    for lang in common.LANGUAGES:
        known = corpus_packages(lang, manpages=True)
        if package in known:
            return known[package]
    if package.startswith('fortunes'):
        return r'/games/fortunes/(.*/)?[^/.]+(\.fortunes)?$'
    return (r'^(?!.*/usr/share/doc/[^/]+/(copyright|changelog)).*\.(html?|txt|rst|pod)(\.gz)?$'
            r'|/man/.*\.gz$')

# ----------------------------------------------------------- fetching: apt-get download, dpkg -x
def run(cmd, cwd=None):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)

def cached_debs(package, debs):
    """The package's .deb files in the cache; apt names them package_version_arch.deb."""
    return sorted(f for f in os.listdir(debs) if f.startswith(package + '_') and f.endswith('.deb'))

def fetch(package, cache):
    """Download and unpack one package (cached); returns its root directory."""
    root, debs = os.path.join(cache, 'root', package), os.path.join(cache, 'debs')
    if os.path.isdir(root):
        return root
    os.makedirs(debs, exist_ok=True)
    if not cached_debs(package, debs):
        r = run(['apt-get', 'download', package], cwd=debs)
        if r.returncode != 0 or not cached_debs(package, debs):
            msg = (r.stderr.strip().splitlines() or ['no output'])[-1]
            fail(f"`apt-get download {package}` failed ({msg}): run `apt-get update` (as root) if "
                 f"the package lists are missing, or leave {package} out with --skip_missing or "
                 f"--packages")
    deb, tmp = os.path.join(debs, cached_debs(package, debs)[-1]), root + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(tmp), exist_ok=True)
    r = run(['dpkg-deb', '-x', deb, tmp])
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        fail(f"`dpkg-deb -x` failed on {package} ({r.stderr.strip().splitlines()[-1:]}): delete "
             f"{deb} and retry")
    os.replace(tmp, root)  # only complete extractions are cached
    return root

def dependencies(package):
    lines = run(['apt-cache', 'depends', package]).stdout.splitlines()
    return [line.split(':', 1)[1].strip() for line in lines
            if line.strip().lstrip('|').startswith('Depends:')]

def package_files(package, pattern, cache):
    """[(path, name)] of the files matching pattern in package (links repeat other files), a
    metapackage followed to its version-specific dependency (python3-doc -> python3.11-doc)."""
    packages, files = [package], []
    for p in packages:
        root = fetch(p, cache)
        paths = (os.path.join(d, f) for d, _, names in os.walk(root) for f in names)
        found = sorted(os.path.relpath(f, root) for f in paths
                       if os.path.isfile(f) and not os.path.islink(f))
        if p == package and all(f.startswith((f'usr/share/doc/{p}/', 'usr/share/lintian/'))
                                for f in found):
            stem = p.split('-')[0].rstrip('0123456789')
            packages += [d for d in dependencies(p) if d.split('-')[0].startswith(stem)]
        files += [(os.path.join(root, f), f'{p}:{f}') for f in found if re.search(pattern, '/' + f)]
    return files

# ----------------------------------- text extraction, a function per format: normalised paragraphs
BLOCK = set('p div br li ul ol dl dt dd table tr td th pre h1 h2 h3 h4 h5 h6 blockquote section '
            'article hr caption body title figcaption main'.split())
SKIP = set('script style head header nav aside footer noscript button select form'.split())
SKIP_CLASS = re.compile(r'\b(navheader|navfooter|toc|breadcrumbs?|navigation|footer)\b')

class TextExtractor(HTMLParser):
    """Visible text of an HTML page, a paragraph per block element, without navigation."""
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pars, self.cur, self.skip_tag, self.skip_depth = [], [], None, 0

    def flush(self):
        self.pars.append(common.normalize(''.join(self.cur)))
        self.cur = []

    def handle_starttag(self, tag, attrs):
        if self.skip_depth:
            self.skip_depth += tag == self.skip_tag
        elif tag in SKIP or (tag in ('div', 'table', 'p', 'ul')
                             and SKIP_CLASS.search(dict(attrs).get('class') or '')):
            self.skip_tag, self.skip_depth = tag, 1
        elif tag in BLOCK:
            self.flush()

    def handle_endtag(self, tag):
        if self.skip_depth:
            self.skip_depth -= tag == self.skip_tag
        elif tag in BLOCK:
            self.flush()

    def handle_data(self, data):
        if not self.skip_depth:
            self.cur.append(data)

def html_paragraphs(text):
    x = TextExtractor()
    x.feed(text)
    x.close()
    x.flush()
    return [p for p in x.pars if p]

MAN_ESCAPES = [(re.compile(a), b) for a, b in [
    (r'\\f(\[[^\]]*\]|\(..|.)', ''), (r'\\s[-+]?\d', ''), (r'\\\*(\[[^\]]*\]|\(..|.)', ''),
    (r'\\\(em', '—'), (r'\\\(en', '–'), (r'\\\(aq', "'"), (r'\\\([lr]q', '"'),
    (r'\\\(bu', '•'), (r'\\\(co', '©'), (r'\\\(..', ''), (r'\\\[[^\]]*\]', ''),
    (r'\\-', '-'), (r'\\e', '\\\\'), (r'\\[ ~0]', ' '), (r'\\[&,/:%|^)]', ''), (r'\\c$', '')]]

def man_unescape(line):
    for rx, rep in MAN_ESCAPES:
        line = rx.sub(rep, line)
    return line

def man_paragraphs(text):
    """roff: requests are dropped or break paragraphs, font macros keep their text."""
    lines = []
    for line in text.splitlines():
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if not line.startswith(('.', "'")):
            lines.append(man_unescape(line))
            continue
        m = re.match(r"[.'](\S+)\s*(.*)", line)
        req, rest = (m.group(1), man_unescape(m.group(2)).replace('"', '')) if m else ('', '')
        if req in ('SH', 'SS'):
            lines += ['', rest, '']
        elif req in ('B', 'I', 'BR', 'IR', 'RB', 'RI', 'BI', 'IB', 'SM', 'SB', 'UR', 'MT'):
            lines.append(rest)
        elif req in ('PP', 'P', 'LP', 'TP', 'IP', 'HP', 'sp', 'RS', 'RE', 'nf', 'fi', 'TH',
                     'EX', 'EE', 'TS', 'TE'):
            lines.append('')
    return common.split_paragraphs('\n'.join(lines))

POD_CODE = re.compile(r'[A-Z]<(?:<+\s+(.*?)\s+>+|([^<>]*))>')

def pod_paragraphs(text):
    out = []
    for block in re.split(r'\n\s*\n', text):
        if block.startswith('='):
            cmd, _, block = block.partition(' ')
            if cmd not in ('=head1', '=head2', '=head3', '=head4', '=item'):
                continue
        for _ in range(3):  # nested formatting codes: B<L<foo>>
            block = POD_CODE.sub(lambda m: (m.group(1) or m.group(2) or '').split('|')[0], block)
        out.append(common.normalize(block))
    return [p for p in out if p]

def sword_paragraphs(path):
    """A SWORD zText module (sword-text-web): .bzs holds (offset, size, usize) per block of the
    zlib-compressed .bzz; a block holds a book in OSIS XML, paragraphs marked by x-p divs."""
    with open(path[:-1] + 's', 'rb') as index_file, open(path, 'rb') as data_file:
        index, data = index_file.read(), data_file.read()
    pars = []
    for off, size, _ in struct.iter_unpack('<III', index[:len(index) // 12 * 12]):
        xml = zlib.decompress(data[off:off + size]).decode('utf-8', errors='replace')
        xml = re.sub(r'<note\b.*?</note>', '', xml, flags=re.S)  # footnotes
        xml = re.sub(r'<(div[^>]*type="x-p"|chapter|title)[^>]*>', '\n\n', xml)
        xml = re.sub(r'</title>', '\n\n', xml)
        pars += common.split_paragraphs(re.sub(r'<[^>]*>', '', xml))
    return pars

def extract(path):
    """Paragraphs of one file, by format."""
    if path.endswith('.bzz'):
        return sword_paragraphs(path)
    with (gzip.open if path.endswith('.gz') else open)(path, 'rb') as f:
        text = f.read().decode('utf-8')  # UnicodeDecodeError: the caller skips the file
    base = path.removesuffix('.gz')
    if base.endswith(('.html', '.htm')):
        return html_paragraphs(text)
    if base.endswith('.pod'):
        return pod_paragraphs(text)
    if '/games/fortunes/' in path:
        return common.split_paragraphs(text, sep=r'\n%\n')
    if '/man/' in path:
        return man_paragraphs(text)
    return common.split_paragraphs(text)

def process_file(job):
    """Worker: extract one file and keep the paragraphs in the target language."""
    path, name, lang, min_bytes = job
    try:
        pars = extract(path)
    except (UnicodeDecodeError, OSError, zlib.error, ValueError):
        return name, [], {'unreadable_files': 1}
    st = {'raw_bytes': sum(len(p.encode('utf-8')) for p in pars), 'language_dropped_bytes': 0,
          'short_dropped_bytes': 0}
    return name, common.keep_paragraphs(pars, lang, st, min_bytes), st

# ----------------------------------------------------------------------------- the corpus
def doc_key(name, lang):
    """A translated page's name with the language tag replaced: the same in every language."""
    t = TARGETS[lang]
    tags = sorted(set(t['dirs'] + [t['pkg']]), key=len, reverse=True)
    rx = r'(?<=[/.:\-])(' + '|'.join(map(re.escape, tags)) + r')(?=[/.:\-]|$)'
    return re.sub(rx, '{L}', name)

def collect_jobs(packages, lang, args):
    """Files to extract as pool jobs, and a sources entry per package that holds them."""
    jobs, sources = [], {}
    for package, pattern in packages.items():
        try:
            files = package_files(package, pattern, args.cache_dir)
        except SystemExit:
            if not args.skip_missing:
                raise
            print(f"skipping {package}: not available", file=sys.stderr)
            continue
        if not files:
            fail(f"package {package} has no files matching {pattern}: its layout differs in this "
                 f"release; leave it out with --packages")
        for path, name in files:  # by the package that holds it (python3.11-doc, not python3-doc)
            pkg = name.split(':', 1)[0]
            if pkg not in sources:  # the corpus is reproducible from the same versions only
                debs = cached_debs(pkg, os.path.join(args.cache_dir, 'debs'))
                version = debs[-1].split('_')[1].replace('%3a', ':') if debs else None
                sources[pkg] = {'package': pkg, 'version': version, 'files': 0,
                                'requested_as': package}
            sources[pkg]['files'] += 1
            jobs.append((path, name, lang, args.min_bytes))
    return jobs, sources

def parallel_corpus(args):
    """--parallel_only: the pages kept in each of de, es and zh, in an order drawn from their
    doc_key: train.py's data_documents then draws the same pages in every language."""
    built = {lang: build_corpus(argparse.Namespace(**dict(vars(args), lang=lang)))
             for lang in TARGETS}
    shared = set.intersection(*({doc_key(n, lang) for n, _ in built[lang][0]} for lang in TARGETS))
    docs, sources, stats = built[args.lang]
    print(f"--parallel_only: {len(shared)} pages are translated into de, es and zh and kept in all")
    rank = {k: hashlib.sha256(f"{args.seed}/{k}".encode()).digest() for k in shared}
    docs = sorted((d for d in docs if doc_key(d[0], args.lang) in shared),
                  key=lambda d: rank[doc_key(d[0], args.lang)])
    return docs, sources, stats

def build_corpus(args):
    """Fetch, extract, language-filter and clean: docs [(name, [paragraphs])], sources, stats."""
    packages = ({p: guess_pattern(p) for p in args.packages.split(',') if p} if args.packages
                else corpus_packages(args.lang, args.manpages))
    jobs, sources = collect_jobs(packages, args.lang, args)
    print(f"extracting {len(jobs)} files from {len(sources)} packages for {args.lang}...")
    with mp.get_context('fork').Pool(args.num_proc) as pool:
        results = list(pool.imap(process_file, jobs, chunksize=8))
    if args.parallel_only:  # pages really translated: this share of their text in the language
        translated = {doc_key(n, args.lang) for n, kept, st in results if st.get('raw_bytes')
                      and sum(len(p.encode('utf-8')) for p in kept)
                      >= args.parallel_min_share * st['raw_bytes']}
        results = [r for r in results if doc_key(r[0], args.lang) in translated]
    stats = dict.fromkeys(['raw_bytes', 'language_dropped_bytes', 'short_dropped_bytes',
                           'unreadable_files'], 0)
    for name, kept, st in results:
        for k, v in st.items():
            stats[k] += v
        src = sources[name.split(':', 1)[0]]
        src['raw_bytes'] = src.get('raw_bytes', 0) + st.get('raw_bytes', 0)
    docs = common.clean_corpus([(name, kept) for name, kept, _ in results if kept],
                               args.boilerplate_docs, stats)
    if not docs:
        fail(f"nothing left for {args.lang} after language filtering and dedup "
             f"({stats['raw_bytes']} bytes extracted): check --packages / --lang")
    for package, src in sources.items():
        src['kept_bytes'] = sum(len(common.doc_text(pars).encode()) for name, pars in docs
                                if name.startswith(package + ':'))
        raw, kept = common.human(src.get('raw_bytes', 0)), common.human(src['kept_bytes'])
        print(f"  {src['package']:28s} {src['files']:6d} files {raw:>6s}B -> {kept:>6s}B")
    return docs, sources, stats

def main(argv=None):
    parser = common.arg_parser(__doc__)
    parser.add_argument('--lang', required=True, help="en (pre-training), de, es or zh")
    parser.add_argument('--packages', default=None, help="comma-separated, not the default ones")
    parser.add_argument('--manpages', action='store_true', help="add translated man pages")
    parser.add_argument('--parallel_only', action='store_true',
                        help="keep only pages translated into all of de, es and zh")
    parser.add_argument('--parallel_min_share', type=float, default=0.5,
                        help="a page is translated if this share of it passes the language filter")
    parser.add_argument('--skip_missing', action='store_true', help="leave out missing packages")
    parser.add_argument('--min_bytes', type=int, default=20, help="drop shorter paragraphs")
    parser.add_argument('--boilerplate_docs', type=int, default=5,
                        help="drop paragraphs found in at least this many documents (0: off)")
    parser.add_argument('--cache_dir', default=os.path.join(common.REPO, '.cache', 'debian'))
    args = common.parse_args(parser, argv)
    t0 = time.time()
    if args.parallel_only and args.lang == 'en':
        fail("--parallel_only selects documents shared by de, es and zh: use it with --lang "
             "de/es/zh")
    if args.packages and not args.name:
        fail("--packages makes a corpus of your own: name it with --name, so that it does not "
             f"replace data/builtin_{args.lang}")
    # options that change the corpus change the default name, so builtin_<lang> stays the default
    out_dir, out_args = common.output_dir(args, f"builtin_{args.lang}" + '_man' * args.manpages
                                          + '_parallel' * args.parallel_only)
    if out_dir is None:
        return
    for tool in ('apt-get', 'apt-cache', 'dpkg-deb'):
        if shutil.which(tool) is None:
            fail(f"{tool} not found: the built-in corpora need Debian/Ubuntu's apt; elsewhere use "
                 f"prepare/text.py --input FILES or prepare/hf.py")
    docs, sources, stats = parallel_corpus(args) if args.parallel_only else build_corpus(args)
    common.write(docs, out_dir, out_args, args, t0, 'debian_docs', stats,
                 ordered=args.parallel_only, sources=list(sources.values()))

if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    main()
