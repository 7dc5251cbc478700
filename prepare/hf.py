"""
Corpora from the Hugging Face hub (or any data files `datasets` reads) to data/<name>/, by
default (docs/data.md): en Geralt-Targaryen/openwebtext2, de and es HuggingFaceFW/fineweb-2,
zh YeungNLP/firefly-pretrain-dataset. Read at one commit (--revision, else the current one); the
records read are kept in data/<name>/.download/, so that a rerun after an interruption goes on.

    python prepare/hf.py --lang de --max_bytes 2e9            # -> data/hf_de (byte tokens)
    python prepare/hf.py --lang en --tokenizer gpt2 --max_bytes 10e9
    python prepare/hf.py --lang de --dataset json --data_files my.jsonl --name mine
"""
import os
import sys
import json
import time
import queue
import shutil
import signal
import itertools
import threading

if not __package__:  # run as a script: import from the repository root, as prepare.common
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from prepare import common  # noqa: E402
from util import atomic_write_text, fail  # noqa: E402

DEFAULTS = {
    'en': {'dataset': 'Geralt-Targaryen/openwebtext2'},
    'de': {'dataset': 'HuggingFaceFW/fineweb-2', 'config': 'deu_Latn'},
    'es': {'dataset': 'HuggingFaceFW/fineweb-2', 'config': 'spa_Latn'},
    'zh': {'dataset': 'YeungNLP/firefly-pretrain-dataset', 'data_files': 'webText2019zh.jsonl'},
}
# when --text_field is auto: the first of these columns that exists; a community-QA record
# (title, desc, content) is a question and its answer, joined into one document
TEXT_FIELDS = ['text', 'content', 'raw_content', 'document']
QA_FIELDS = ['title', 'desc', 'content']
LOCAL_BUILDERS = ('json', 'parquet', 'csv', 'text', 'arrow')  # data files, no hub revision
SHARD_BYTES = 64 << 20  # a shard of .download/: the most a restart reads again

def one_line(e):
    return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"

def load(args):
    try:
        import datasets
    except ImportError:
        fail("the `datasets` package is missing: pip install datasets")
    data_files = args.data_files.split(',') if args.data_files else None
    try:
        return datasets.load_dataset(args.dataset, args.config, data_files=data_files,
                                     split=args.split, streaming=bool(args.streaming),
                                     revision=args.revision or None,
                                     num_proc=None if args.streaming else args.num_proc)
    except Exception as e:  # hub unreachable, unknown name/config/split, unreadable files
        fail(f"could not load {args.dataset} (config {args.config}, split {args.split}): "
             f"{one_line(e)}; check the name/--config/--data_files, the network, or prepare "
             f"local files with prepare/text.py")

def pick_field(columns, text_field):
    """--text_field's columns, or for auto those of a QA record, else the first text column."""
    if text_field != 'auto':
        missing = [f for f in text_field.split(',') if f not in columns]
        if missing:
            fail(f"no column {', '.join(missing)} in the dataset (columns: {', '.join(columns)}); "
                 f"set --text_field")
        return text_field.split(',')
    qa = [f for f in QA_FIELDS if f in columns]
    if len(qa) >= 2:
        return qa
    for f in TEXT_FIELDS:
        if f in columns:
            return [f]
    fail(f"cannot tell which column holds the text (columns: {', '.join(columns)}); "
         f"set --text_field")

def pin_revision(args):
    """The commit to read a hub dataset at: --revision, else its current one (then recorded)."""
    if args.revision or args.dataset in LOCAL_BUILDERS or os.path.exists(args.dataset):
        return args.revision
    try:
        from huggingface_hub import HfApi
        return HfApi().dataset_info(args.dataset).sha
    except Exception as e:  # offline, unknown or gated dataset
        fail(f"could not look up the current revision of {args.dataset} ({type(e).__name__}): "
             f"check the name and the network, or pass --revision")

def rows(ds, args):
    """The records; a streamed corpus can also fail halfway (network, a corrupt shard)."""
    try:
        yield from ds
    except Exception as e:
        fail(f"reading {args.dataset} failed: {one_line(e)}; rerun (finished work is kept only "
             f"when complete) or check the data files")

class Download:
    """The records read so far, in cache/NNNNN.jsonl shards (text columns only), and in
    cache/state.json the corpus, its revision, the shards, their records and the stream's state."""

    def __init__(self, cache, source):
        self.cache, self.state_path = cache, os.path.join(cache, 'state.json')
        try:
            with open(self.state_path) as f:
                self.state = json.load(f)
        except (OSError, ValueError):
            self.state = None
        if not self.state or self.state['source'] != source:  # none, or another corpus's
            shutil.rmtree(cache, ignore_errors=True)
            self.state = dict(source=source, revision=None, shards=0, records=0, stream=None)
        os.makedirs(cache, exist_ok=True)

    def shard(self, i):
        return os.path.join(self.cache, f'{i:05d}.jsonl')

    def replay(self):
        for i in range(self.state['shards']):
            with open(self.shard(i), encoding='utf-8') as f:
                yield from map(json.loads, f)

    def add(self, lines, records, stream_state):
        """Another shard, then the state that counts it (a kill in between: written again)."""
        atomic_write_text(self.shard(self.state['shards']), ''.join(lines))
        self.state.update(shards=self.state['shards'] + 1, records=records, stream=stream_state)
        common.atomic_write_json(self.state_path, self.state)

