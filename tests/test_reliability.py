"""Faults injected the way a user meets them (issue 13): bad inputs, a full disk, kills during
writes, Ctrl-C, two sweeps on one out_dir, a corrupt checkpoint, a missing dataset. Each asserts
the one-line error, the exit code, the files left, and that earlier good artifacts are unchanged."""

import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import DE, EN, ROOT, read_log, run, wait_for_evals, write_dataset
from test_sweep import write_sweep_config

# one thread each: on a loaded machine two threads that spin-wait for each other run 100x slower
ENV = dict(os.environ, OMP_NUM_THREADS='1')
# smaller than conftest's TINY: these tests are about what is left on disk, not about learning
SMALL = ['--device=cpu', '--n_layer=1', '--n_head=2', '--n_embd=32', '--block_size=32',
         '--batch_size=4', '--eval_tokens=1024', '--warmup_iters=5', '--log_interval=0']


def one_line(stderr, contains):
    """The last line of stderr (a sweep's progress bar may come before it) is the error, and
    nothing else is an error or a traceback."""
    lines = [l for l in stderr.replace('\r', '\n').splitlines() if l.strip()]
    assert lines and lines[-1].startswith('error: ') and contains in lines[-1], stderr
    assert 'Traceback' not in stderr and sum(l.startswith('error') for l in lines) == 1, stderr
    return lines[-1]


def files(d):
    """Every file under d with its bytes: 'byte-identical' made checkable."""
    out = {}
    for path in sorted(glob.glob(os.path.join(str(d), '**', '*'), recursive=True)):
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                out[os.path.relpath(path, d)] = f.read()
    return out


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """A tiny data_dir and a short finished pre-training run in it."""
    root = tmp_path_factory.mktemp('rel')
    data = str(root / 'data')
    write_dataset(data, 'toy_en', 'en', EN, 20_000, 4_000, seed=1)
    write_dataset(data, 'toy_de', 'de', DE, 10_000, 4_000, seed=2)
    out = str(root / 'pt')
    run('train.py', *SMALL, f'--data_dir={data}', '--dataset=toy_en', '--max_iters=10',
        '--eval_interval=5', f'--out_dir={out}', env=ENV)
    return data, out


# --- bad inputs ------------------------------------------------------------------------------
# Each case runs train.py or sample.py as sweep.py runs it without GPUs, in a fork of one process
# that has imported torch (sweep.ForkedRun): 17 cases cost one interpreter start-up, not 17.
DRIVER = r'''
import json, os, sys
sys.argv = ['sweep.py']
import sweep
sweep.preload()
codes = []
for args, log in json.loads(os.environ['CASES']):
    with open(log, 'w') as out:
        codes.append(sweep.ForkedRun(args, out, dict(os.environ)).wait())
print(json.dumps(codes))
'''


def bad_data(data, name, edit):
    """A copy of toy_de with one fault."""
    d = os.path.join(data, name)
    if not os.path.exists(d):
        shutil.copytree(os.path.join(data, 'toy_de'), d)
        edit(d)
    return name


def truncate(path, n=2000):
    with open(path, 'r+b') as f:
        f.truncate(n)


def edit_meta(d, change):
    with open(os.path.join(d, 'meta.json')) as f:
        meta = json.load(f)
    change(meta)
    with open(os.path.join(d, 'meta.json'), 'w') as f:
        json.dump(meta, f)


