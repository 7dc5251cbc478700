"""Shared fixtures: tiny byte-level corpora written in the data contract of docs/contracts.md, and a
helper that runs the repository's scripts as a user would (a subprocess from the repo root)."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOT = 256


def toy_text(rng, words, n_bytes):
    """Documents of random words from a small vocabulary, separated by end-of-text ids."""
    out = []
    while len(out) < n_bytes:
        doc = b' '.join(words[i] for i in rng.integers(len(words), size=rng.integers(20, 80)))
        out.extend(doc + b'.')
        out.append(EOT)
    return np.array(out[:n_bytes], dtype=np.uint16)


def write_dataset(data_dir, name, language, words, n_train, n_val, seed=0, tokenizer='bytes'):
    rng = np.random.default_rng(seed)
    d = os.path.join(data_dir, name)
    os.makedirs(d, exist_ok=True)
    splits = {}
    for split, n in (('train', n_train), ('val', n_val)):
        toks = toy_text(rng, words, n)
        toks.tofile(os.path.join(d, f'{split}.bin'))
        splits[split] = dict(tokens=len(toks), bytes=int((toks != EOT).sum()),
                             documents=int((toks == EOT).sum()))
    meta = dict(tokenizer=tokenizer, vocab_size=257 if tokenizer == 'bytes' else 50257,
                eot_token=EOT if tokenizer == 'bytes' else 50256, language=language,
                splits=splits, sources=['tests/conftest.py'], seed=seed)
    with open(os.path.join(d, 'meta.json'), 'w') as f:
        json.dump(meta, f)


EN = [w.encode() for w in 'the of and to in is that for it with as was on be at by this house water'.split()]
# German shares some words and most letters with English: pre-training on toy_en helps toy_de
DE = [w.encode() for w in 'der die und in den von zu das mit sich des auf ist im haus wasser the'.split()]


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('data'))
    write_dataset(d, 'toy_en', 'en', EN, 300_000, 20_000, seed=1)
    write_dataset(d, 'toy_de', 'de', DE, 100_000, 20_000, seed=2)
    write_dataset(d, 'toy_gpt2', 'de', DE, 20_000, 5_000, seed=3, tokenizer='gpt2')
    return d


TINY = ['--device=cpu', '--n_layer=2', '--n_head=2', '--n_embd=64', '--block_size=64',
        '--batch_size=8', '--eval_tokens=4096', '--warmup_iters=10', '--log_interval=0',
        '--learning_rate=3e-3']


def run(script, *args, check=True, env=None, timeout=600):
    """Run one of the repository's scripts from the repo root; return the CompletedProcess."""
    p = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True,
                       env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def read_log(out_dir):
    with open(os.path.join(out_dir, 'log.json')) as f:
        return json.load(f)


def evals_without_time(log):
    """A run's evaluations less their wall-clock time: what a resumed run must repeat bit for bit."""
    return [{k: v for k, v in e.items() if k != 'elapsed_s'} for e in log['evals']]


def wait_for_evals(out_dir, n, timeout=120):
    """Until the run writing out_dir has logged n evaluations (to kill it mid-run)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if len(read_log(out_dir)['evals']) >= n:
                return
        except (FileNotFoundError, ValueError):
            pass  # not written yet
        time.sleep(0.02)
    raise AssertionError(f"{out_dir}: fewer than {n} evaluations after {timeout}s")
