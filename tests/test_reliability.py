"""Faults injected the way a user meets them (issue 13): bad inputs, a full disk, kills during
writes, Ctrl-C, two sweeps on one out_dir, a corrupt checkpoint, a missing dataset. Each asserts
the one-line error, the exit code, the files left, and that earlier good artifacts are unchanged."""

import glob
import hashlib
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

from conftest import (DE, EN, ROOT, evals_without_time, read_log, run, wait_for_evals,
                      write_dataset)
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
    changed = big_ids.copy()
    changed[1000] = (changed[1000] + 1) % 256  # another valid id: only the sha256 can tell
    big_ids[1000] = 300  # >= the byte vocabulary's 257
    bad = {
        'odd': bad_data(data, 'odd', lambda d: open(os.path.join(d, 'train.bin'), 'ab').write(b'x')),
        'malformed': bad_data(data, 'malformed', lambda d: open(os.path.join(d, 'meta.json'), 'w').write('{"tok')),
        'incomplete': bad_data(data, 'incomplete', lambda d: edit_meta(d, lambda m: m.pop('vocab_size'))),
        'empty_val': bad_data(data, 'empty_val', lambda d: open(os.path.join(d, 'val.bin'), 'wb').close()),
        'big_ids': bad_data(data, 'big_ids', lambda d: big_ids.tofile(os.path.join(d, 'train.bin'))),
        'changed': bad_data(data, 'changed', lambda d: (edit_meta(d, lambda m: m.update(sha256={
            s: hashlib.sha256(open(os.path.join(d, f'{s}.bin'), 'rb').read()).hexdigest()
            for s in ('train', 'val')})),
            changed.tofile(os.path.join(d, 'train.bin')))),
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
        ([f'--dataset={bad["changed"]}'], 'train.bin is not the file meta.json describes'),
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


OUT_OF_MEMORY = r'''
import os, resource, runpy, sys
import util
write = util.atomic_write
def write_then_limit(writes):  # once ckpt.pt is written, the address space may grow by 512 MB
    write(writes)
    if any(path.endswith('ckpt.pt') for path, _ in writes):
        vm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmSize'))
        resource.setrlimit(resource.RLIMIT_AS, ((vm << 10) + (512 << 20), resource.RLIM_INFINITY))
util.atomic_write = write_then_limit
sys.argv = ['train.py', *sys.argv[1:]]
runpy.run_path('train.py', run_name='__main__')
'''


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason="reads Linux's /proc/self/status")
def test_out_of_memory_fails_the_run_and_keeps_the_last_checkpoint(small, tmp_path):
    """A real allocation failure: ulimit -v's limit (RLIMIT_AS), set relative to the process's size
    once the first checkpoint is written, under a training batch whose activations need GBs."""
    data, _ = small
    out = tmp_path / 'oom'
    args = [a for a in SMALL if not a.startswith('--batch_size')]
    p = subprocess.run([sys.executable, '-c', OUT_OF_MEMORY, *args, f'--data_dir={data}',
                        '--dataset=toy_en', f'--batch_size={1 << 18}', '--eval_batch_size=8',
                        f'--out_dir={out}'], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=ENV)
    assert p.returncode == 1
    line = one_line(p.stderr, 'out of memory at iter 0: ')
    assert '--init_from=resume takes them' in line  # ckpt.pt is there to resume
    assert sorted(files(out)) == ['best.pt', 'ckpt.pt', 'log.json']
    log = read_log(out)
    assert log['status'] == 'failed' and log['error'] in line and len(log['evals']) == 1
    assert torch.load(out / 'ckpt.pt', weights_only=False)['iter'] == 0


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
    assert evals_without_time(a) == evals_without_time(b)  # bit for bit
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
    assert evals_without_time(a) == evals_without_time(b)  # bit for bit
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


def finished_grid(data, out):
    """sweep_config's datasets in data and its 3 runs in out, marked finished: a sweep started
    on them has only its fit left to run."""
    write_dataset(str(data), 'toy_en', 'en', EN, 3_000, 500, seed=1)
    write_dataset(str(data), 'toy_de', 'de', DE, 3_000, 500, seed=2)
    for name in ('pt_N10K', 'ft_de_N10K_D2K', 'sc_de_N10K_D2K'):
        os.makedirs(out / name)
        (out / name / 'log.json').write_text('{"status": "done"}')
    (out / 'pt_N10K' / 'best.pt').write_bytes(b'')


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGINT])
def test_the_fit_dies_with_the_sweep(tmp_path, sig):
    """A sweep killed during its final fit takes the fit with it (a fit_scaling.py that takes
    its time, in a copy of the repository, behind a grid with nothing left to run)."""
    repo = tmp_path / 'repo'
    (repo / 'prepare').mkdir(parents=True)
    for f in ('sweep.py', 'configurator.py', 'util.py', 'train.py', 'prepare/common.py'):
        shutil.copy(os.path.join(ROOT, f), repo / f)
    (repo / 'fit_scaling.py').write_text(FAKE_FIT)
    out = tmp_path / 'out'
    cfg = sweep_config(tmp_path / 'sweep.py', str(tmp_path), out, fit=True, fork_runs=False)
    finished_grid(tmp_path, out)
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