def test_bad_inputs_fail_with_one_line_and_leave_nothing(small, tmp_path):
    data, pt = small
    big_ids = np.fromfile(os.path.join(data, 'toy_de', 'train.bin'), dtype=np.uint16)
    big_ids[1000] = 300  # >= the byte vocabulary's 257
    bad = {
        'odd': bad_data(data, 'odd', lambda d: open(os.path.join(d, 'train.bin'), 'ab').write(b'x')),
        'malformed': bad_data(data, 'malformed', lambda d: open(os.path.join(d, 'meta.json'), 'w').write('{"tok')),
        'incomplete': bad_data(data, 'incomplete', lambda d: edit_meta(d, lambda m: m.pop('vocab_size'))),
        'empty_val': bad_data(data, 'empty_val', lambda d: open(os.path.join(d, 'val.bin'), 'wb').close()),
        'big_ids': bad_data(data, 'big_ids', lambda d: big_ids.tofile(os.path.join(d, 'train.bin'))),
    }
    # a truncated best.pt (fine-tuning from it, sampling it) and a truncated ckpt.pt (resuming it)
    broken = tmp_path / 'broken'
    shutil.copytree(pt, broken)
    truncate(broken / 'best.pt')
    truncate(broken / 'ckpt.pt')
    with open(broken / 'log.json', 'w') as f:
        json.dump(dict(read_log(pt), status='running'), f)  # killed: resumable
    occupied = tmp_path / 'a_file'
    occupied.write_text('not a directory')
    before = files(tmp_path)
    base = [*SMALL, f'--data_dir={data}', '--max_iters=10', '--eval_interval=5']
    new = str(tmp_path / 'new')  # must not be created by any case
    train = [
        ([f'--dataset={bad["odd"]}'], 'odd length'),
        ([f'--dataset={bad["malformed"]}'], 'meta.json is malformed'),
        ([f'--dataset={bad["incomplete"]}'], 'meta.json is malformed'),
        ([f'--dataset={bad["empty_val"]}'], 'val.bin is empty'),
        ([f'--dataset={bad["big_ids"]}'], 'holds token id 300'),
        (['--dataset=toy_de', f'--init_from={broken}/best.pt'], 'is unreadable'),
        (['--dataset=toy_en', '--eval_interval=0'], 'eval_interval=0 must be at least 1'),
        (['--dataset=toy_en', '--batch_size=0'], 'batch_size=0 must be at least 1'),
        (['--dataset=toy_en', '--n_head=3'], 'n_head=3 does not divide n_embd=32'),
        (['--dataset=toy_en', '--learning_rate=-0.001'], 'must not be negative'),
        (['--dataset=toy_en', '--eval_tokens=10'], 'raise --eval_tokens to at least 32'),
        (['--dataset=toy_en', '--device=cuda'], 'use --device=cpu'),
    ]
    cases = [('train.py', [*base, *args, f'--out_dir={new}'], want) for args, want in train
             if not (torch.cuda.is_available() and '--device=cuda' in args)]
    cases += [
        ('train.py', [*base, '--init_from=resume', f'--out_dir={broken}'], 'is unreadable'),
        ('train.py', [*base, '--dataset=toy_en', f'--out_dir={occupied}'], 'cannot write to out_dir'),
        ('train.py', [*base, '--dataset=toy_en', f'--out_dir={occupied}/sub'], 'cannot write to out_dir'),
        ('sample.py', [f'--out_dir={broken}', '--device=cpu'], 'is unreadable'),
        ('sample.py', [f'--out_dir={pt}', '--device=cpu', f'--start=FILE:{tmp_path}/nope.txt'],
         'cannot read the prompt file'),
    ]
    logs = [str(tmp_path / f'output{i}.txt') for i in range(len(cases))]
    env = dict(ENV, CASES=json.dumps([([s, *a], l) for (s, a, _), l in zip(cases, logs)]))
    p = subprocess.run([sys.executable, '-c', DRIVER], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    codes = json.loads(p.stdout.strip().splitlines()[-1])
    for (script, args, want), code, log in zip(cases, codes, logs):
        with open(log) as f:
            output = f.read()  # stdout and stderr: the error line must be all there is
        assert code == 1, (args, output)
        assert len(output.strip().splitlines()) == 1, (args, output)
        one_line(output, want)
    assert not os.path.exists(new)
    after = files(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith('output')} == before


# --- writes: a full disk, kills mid-write ----------------------------------------------------

FULL_DISK = r'''
import errno, os, runpy, shutil, sys
import torch
save, calls = torch.save, [0]
def full(obj, f, *a, **k):
    calls[0] += 1
    if calls[0] == int(os.environ['FAIL_AT']):  # keep what a good run had written until now
        shutil.copytree(os.environ['OUT'], os.environ['OUT'] + '.before')
        f.write(b'\0' * 4096)  # a partial temp file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return save(obj, f, *a, **k)
torch.save = full
sys.argv = ['train.py', *sys.argv[1:]]
runpy.run_path('train.py', run_name='__main__')
'''


def test_a_full_disk_fails_the_run_and_keeps_the_last_checkpoint(small, tmp_path):
    data, _ = small
    out = str(tmp_path / 'full')
    env = dict(ENV, FAIL_AT='5', OUT=out)  # evals at 0, 1, 2: the 5th save is the 3rd best.pt
    p = subprocess.run([sys.executable, '-c', FULL_DISK, *SMALL, f'--data_dir={data}', '--dataset=toy_en',
                        '--max_iters=20', '--eval_interval=8', f'--out_dir={out}'],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 1
    one_line(p.stderr, 'No space left on device: free space')
    before, after = files(out + '.before'), files(out)
    assert sorted(after) == ['best.pt', 'ckpt.pt', 'log.json']  # no temp file left behind
    assert after['best.pt'] == before['best.pt'] and after['ckpt.pt'] == before['ckpt.pt']
    log = json.loads(after['log.json'])
    assert log['status'] == 'failed' and 'No space left' in log['error']
    assert torch.load(os.path.join(out, 'ckpt.pt'), weights_only=False)['iter'] == 1


def dead_pid():
    p = subprocess.Popen(['true'])
    p.wait()
    return p.pid


def test_kills_during_writes_leave_readable_files_and_no_temp_files(small, tmp_path):
    data, _ = small
    out = tmp_path / 'killed'
    # an evaluation and writes every step; long enough that no run ends before its kill
    args = [*SMALL, f'--data_dir={data}', '--dataset=toy_en', '--n_embd=64', '--max_iters=600',
            '--eval_interval=1', f'--out_dir={out}']
    rng = random.Random(0)
    for trial in range(2):
        p = subprocess.Popen([sys.executable, 'train.py', *args, *(['--init_from=resume'] if trial else [])],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        wait_for_evals(out, len(read_log(out)['evals']) + 3 if trial else 3)
        time.sleep(rng.random() * 0.5)
        p.send_signal(signal.SIGKILL)
        p.wait()
        for f in ('ckpt.pt', 'best.pt'):
            torch.load(out / f, weights_only=False)  # whole, whatever the moment of the kill
        assert read_log(out)['status'] == 'running'
    # what a killed writer leaves: its temp files; a live writer's (this process's) are kept
    dead, live = out / f'ckpt.pt.{dead_pid()}.tmp', out / f'ckpt.pt.{os.getpid()}.tmp'
    dead.write_bytes(b'\0' * 1000)
    live.write_bytes(b'\0' * 1000)
    run('train.py', '--init_from=resume', f'--out_dir={out}', '--device=cpu', env=ENV)
    assert not dead.exists() and live.exists()
    assert sorted(os.listdir(out)) == sorted(['best.pt', 'ckpt.pt', 'log.json', live.name])
    assert read_log(out)['status'] == 'done' and len(read_log(out)['evals']) == 601


# --- resume: Ctrl-C, thread count, ignored overrides, a finished run --------------------------

def test_resume_after_ctrl_c_with_other_threads_and_overrides_is_bit_exact(small, tmp_path):
    data, _ = small
    args = [*SMALL, f'--data_dir={data}', '--dataset=toy_en', '--n_embd=64', '--max_iters=100',
            '--eval_interval=10', '--eval_dense=False']
    # the run's threads are 1 (ENV), so the part resumed with 2 runs at the speed of the rest;
    # the uninterrupted twin runs meanwhile
    a = subprocess.Popen([sys.executable, 'train.py', *args, f'--out_dir={tmp_path / "a"}'], cwd=ROOT,
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = tmp_path / 'b'
    p = subprocess.Popen([sys.executable, 'train.py', *args, f'--out_dir={out}'], cwd=ROOT, env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_evals(out, 4)
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 130
    one_line(p.stderr.read(), 'interrupted by SIGINT: continue the run with --init_from=resume')
    assert read_log(out)['status'] == 'running' and not glob.glob(str(out / '*.tmp'))
    # resumed with two threads and two overrides: the run goes on as it was, and says so
    r = run('train.py', '--init_from=resume', f'--out_dir={out}', '--device=cpu', '--max_iters=999',
            '--learning_rate=0.5', env=dict(os.environ, OMP_NUM_THREADS='2'))
    assert 'ignored: learning_rate=0.5 (the run has 0.001), max_iters=999 (the run has 100)' in r.stdout
    assert "resume: the run's 1 thread(s), not 2, so that it continues bit for bit" in r.stdout
    assert a.wait(timeout=300) == 0
    a, b = read_log(tmp_path / 'a'), read_log(out)
    assert b['status'] == 'done'
    strip = ('elapsed_s',)
    assert [{k: v for k, v in e.items() if k not in strip} for e in a['evals']] == \
           [{k: v for k, v in e.items() if k not in strip} for e in b['evals']]  # bit for bit
    # a finished run resumed again is left as it is
    finished = files(out)
    r = run('train.py', '--init_from=resume', f'--out_dir={out}', '--device=cpu', env=ENV)
    assert 'the run is finished (done)' in r.stdout and files(out) == finished


def test_redirected_log_shows_progress_and_sigterm_at_a_random_eval_resumes_exactly(small,
                                                                                    tmp_path):
    """Output redirected to a file, as by a sweep or SLURM, without PYTHONUNBUFFERED: train.txt
    shows each line while the run runs. SIGTERM (pre-emption) at a random evaluation writes ckpt.pt
    where the run is, so the resumed run repeats less than one evaluation interval, and ends bit
    for bit as an uninterrupted one."""
    data, _ = small
    args = [*SMALL, f'--data_dir={data}', '--dataset=toy_en', '--max_iters=100',
            '--eval_interval=10', '--eval_dense=False', '--log_interval=5']
    env = {k: v for k, v in ENV.items() if k != 'PYTHONUNBUFFERED'}
    a = subprocess.Popen([sys.executable, 'train.py', *args, f'--out_dir={tmp_path / "a"}'],
                         cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out, txt = tmp_path / 'b', tmp_path / 'train.txt'
    with open(txt, 'w') as f:
        p = subprocess.Popen([sys.executable, 'train.py', *args, f'--out_dir={out}'], cwd=ROOT,
                             env=env, stdout=f, stderr=subprocess.STDOUT)
    wait_for_evals(out, random.randint(2, 7))
    shown = txt.read_text()
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 128 + signal.SIGTERM
    lines = [l for l in shown.splitlines() if l.startswith('iter ') and 'loss' in l]
    assert lines and all(' ms/iter, ' in l and ' tok/s, ' in l and '% done, ETA ' in l
                         for l in lines), shown
    assert 'MFU' not in shown  # no peak to measure against on the CPU
    killed = read_log(out)
    it = torch.load(out / 'ckpt.pt', weights_only=False)['iter']
    last = killed['evals'][-1]['iter']
    assert last <= it < last + 10  # less than an interval lost
    assert txt.read_text().rstrip().endswith(
        f'error: interrupted by SIGTERM: ckpt.pt written at iter {it}; continue the run with '
        f'--init_from=resume')
    run('train.py', '--init_from=resume', f'--out_dir={out}', '--device=cpu', env=ENV)
    assert a.wait(timeout=300) == 0
    a, b = read_log(tmp_path / 'a'), read_log(out)
    assert b['status'] == 'done'
    strip = ('elapsed_s',)
    assert [{k: v for k, v in e.items() if k not in strip} for e in a['evals']] == \
           [{k: v for k, v in e.items() if k not in strip} for e in b['evals']]  # bit for bit
    assert a['best'] == b['best']


# --- sweeps ----------------------------------------------------------------------------------

def sweep_config(path, data, out, **extra):
    """test_sweep's grid cut to 3 runs (one size, one D_f), with a pre-training run long enough
    to be found running, no fit; then extra."""
    write_sweep_config(path, data, out)
    with open(path, 'a') as f:
        f.write("sizes = {'10K': sizes['10K']}\ndataset_tokens = [2000]\nscratch_only_tokens = []\n"
                "pretrain['max_iters'] = transfer['max_iters'] = 600\nfit = False\n" + ''.join(f"{k} = {v!r}\n" for k, v in extra.items()))
    return str(path)


@pytest.mark.parametrize('jobs', ['0', '-2'])
def test_sweep_refuses_jobs_below_one(small, tmp_path, jobs):
    cfg = sweep_config(tmp_path / 'sweep.py', small[0], tmp_path / 'out')
    p = run('sweep.py', cfg, '--jobs', jobs, check=False, timeout=30)  # it hung at 0% before
    assert p.returncode == 1
    one_line(p.stderr, f'jobs={jobs} must be at least 1')
    assert not os.path.exists(tmp_path / 'out')


def test_sweep_checks_every_dataset_before_it_starts(small, tmp_path):
    cfg = sweep_config(tmp_path / 'sweep.py', small[0], tmp_path / 'out',
                       languages={'de': 'toy_de', 'es': 'builtin_es', 'zh': 'hf_zh_gpt2'})
    p = run('sweep.py', cfg, check=False, timeout=60)
    assert p.returncode == 1
    line = one_line(p.stderr, 'not prepared')
    assert 'builtin_es' in line and 'python prepare/debian_docs.py --lang es' in line
    assert 'hf_zh_gpt2' in line and 'python prepare/hf.py --lang zh --tokenizer gpt2' in line
    assert 'toy_de,' not in line and not os.path.exists(tmp_path / 'out')  # nothing ran


def run_lines(out):
    """The command lines the sweeps wrote into each run's train.txt."""
    return {os.path.basename(os.path.dirname(t)): [l for l in open(t) if l.startswith(sys.executable)]
            for t in glob.glob(os.path.join(str(out), '*', 'train.txt'))}


def test_second_sweep_refuses_ctrl_c_stops_runs_and_a_rerun_repairs(small, tmp_path):
    data, _ = small
    out = tmp_path / 'out'
    cfg = sweep_config(tmp_path / 'sweep.py', data, out)
    first = subprocess.Popen([sys.executable, 'sweep.py', cfg], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(glob.glob(str(out / '*' / 'log.json'))) < 2 and time.time() < deadline:  # pt and sc
        time.sleep(0.05)
    p = run('sweep.py', cfg, check=False, timeout=60)
    assert p.returncode == 1
    one_line(p.stderr, f'another sweep (pid {first.pid}) is running on {out}')
    lines = run_lines(out)
    assert all(len(v) == 1 for v in lines.values()), lines  # the second sweep started nothing
    # Ctrl-C: the runs stop with one line each, the sweep with one, and nothing keeps writing
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=60) == 130
    one_line(first.stderr.read(), 'interrupted by SIGINT')
    snapshot = files(out)
    time.sleep(1.0)
    assert files(out) == snapshot
    interrupted = [n for n in lines if read_log(out / n)['status'] == 'running']
    assert 'pt_N10K' in interrupted  # (the scratch run may have stopped early by then)
    for name in lines:
        text = open(out / name / 'train.txt').read()
        assert 'Traceback' not in text and 'KeyboardInterrupt' not in text, text
        assert text.rstrip().endswith('error: interrupted by SIGINT: continue the run with '
                                      '--init_from=resume') == (name in interrupted), text
    # the dead sweep's lock file is still there; it must not block. One interrupted run's
    # ckpt.pt is corrupt: it starts afresh instead of failing each resume; the others resume
    assert open(out / 'sweep.lock').read().strip() == str(first.pid)
    corrupt = max(interrupted)
    truncate(out / corrupt / 'ckpt.pt')
    p = run('sweep.py', cfg, timeout=300)
    assert '3/3 runs finished' in p.stdout
    for name, cmds in run_lines(out).items():
        assert read_log(out / name)['status'] in ('done', 'early_stopped')
        if name in interrupted:
            assert ('--init_from=resume' in cmds[-1]) == (name != corrupt), cmds
    text = open(out / corrupt / 'train.txt').read()
    assert 'ckpt.pt is truncated or corrupt: moved to ckpt.pt.corrupt, the run starts afresh' in text
    assert os.path.exists(out / corrupt / 'ckpt.pt.corrupt')
    assert 'failed' not in p.stdout + p.stderr  # no false "failed (exit 0): retrying"


FAKE_FIT = """
import os, sys, time
with open(os.path.join(sys.argv[1], 'fit.pid'), 'w') as f:
    f.write(str(os.getpid()))
time.sleep(120)
"""


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:
        return f.read().split(') ')[1][0] != 'Z'


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGINT])
def test_the_fit_dies_with_the_sweep(tmp_path, sig):
    """A sweep killed during its final fit takes the fit with it (a fit_scaling.py that takes
    its time, in a copy of the repository, behind a grid with nothing left to run)."""
    repo = tmp_path / 'repo'
    (repo / 'prepare').mkdir(parents=True)
    for f in ('sweep.py', 'configurator.py', 'prepare/common.py'):
        shutil.copy(os.path.join(ROOT, f), repo / f)
    (repo / 'fit_scaling.py').write_text(FAKE_FIT)
    out = tmp_path / 'out'
    cfg = sweep_config(tmp_path / 'sweep.py', str(tmp_path), out, sizes={}, fit=True, fork_runs=False)
    p = subprocess.Popen([sys.executable, 'sweep.py', cfg], cwd=repo, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / 'fit.pid').exists() or not (out / 'fit.pid').read_text():
        assert time.time() < deadline
        time.sleep(0.05)
    fit = int((out / 'fit.pid').read_text())
    p.send_signal(sig)
    assert p.wait(timeout=30) == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    if sig == signal.SIGINT:
        one_line(p.stderr.read(), 'interrupted by SIGINT: 1 process(es) stopped')
    deadline = time.time() + 10
    while alive(fit) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(fit)
