"""
Corpora from the Hugging Face hub (or any data files the `datasets` library reads) to
data/<name>/. The defaults load as plain data files (parquet/jsonl) with current `datasets`,
which no longer runs dataset loading scripts (OSCAR's, OpenWebText2's original ones):

  en  OpenWebText2, parquet copy: Geralt-Targaryen/openwebtext2 (the seed's corpus; this copy
      removed some low-quality samples)
  de  FineWeb-2 deu_Latn: HuggingFaceFW/fineweb-2 (OSCAR 2023 neither loads nor accepts users;
      FineWeb-2 is the closest open Common Crawl corpus)
  es  FineWeb-2 spa_Latn
  zh  webtext2019zh (the seed's Chinese community-QA corpus), jsonl copy inside
      YeungNLP/firefly-pretrain-dataset (file webText2019zh.jsonl); FineWeb-2 cmn_Hani with
      --dataset HuggingFaceFW/fineweb-2 --config cmn_Hani

Everything is an argument: --dataset, --config, --data_files, --split, --text_field,
--revision. Large corpora stream (--streaming 1, the default) and stop after --max_bytes.

    python prepare/hf.py --lang de --max_bytes 2e9            # -> data/hf_de (byte tokens)
    python prepare/hf.py --lang en --tokenizer gpt2 --max_bytes 10e9
    python prepare/hf.py --lang de --dataset json --data_files my.jsonl --name mine
"""
import os
import sys
import time
import argparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import die  # noqa: E402

DEFAULTS = {
    'en': {'dataset': 'Geralt-Targaryen/openwebtext2', 'config': None, 'data_files': None},
    'de': {'dataset': 'HuggingFaceFW/fineweb-2', 'config': 'deu_Latn', 'data_files': None},
    'es': {'dataset': 'HuggingFaceFW/fineweb-2', 'config': 'spa_Latn', 'data_files': None},
    'zh': {'dataset': 'YeungNLP/firefly-pretrain-dataset', 'config': None,
           'data_files': 'webText2019zh.jsonl'},
}
# when --text_field is auto: the first of these columns that exists; a community-QA record
# (title, desc, content) is a question and its answer, joined into one document
TEXT_FIELDS = ['text', 'content', 'raw_content', 'document']
QA_FIELDS = ['title', 'desc', 'content']


def load(args):
    try:
        import datasets
    except ImportError:
        die("the `datasets` package is missing: pip install datasets")
    data_files = args.data_files.split(',') if args.data_files else None
    kwargs = {'split': args.split, 'streaming': bool(args.streaming)}
    if args.revision:
        kwargs['revision'] = args.revision
    if not args.streaming:
        kwargs['num_proc'] = args.num_proc
    try:
        return datasets.load_dataset(args.dataset, args.config, data_files=data_files, **kwargs)
    except Exception as e:  # hub unreachable, unknown name/config/split, unreadable files
        msg = ' '.join(str(e).split())[:300]
        die(f"could not load {args.dataset} (config {args.config}, split {args.split}): "
            f"{type(e).__name__}: {msg}; check the name/--config/--data_files, the network, "
            f"or prepare local files with prepare/text.py")


def pick_field(columns, text_field):
    """The column(s) to read: --text_field, or for auto the first usual text column, or the
    question and answer of a QA record."""
    if text_field != 'auto':
        missing = [f for f in text_field.split(',') if f not in columns]
        if missing:
            die(f"no column {', '.join(missing)} in the dataset (columns: {', '.join(columns)}); "
                f"set --text_field")
        return text_field.split(',')
    qa = [f for f in QA_FIELDS if f in columns]
    if len(qa) >= 2:
        return qa
    for f in TEXT_FIELDS:
        if f in columns:
            return [f]
    die(f"cannot tell which column holds the text (columns: {', '.join(columns)}); "
        f"set --text_field")


