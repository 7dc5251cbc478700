"""sweep.py --slurm: the jobs it writes for the paper grid, and the tiny grid of the sweep tests
run through them by a fake SLURM (tests/fake_slurm: sbatch runs each job here, at once, in the
order submit.sh submits them) with a job killed once and a task reaching its time limit (signal,
ckpt.pt, requeue), finishing with the same results as the local sweep."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, read_log, run
from test_sweep import write_sweep_config

FAKE = os.path.join(ROOT, 'tests', 'fake_slurm')


def test_paper_grid_as_slurm_jobs(tmp_path):
    d = tmp_path / 'jobs'
    # the whole grid at once: without the learning-rate calibration (its stage: test_sweep.py)
    run('sweep.py', 'config/sweep_paper.py', '--slurm', str(d), "--pretrain_nodes={'124M': 2}",
        '--array_throttle=16', '--slurm_partition=gpu', '--slurm_account=proj',
        '--slurm_partition_cpu=cpu', '--slurm_mem=32G', '--learning_rates=[]')
    printed = run('sweep.py', 'config/sweep_paper.py', '--print',
                  '--learning_rates=[]').stdout.splitlines()
    pretrain, transfer = printed[:6], printed[6:-1]
    launcher = 'torchrun --standalone --nproc_per_node=8 '
    assert all(p.startswith(launcher) for p in pretrain)
    for line in pretrain:  # on whole nodes, torchrun over all of them, the same train.py command
        name = line.rsplit('/', 1)[1]
        script = (d / f'pretrain_{name}.sbatch').read_text()
        assert f"#SBATCH --nodes={2 if name == 'pt_N124M' else 1}\n" in script
        for opt in ('--gpus-per-node=8', '--exclusive', '--requeue', '--partition=gpu',
                    '--account=proj', '--cpus-per-task=64', '--mem=0', '--signal=B:USR1@300'):
            assert f'#SBATCH {opt}\n' in script
        assert ('\nrun_resumable srun torchrun --nnodes="$SLURM_NNODES" --nproc_per_node=8 '
                '--rdzv_id="$SLURM_JOB_ID" --rdzv_backend=c10d --rdzv_endpoint="$head:29500" '
                + line[len(launcher):] + '\n') in script
    # every transfer run is a line of a tasks file: the fine-tunes of a size together, the
    # scratch runs in one array; each task runs its line
    tasks = {f.rsplit('/', 1)[1]: open(f).read().splitlines() for f in glob.glob(str(d / '*.txt'))}
    assert sorted(sum(tasks.values(), [])) == sorted(transfer)
    assert not any('--init_from' in l for l in tasks.pop('scratch.txt'))
    assert len(tasks) == 6
    submit = (d / 'submit.sh').read_text()
    for name, lines in tasks.items():
        size = name[len('finetune_'):-len('.txt')]
        assert all(f'--init_from=out/paper/pt_{size}/best.pt' in l for l in lines)
        array = (d / f'finetune_{size}.sbatch').read_text()
        for opt in ('--gres=gpu:1', '--kill-on-invalid-dep=yes', '--requeue', '--cpus-per-task=8',
                    '--mem=32G', '--signal=B:USR1@300', '--partition=gpu'):
            assert f'#SBATCH {opt}\n' in array
        assert f'sed -n "${{SLURM_ARRAY_TASK_ID}}p" {d}/finetune_{size}.txt' in array
        assert (f'submit --array="$tasks%16" ${{job_pt_{size}:+--dependency=afterok:$job_pt_{size}}} '
                f'{d}/finetune_{size}.sbatch\n') in submit
    assert f'submit ${{deps:+--dependency=afterany:$deps}} {d}/fit.sbatch\n' in submit
    fit = (d / 'fit.sbatch').read_text()  # on the CPU partition, no GPU
    assert 'python fit_scaling.py out/paper\n' in fit and '#SBATCH --partition=cpu\n' in fit
    assert 'gpu' not in fit and '#SBATCH --mem=32G\n' in fit
    for f in glob.glob(str(d / '*.s[hb]*')):
        subprocess.run(['bash', '-n', f], check=True)
    p = run('sweep.py', 'config/sweep_paper.py', '--slurm', str(d), "--pretrain_nodes={'7B': 2}", check=False)
    assert p.returncode == 1 and p.stderr.startswith('error: pretrain_nodes names 7B'), p.stderr


def submissions(state):
    with open(state / 'submissions.jsonl') as f:
        return [json.loads(l) for l in f]


def commands_run(run_dir):
    """The commands train.txt says were started in run_dir (the sweeps write each one first)."""
    with open(os.path.join(run_dir, 'train.txt')) as f:
        return [l for l in f if l.split(' ', 1)[0] in ('srun', 'python', sys.executable)]


def test_fake_slurm_grid_matches_the_local_sweep(data_dir, tmp_path):
    cfg = tmp_path / 'sweep.py'
    local, out, jobs, state = (tmp_path / n for n in ('local', 'slurm', 'jobs', 'state'))
    write_sweep_config(cfg, data_dir, local)
    with open(cfg, 'a') as f:  # one D_f and one scratch-only D: every job kind, fewer runs
        f.write("dataset_tokens = [2000]\nscratch_only_tokens = [8000]\n")
    run('sweep.py', str(cfg), '--fit=False')  # 2 at a time, each on cpu_count // 2 threads
    run('sweep.py', str(cfg), f'--out_dir={out}', '--slurm', str(jobs), '--gpus_per_node=0',
        '--array_throttle=2')
    names = sorted(os.path.basename(p) for p in glob.glob(str(local / '*_N*')))
    assert len(names) == 8
    # killed after its first checkpoint, a pre-training job; at its time limit then, a fine-tuning
    # task: SLURM signals its batch shell, the run writes ckpt.pt and exits, the job requeues itself
    killed, timed_out = ['pt_N10K'], ['ft_de_N33K_D2K']
    env = dict(os.environ, PATH=os.pathsep.join([FAKE, os.path.dirname(sys.executable), os.environ['PATH']]),
               FAKE_SLURM_DIR=str(state), OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // 2)),
               FAKE_SLURM_KILL=':'.join(str(out / n / 'ckpt.pt') for n in killed),
               FAKE_SLURM_TIMEOUT=':'.join(str(out / n / 'ckpt.pt') for n in timed_out))

    def submit():
        p = subprocess.run(['bash', str(jobs / 'submit.sh')], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    submit()
    first = {os.path.basename(s['script']).split('.')[0]: s for s in submissions(state)}
    assert {k: s['state'] for k, s in first.items() if k != 'fit'} == {  # the fit ran on what there was
        'pretrain_pt_N10K': 'FAILED', 'pretrain_pt_N33K': 'COMPLETED', 'scratch': 'COMPLETED',
        'finetune_N10K': 'CANCELLED', 'finetune_N33K': 'COMPLETED'}
    for size in ('N10K', 'N33K'):  # each array after its pre-training job; the fit after all
        assert first[f'finetune_{size}']['options']['dependency'] == f"afterok:{first[f'pretrain_pt_{size}']['id']}"
    assert 'dependency' not in first['scratch']['options']
    assert first['fit']['options']['dependency'] == 'afterany:' + ':'.join(
        str(s['id']) for k, s in first.items() if k != 'fit')
    for name in killed:  # killed mid-run, as a pre-empted job is
        assert read_log(out / name)['status'] == 'running' and os.path.exists(out / name / 'ckpt.pt')
    assert not os.path.exists(out / 'ft_de_N10K_D2K')
    for name in timed_out:  # stopped by the signal with a ckpt.pt where it was, requeued, resumed
        text = open(out / name / 'train.txt').read()
        assert re.search(r'error: interrupted by SIGTERM: ckpt.pt written at iter \d+', text), text
        assert read_log(out / name)['status'] in ('done', 'early_stopped')
    logs = ''.join(open(f).read() for f in glob.glob(str(jobs / 'logs' / 'finetune_N33K_*')))
    assert 'sent SIGUSR1: its time limit is near' in logs and 'requeueing job' in logs, logs

    # the second submission: only what did not finish, the killed runs resuming from ckpt.pt
    stdout = submit()
    second = submissions(state)[len(first):]
    assert [(os.path.basename(s['script']), s['options'].get('array'), s['state']) for s in second] == [
        ('pretrain_pt_N10K.sbatch', None, 'COMPLETED'), ('finetune_N10K.sbatch', '1%2', 'COMPLETED'),
        ('fit.sbatch', None, 'COMPLETED')], stdout
    for name in names:
        a, b = read_log(local / name), read_log(out / name)
        assert b['status'] in ('done', 'early_stopped') and b['status'] == a['status']
        strip = ('elapsed_s',)
        assert [{k: v for k, v in e.items() if k not in strip} for e in a['evals']] == \
               [{k: v for k, v in e.items() if k not in strip} for e in b['evals']], name  # bit for bit
        assert a['best'] == b['best'] and len(a['evals']) > 2
        cmds = commands_run(out / name)
        assert len(cmds) == 1 + (name in killed + timed_out), cmds
    assert commands_run(out / 'ft_de_N33K_D2K')[1].endswith(f'train.py --init_from=resume --out_dir={out}/ft_de_N33K_D2K\n')
    assert commands_run(out / 'pt_N10K')[1].startswith('srun python train.py --init_from=resume')
    with open(out / 'report' / 'results.json') as f:
        assert json.load(f)


FAKE_TRAIN = """import json, os, sys
out = sys.argv[-1].split('=', 1)[1]
with open(os.path.join(out, 'log.json'), 'w') as f:
    json.dump({'status': 'done'}, f)