# --- issue 20: a run's out_dir is its own, every end writes a true status -------------------

OWN = r'''
import json, os, sys
sys.argv = ['sweep.py']
import sweep, model, torch
sweep.preload()
forward, calls = model.GPT.forward, [0]
def forward_or_oom(self, *a, **k):  # a run's 4th training step asks for too much memory
    calls[0] += self.training
    if os.environ.get('OOM') and calls[0] == 4:
        raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')
    return forward(self, *a, **k)
model.GPT.forward = forward_or_oom
codes = []
for args, log, oom in json.loads(os.environ['CASES']):
    with open(log, 'w') as out:
        codes.append(sweep.ForkedRun(args, out, dict(os.environ, OOM=oom)).wait())
print(json.dumps(codes))
'''


def forked(cases, tmp_path):
    """Run [(args, oom)] one after another as sweep.py forks them; [(exit code, output)]."""
    logs = [str(tmp_path / f'case{i}.txt') for i in range(len(cases))]
    env = dict(ENV, CASES=json.dumps([(['train.py', *a], l, oom) for (a, oom), l in zip(cases, logs)]))
    p = subprocess.run([sys.executable, '-c', OWN], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    return [(c, open(l).read()) for c, l in zip(json.loads(p.stdout.strip().splitlines()[-1]), logs)]


def test_a_run_dir_belongs_to_one_run_and_every_end_is_logged(small, tmp_path):
    data, pt = small
    base = [*SMALL, f'--data_dir={data}', '--max_iters=10', '--eval_interval=5']
    done, again, foreign, locked = (tmp_path / n for n in ('done', 'again', 'foreign', 'locked'))
    for d in (done, again, foreign, locked):
        shutil.copytree(pt, d)
    with open(foreign / 'log.json', 'w') as f:  # an interrupted run, whose ckpt.pt is another's
        json.dump(dict(read_log(pt), status='running'), f)
    other = torch.load(foreign / 'ckpt.pt', weights_only=False)
    other['config'].update(dataset='toy_de', n_embd=64)
    torch.save(other, foreign / 'ckpt.pt')
    fd = os.open(locked, os.O_RDONLY)  # a train.py running on it holds this lock
    import fcntl
    fcntl.flock(fd, fcntl.LOCK_EX)
    before = files(tmp_path)
    oom, bad = tmp_path / 'oom', str(tmp_path / 'bad')
    cases = [
        ([*base, '--dataset=toy_en', f'--out_dir={done}'], 'holds a run (log.json, ckpt.pt, best.pt)'),
        ([*base, '--dataset=toy_en', '--init_from=resume', f'--out_dir={foreign}'],
         "is not this run's (it has dataset='toy_de', n_embd=64"),
        ([*base, '--dataset=toy_en', '--overwrite=True', f'--out_dir={locked}'],
         'another train.py is running on'),
        ([*base, '--dataset=toy_en', '--gradient_accumulation_steps=0', f'--out_dir={bad}'],
         'gradient_accumulation_steps=0 must be at least 1'),
        ([*base, '--dataset=toy_en', '--learning_rate=1e400', f'--out_dir={bad}'], 'must be finite'),
        ([*base, '--dataset=toy_en', '--eval_batch_size=-1', f'--out_dir={bad}'],
         'eval_batch_size=-1 must be at least 1'),
        ([*base, '--dataset=toy_en', '--dropout=2', f'--out_dir={bad}'], 'dropout=2.0 must be in [0, 1)'),
        ([*base, f'--dataset={bad_data(data, "short", lambda d: truncate(os.path.join(d, "train.bin"), 4000))}',
          f'--out_dir={bad}'], 'holds 2,000 tokens but meta.json counts 10,000'),
        ([*base, f'--dataset={bad_data(data, "bpe", lambda d: edit_meta(d, lambda m: m.update(tokenizer="bpe")))}',
          f'--out_dir={bad}'], "names tokenizer 'bpe', not one of bytes, gpt2"),
    ]
    results = forked([(a, '') for a, _ in cases] + [
        ([*base, '--dataset=toy_en', '--overwrite=True', f'--out_dir={again}'], ''),
        ([*base, '--dataset=toy_en', '--max_iters=20', f'--out_dir={oom}'], '1'),  # OOM at iter 3
        (['--init_from=resume', '--batch_size=2', f'--out_dir={oom}', '--device=cpu'], ''),
    ], tmp_path)
    for (args, want), (code, output) in zip(cases, results):
        assert code == 1 and len(output.strip().splitlines()) == 1, (args, output)
        one_line(output, want)
    os.close(fd)
    assert not os.path.exists(bad)
    after = files(tmp_path)
    assert {k: v for k, v in after.items() if k.split(os.sep)[0] in
            ('done', 'foreign', 'locked')} == {k: v for k, v in before.items() if
                                               k.split(os.sep)[0] in ('done', 'foreign', 'locked')}
    (code, output), (oom_code, oom_out), (split_code, split_out) = results[-3:]
    assert code == 0 and read_log(again)['status'] == 'done', output
    assert read_log(again)['evals'][-1]['elapsed_s'] != read_log(pt)['evals'][-1]['elapsed_s']
    # out of memory: log.json failed with the reason, one line that says how to go on, and the
    # resume it names takes a smaller batch_size (the product kept, else refused)
    assert oom_code == 1
    line = one_line(oom_out, 'out of memory at iter 3: CUDA out of memory')
    assert '--init_from=resume takes them' in line
    log = read_log(oom)
    assert log['status'] == 'failed' and log['error'].startswith('out of memory at iter 3')
    assert split_code == 1
    one_line(split_out, "batch_size x gradient_accumulation_steps must stay the run's 4 (got 2)")
    [(code, output)] = forked([(['--init_from=resume', '--batch_size=2', '--gradient_accumulation_steps=2',
                                 f'--out_dir={oom}', '--device=cpu'], '')], tmp_path)
    assert code == 0 and read_log(oom)['status'] == 'done', output


def test_sweep_config_errors_are_one_line_before_anything_runs(small, tmp_path):
    data, _ = small
    out = tmp_path / 'out'
    bad = tmp_path / 'bad.py'
    bad.write_text("sizes = {'10K': dict(n_layer=1}\n")
    (tmp_path / 'a_file').write_text('')
    check = "[{'language': '%s', 'size': '%s', 'dataset_tokens': 2000, 'tag': 'x'}]"
    cases = [
        ([], 'the grid is empty'),
        (['--sizes={}'], 'the grid is empty'),
        (['--dataset_tokens=[]'], 'the grid is empty'),
        (['--checks=' + check % ('fr', '10K')], "names language 'fr', not one of languages ('de')"),
        (['--checks=' + check % ('de', '1B')], "size '1B' is not in sizes ('10K')"),
        (["--sizes={'10K': 'config/nope.py'}"], "names config file config/nope.py, which does not exist"),
        (['--dataset_tokens=[50000]'], "has dataset_tokens=50,000, but"),
        (['--slurm', str(tmp_path / 'a_file')], 'is a file, not a directory'),
        ([str(bad)], f"config file {bad}, line 1"),
    ]
    cfg = sweep_config(tmp_path / 'sweep.py', data, out)
    for args, want in cases:
        p = run('sweep.py', *([cfg] if args else []), *args, check=False, timeout=60)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        one_line(p.stderr, want)
        assert not os.path.exists(out)
    assert not os.path.exists(os.path.join(ROOT, 'out', 'sweep', 'sweep.lock')) or \
        os.path.getmtime(os.path.join(ROOT, 'out', 'sweep', 'sweep.lock')) < time.time() - 60


def test_sweep_fails_when_its_fit_fails_and_reruns_a_pretraining_without_best_pt(tmp_path,
                                                                                 monkeypatch):
    out = tmp_path / 'out'
    cfg = sweep_config(tmp_path / 'sweep.py', str(tmp_path), out, fit=True)
    finished_grid(tmp_path, out)  # logs the fit cannot use: it fails, and so does the sweep
    p = run('sweep.py', cfg, check=False, timeout=120)
    assert p.returncode == 1 and '3/3 runs finished' in p.stdout, p.stdout + p.stderr
    assert f'sweep: fit_scaling.py {out} failed (exit 1)' in p.stdout
    one_line(p.stderr, 'no usable log.json')
    monkeypatch.setattr(sys, 'argv', ['sweep.py', cfg])
    import sweep
    assert sweep.run_state('pt_N10K') == 'finished'
    os.remove(out / 'pt_N10K' / 'best.pt')  # what every fine-tune starts from: run it again
    assert sweep.run_state('pt_N10K') == 'failed' and sweep.run_state('sc_de_N10K_D2K') == 'finished'


def test_fit_and_report_fail_with_one_line_and_leave_no_temp_file(tmp_path, capsys, monkeypatch):
    import errno
    import fit_scaling as fs
    import matplotlib.figure
    import report
    from test_fit_scaling import make_sweep
    root = make_sweep(tmp_path / 'out', langs=('de',))
    (tmp_path / 'a_file').write_text('')

    def err(main, argv):  # util.fail: SystemExit with the one line, which Python prints
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert not capsys.readouterr().err and str(e.value).startswith('error: ')
        assert '\n' not in str(e.value)
        return str(e.value)

    assert '--boot -5 must be at least 0' in err(fs.main, [str(root), '--boot', '-5'])
    assert 'choose another --out' in err(fs.main, [str(root), '--boot', '0', '--out',
                                                   str(tmp_path / 'a_file')])

    def full(*a, **k):  # a partial figure, then the disk is full
        open(a[1] if len(a) > 1 else k['fname'], 'wb').write(b'\0' * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with monkeypatch.context() as m:
        m.setattr(matplotlib.figure.Figure, 'savefig', full)
        assert 'No space left on device' in err(fs.main, [str(root), '--boot', '0'])
    rep = root / 'report'
    assert not [f for f in os.listdir(rep) if f.endswith('.tmp')] and not (rep / 'report.md').exists()
    res = json.loads((rep / 'results.json').read_text())
    for name, text, want in (('s2.json', json.dumps(dict(res, schema=2)), 'has schema 2'),
                             ('wrong.json', json.dumps(dict(schema=1, targets=[])), 'is not a results.json'),
                             ('list.json', '[1]', 'has schema None')):
        (tmp_path / name).write_text(text)
        assert want in err(report.main, [str(tmp_path / name), '--out', str(tmp_path / 'r')])
    assert not os.path.exists(tmp_path / 'r') or not os.listdir(tmp_path / 'r')


def test_prepare_on_a_full_disk_fails_with_one_line_and_cleans_up(tmp_path, monkeypatch, capsys):
    import errno
    from prepare import common
    docs = [(f'doc{i}', [f'Absatz {i} über das Haus und das Wasser.'] * 5) for i in range(200)]

    def prepare(out):
        return common.write_dataset(iter(docs), str(out), tokenizer='bytes', language='de',
                                    args={}, sources=['test'], num_proc=1)

    class Usage:
        free = 1000  # bytes: less than the split needs
    with monkeypatch.context() as m:
        m.setattr(common.shutil, 'disk_usage', lambda path: Usage)
        with pytest.raises(SystemExit) as e:
            prepare(tmp_path / 'full')
    assert 'MB needed for train.bin: free space and rerun' in str(e.value)
    assert not os.path.exists(tmp_path / 'full')  # no temp files, no empty directory

    def no_space(fd, offset, length):  # the disk fills between the check and the write
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    out = tmp_path / 'kept'
    out.mkdir()
    (out / f'all.bin.{dead_pid()}.tmp').write_bytes(b'\0' * 1000)  # what a killed prepare left
    with monkeypatch.context() as m:
        m.setattr(common.os, 'posix_fallocate', no_space, raising=False)
        with pytest.raises(SystemExit) as e:
            prepare(out)
    assert str(e.value).startswith('error: writing') and 'No space left on device' in str(e.value)
    assert os.listdir(out) == []
    (out / f'train.bin.{dead_pid()}.tmp').write_bytes(b'\0' * 1000)
    prepare(out)
    assert sorted(os.listdir(out)) == ['meta.json', 'train.bin', 'val.bin']


@pytest.mark.parametrize('flag', ['-h', '--help'])
def test_help_prints_the_docstring_and_keys_and_exits_0(flag, capsys):
    from configurator import configure
    with pytest.raises(SystemExit) as e:
        configure({'__doc__': 'Train a model:\n    python train.py', 'lr': 0.1, 'out_dir': 'out'},
                  ['--lr=0.2', flag])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith('Train a model:') and '--lr=0.1' in out and "--out_dir='out'" in out
    p = run('sweep.py', flag, timeout=60)  # a script as a user runs it (sweep.py starts fast)
    assert p.stdout.startswith('Run a whole study') and '--jobs=1' in p.stdout