def rows(ds, args):
    """The records; a streamed corpus can also fail halfway (network, a corrupt shard)."""
    it = iter(ds)
    while True:
        try:
            row = next(it)
        except StopIteration:
            return
        except Exception as e:
            die(f"reading {args.dataset} failed: {type(e).__name__}: {' '.join(str(e).split())[:300]}; "
                f"rerun (finished work is kept only when complete) or check the data files")
        yield row


def documents(ds, args, stats, source):
    """(name, [paragraphs]) per record, until --max_bytes / --max_docs."""
    fields = None
    for i, row in enumerate(rows(ds, args)):
        if fields is None:
            fields = pick_field(list(row.keys()), args.text_field)
            print(f"reading text from column(s) {', '.join(fields)}")
            stats['text_fields'] = fields
        text = '\n\n'.join(str(row[f]) for f in fields if row.get(f))
        if isinstance(text, bytes):
            text = text.decode('utf-8')
        stats['raw_bytes'] += len(text.encode('utf-8'))
        source['bytes'], source['records'] = stats['raw_bytes'], i + 1
        pars = common.split_paragraphs(text, by_line=True)
        if args.lang_filter:
            kept = [p for p in pars if common.in_language(p, args.lang)]
            stats['language_dropped_bytes'] += sum(len(p.encode('utf-8')) for p in pars) - \
                sum(len(p.encode('utf-8')) for p in kept)
            pars = kept
        if pars:
            yield f"{args.dataset}:{i}", pars
        if (args.max_docs and i + 1 >= args.max_docs) or \
                (args.max_bytes and stats['raw_bytes'] >= args.max_bytes):
            break


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--lang', required=True, help="en, de, es or zh (picks the defaults)")
    parser.add_argument('--dataset', default=None, help="hub name, or json/parquet/text")
    parser.add_argument('--config', default=None, help="dataset config, e.g. deu_Latn")
    parser.add_argument('--data_files', default=None, help="comma-separated files or globs")
    parser.add_argument('--split', default='train')
    parser.add_argument('--revision', default=None)
    parser.add_argument('--text_field', default='auto')
    parser.add_argument('--streaming', type=int, default=1)
    parser.add_argument('--max_bytes', type=float, default=0, help="stop after this much text")
    parser.add_argument('--max_docs', type=int, default=0)
    parser.add_argument('--lang_filter', action='store_true',
                        help="keep only paragraphs detected as --lang")
    parser.add_argument('--dedup', type=int, default=0,
                        help="exact paragraph dedup (hub corpora are deduplicated upstream; "
                             "costs ~50 bytes of RAM per paragraph)")
    common.add_common_args(parser)
    args = parser.parse_args(argv)
    t0 = time.time()
    common.check_choice(args.lang, common.LANGUAGES, 'language')
    common.check_choice(args.tokenizer, common.TOKENIZERS, 'tokenizer')
    if args.dataset is None:  # the documented defaults of this language
        for k, v in DEFAULTS[args.lang].items():
            setattr(args, k, getattr(args, k) or v)
    name = args.name or f"hf_{args.lang}" + ('' if args.tokenizer == 'bytes' else '_'
                                             + args.tokenizer)
    out_dir = os.path.join(args.data_dir, name)
    out_args = common.output_args(args)
    if common.skip_if_done(out_dir, out_args, args.force):
        return
    ds = load(args)
    stats = {'raw_bytes': 0, 'language_dropped_bytes': 0}
    source = {'dataset': args.dataset, 'config': args.config, 'data_files': args.data_files,
              'split': args.split, 'revision': args.revision}
    docs = documents(ds, args, stats, source)
    if args.dedup:
        docs = common.dedup_stream(docs, stats)
    docs = common.split_long(docs, args.max_doc_bytes)
    meta = common.write_dataset(docs, out_dir, tokenizer=args.tokenizer, language=args.lang,
                                args=out_args, sources=[source], stats=stats, seed=args.seed,
                                val_frac=args.val_frac, val_max_tokens=args.val_max_tokens,
                                num_proc=args.num_proc, t0=t0, extra={'source': 'hf'})
    return meta


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    main()