def stream_rows(ds, args, download):
    """The records of the last run's download, then the stream from where it stopped, kept."""
    yield from download.replay()
    skip = n = download.state['records']
    if n and download.state['stream'] is not None and hasattr(ds, 'load_state_dict'):
        ds.load_state_dict(download.state['stream'])  # a streamed dataset seeks, reading nothing
        skip = 0
    fields, lines, size = None, [], 0
    for row in itertools.islice(rows(ds, args), skip, None):
        if fields is None:  # only the text columns are kept
            fields = pick_field(list(row.keys()), args.text_field)
        row = {f: row[f] if isinstance(row[f], (str, type(None))) else str(row[f])
               for f in fields if f in row}
        n += 1
        lines.append(json.dumps(row, ensure_ascii=False) + '\n')
        size += len(lines[-1])
        if size >= SHARD_BYTES:
            download.add(lines, n, ds.state_dict() if hasattr(ds, 'state_dict') else None)
            lines, size = [], 0
        yield row

def read_ahead(items, n=4096):
    """items, read up to n ahead by a thread (it downloads while the processes tokenize); its
    errors, fail's one line too, are raised here."""
    q, end = queue.Queue(n), object()

    def work():
        try:
            for item in items:
                q.put(item)
            q.put(end)
        except BaseException as e:
            q.put(e)
    threading.Thread(target=work, daemon=True).start()
    while (item := q.get()) is not end:
        if isinstance(item, BaseException):
            raise item
        yield item

def documents(ds, args, stats, source, download):
    """(name, [paragraphs]) per record, a line a paragraph, until --max_bytes / --max_docs; a
    bar on a terminal, else a line every --progress_mb MB."""
    from tqdm import tqdm
    bar = tqdm(unit='B', unit_scale=True, desc='reading', total=args.max_bytes or None,
               mininterval=2, disable=not sys.stderr.isatty())
    fields, t0, next_line = None, time.time(), 0
    for i, row in enumerate(read_ahead(stream_rows(ds, args, download))):
        if fields is None:
            fields = pick_field(list(row.keys()), args.text_field)
            print(f"reading text from column(s) {', '.join(fields)}")
            stats['text_fields'] = fields
        text = '\n\n'.join(str(row[f]) for f in fields if row.get(f))
        nbytes = len(text.encode('utf-8'))
        stats['raw_bytes'] += nbytes
        source['bytes'], source['records'] = stats['raw_bytes'], i + 1
        bar.update(nbytes)
        if bar.disable and args.progress_mb > 0 and stats['raw_bytes'] >= next_line:
            next_line = stats['raw_bytes'] + args.progress_mb * 1e6
            of = f" of {args.max_bytes / 1e6:,.0f} MB" if args.max_bytes else ''
            print(f"read {stats['raw_bytes'] / 1e6:,.1f} MB{of}, {i + 1:,} records, "
                  f"{stats['raw_bytes'] / 1e6 / max(time.time() - t0, 1e-9):.1f} MB/s")
        pars = common.keep_paragraphs(common.split_paragraphs(text, sep=r'\n'),
                                      args.lang if args.lang_filter else None, stats)
        if pars:
            yield f"{args.dataset}:{i}", pars
        if (args.max_docs and i + 1 >= args.max_docs) or \
                (args.max_bytes and stats['raw_bytes'] >= args.max_bytes):
            break

def main(argv=None):
    parser = common.arg_parser(__doc__)
    parser.add_argument('--lang', required=True, help="en, de, es or zh (picks the defaults)")
    parser.add_argument('--dataset', default=None, help="hub name, or json/parquet/text")
    parser.add_argument('--config', default=None, help="dataset config, e.g. deu_Latn")
    parser.add_argument('--data_files', default=None, help="comma-separated files or globs")
    parser.add_argument('--split', default='train')
    parser.add_argument('--revision', default=None, help="the dataset's commit (default: current)")
    parser.add_argument('--text_field', default='auto')
    parser.add_argument('--streaming', type=int, default=1)
    parser.add_argument('--max_bytes', type=float, default=0, help="stop after this much text")
    parser.add_argument('--max_docs', type=int, default=0)
    parser.add_argument('--lang_filter', action='store_true', help="keep --lang's paragraphs")
    parser.add_argument('--dedup', type=int, default=0,
                        help="exact paragraph dedup (~50 bytes of memory a paragraph)")
    parser.add_argument('--progress_mb', type=float, default=100,
                        help="off a terminal, a progress line every this many MB read")
    args = common.parse_args(parser, argv)
    t0 = time.time()
    if args.dataset is None:  # the documented defaults of this language
        for k, v in DEFAULTS[args.lang].items():
            setattr(args, k, getattr(args, k) or v)
    out_dir, out_args = common.output_dir(args, f"hf_{args.lang}")
    if out_dir is None:
        return
    source = {k: vars(args)[k] for k in ('dataset', 'config', 'data_files', 'split', 'revision')}
    download = Download(os.path.join(out_dir, '.download'),
                        dict(source, text_field=args.text_field))
    # a restart reads at the commit its download began with, not at the hub's newest
    download.state['revision'] = download.state['revision'] or pin_revision(args)
    args.revision = source['revision'] = download.state['revision']
    if download.state['records']:
        print(f"continuing the download: {download.state['records']:,} records kept in "
              f"{download.cache}")
    stats = {'raw_bytes': 0, 'language_dropped_bytes': 0}
    docs = documents(load(args), args, stats, source, download)
    meta = common.write(docs, out_dir, out_args, args, t0, 'hf', stats, sources=[source])
    shutil.rmtree(download.cache, ignore_errors=True)  # in train.bin and val.bin now
    return meta

if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C: temp files removed
    try:
        main()
    except KeyboardInterrupt:
        fail("interrupted: the records read so far are kept; the same command continues from them")
