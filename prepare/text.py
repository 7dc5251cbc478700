"""
Local UTF-8 text to data/<name>/: .txt files (a document each, cut at paragraphs if long),
.jsonl files (a document a line, text in --text_field), or directories of them (sorted).

    python prepare/text.py --input notes.txt --lang de --name notes_de
    python prepare/text.py --input corpus/ --lang zh --text_field content --tokenizer gpt2
    python prepare/text.py --input mixed.txt --lang de --lang_filter   # German paragraphs only
"""
import os
import sys
import json
import time

if not __package__:  # run as a script: import from the repository root, as prepare.common
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from prepare import common  # noqa: E402
from util import fail  # noqa: E402

EXTENSIONS = ('.txt', '.jsonl')

def input_files(paths):
    files = []
    for path in paths:
        if os.path.isdir(path):
            for dirpath, _, names in sorted(os.walk(path)):
                files += [os.path.join(dirpath, n) for n in sorted(names) if n.endswith(EXTENSIONS)]
        elif os.path.isfile(path):
            if not path.endswith(EXTENSIONS):
                fail(f"{path}: unsupported file type; give .txt or .jsonl files (or a directory)")
            files.append(path)
        else:
            fail(f"{path} does not exist: give a .txt or .jsonl file or a directory of them")
    if not files:
        fail(f"no .txt or .jsonl files under {', '.join(paths)}")
    return files

def jsonl_text(line, field, where):
    """The text of one JSON record: one field, or several joined (e.g. title,content)."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        fail(f"{where}: not valid JSON ({e}); give one JSON object per line")
    if not isinstance(obj, dict):
        fail(f"{where}: expected a JSON object per line")
    for f in field.split(','):
        if f not in obj:
            fail(f"{where}: no field {f!r} (fields: {', '.join(obj)}); set --text_field")
    return '\n\n'.join(str(obj[f]) for f in field.split(',') if obj[f] is not None)

def read_documents(files, text_field, stats):
    """(name, paragraphs) of each document, read lazily so that memory stays flat."""
    for path in files:
        try:
            with open(path, encoding='utf-8') as f:
                docs = [(path, f.read())] if path.endswith('.txt') else (
                    (f"{path}:{i}", jsonl_text(line, text_field, f"{path}:{i}"))
                    for i, line in enumerate(f, 1) if line.strip())
                for name, text in docs:
                    stats['raw_bytes'] += len(text.encode('utf-8'))
                    yield name, common.split_paragraphs(text)
        except UnicodeDecodeError as e:
            fail(f"cannot read {path}: not UTF-8 ({e.reason} at byte {e.start}); convert it, "
                 f"e.g. iconv -t UTF-8")
        except OSError as e:
            fail(f"cannot read {path}: {e.strerror}; check the path and its permissions")

def main(argv=None):
    parser = common.arg_parser(__doc__)
    parser.add_argument('--input', nargs='+', required=True, help=".txt/.jsonl files or dirs")
    parser.add_argument('--lang', required=True, help="ISO code of the text, e.g. en de es zh")
    parser.add_argument('--text_field', default='text',
                        help="JSON field(s) holding the text; comma-separated ones are joined")
    parser.add_argument('--lang_filter', action='store_true', help="keep --lang's paragraphs")
    parser.add_argument('--dedup', type=int, default=1, help="exact paragraph dedup (1: on)")
    parser.add_argument('--min_bytes', type=int, default=0, help="drop shorter paragraphs")
    args = common.parse_args(parser, argv, check_lang=False)
    t0 = time.time()
    if args.lang_filter:
        common.check_choice(args.lang, common.LANGUAGES, 'language for --lang_filter')
    files = input_files(args.input)
    # skip-if-done also needs the inputs unchanged: their sizes and times are part of the key
    out_dir, out_args = common.output_dir(
        args, os.path.splitext(os.path.basename(os.path.normpath(args.input[0])))[0],
        input=[os.path.abspath(p) for p in args.input],
        input_files={os.path.abspath(f): [os.path.getsize(f), int(os.path.getmtime(f))]
                     for f in files})
    if out_dir is None:
        return
    stats = {'raw_bytes': 0, 'short_dropped_bytes': 0, 'language_dropped_bytes': 0}
    lang = args.lang if args.lang_filter else None  # documents left empty vanish in split_long
    docs = ((name, common.keep_paragraphs(pars, lang, stats, args.min_bytes))
            for name, pars in read_documents(files, args.text_field, stats))
    sources = [{'path': os.path.abspath(f), 'bytes': os.path.getsize(f)} for f in files]
    return common.write(docs, out_dir, out_args, args, t0, 'text', stats, sources=sources)

if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    main()