"""


def test_a_failed_run_resumes_from_a_whole_ckpt_pt_and_starts_over_without_one(tmp_path):
    """common.sh's run_resumable (a fake train.py that finishes at once): a run whose log says
    failed (a full disk hours in) resumes from its ckpt.pt; a corrupt ckpt.pt is moved aside and
    the run starts over."""
    sys.path.insert(0, ROOT)
    import slurm
    (tmp_path / 'common.sh').write_text(slurm.COMMON)
    (tmp_path / 'train.py').write_text(FAKE_TRAIN)
    env = dict(os.environ,
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ['PATH']]))
    for name, ckpt in (('whole', None), ('corrupt', b'PK\x03\x04 not a zip archive')):
        d = tmp_path / name
        d.mkdir()
        if ckpt is None:
            import zipfile
            with zipfile.ZipFile(d / 'ckpt.pt', 'w') as z:
                z.writestr('data.pkl', b'x' * 100)
        else:
            (d / 'ckpt.pt').write_bytes(ckpt)
        (d / 'log.json').write_text(json.dumps({'status': 'failed'}))
        subprocess.run(['bash', '-c', f'source common.sh; run_resumable python train.py --lr=1 '
                        f'--out_dir={name}'], cwd=tmp_path, env=env, check=True)
    assert commands_run(tmp_path / 'whole') == [
        'python train.py --init_from=resume --out_dir=whole\n']
    assert commands_run(tmp_path / 'corrupt') == ['python train.py --lr=1 --out_dir=corrupt\n']
    assert os.path.exists(tmp_path / 'corrupt' / 'ckpt.pt.corrupt')


SLOW_TRAIN = """import os, signal, sys, time
out = sys.argv[-1].split('=', 1)[1]
signal.signal(signal.SIGTERM, lambda *a: sys.exit('error: interrupted by SIGTERM: ckpt.pt written'))
open(os.path.join(out, 'started'), 'w').close()
time.sleep(60)
"""


@pytest.mark.parametrize('sig', ['USR1', 'TERM'])
def test_the_time_limit_signal_stops_the_run_and_requeues_the_job_scancel_does_not(tmp_path, sig):
    """common.sh in a job: USR1 (--signal=B:USR1@margin) to the job's shell passes SIGTERM on to
    the run and requeues the job once the run exited; SIGTERM (scancel) stops the run alone."""
    sys.path.insert(0, ROOT)
    import slurm
    (tmp_path / 'common.sh').write_text(slurm.COMMON)
    (tmp_path / 'train.py').write_text(SLOW_TRAIN)
    (tmp_path / 'run').mkdir()
    env = dict(os.environ, FAKE_SLURM_DIR=str(tmp_path), SLURM_JOB_ID='7',
               PATH=os.pathsep.join([FAKE, os.path.dirname(sys.executable), os.environ['PATH']]))
    job = 'source common.sh; run_resumable python train.py --out_dir=run'
    p = subprocess.Popen(['bash', '-c', job], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                         text=True)
    while not os.path.exists(tmp_path / 'run' / 'started'):
        time.sleep(0.02)
    p.send_signal(getattr(signal, 'SIG' + sig))
    assert p.wait(timeout=30) == (0 if sig == 'USR1' else 1)
    assert 'interrupted by SIGTERM' in (tmp_path / 'run' / 'train.txt').read_text()
    assert os.path.exists(tmp_path / 'requeue_7') == (sig == 'USR1'), p.stderr.read()
