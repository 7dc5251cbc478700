"""sweep.py: the grid in dependency order, --print, and a sweep killed at a random moment that
finishes on restart without redoing finished runs."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, read_log, run


def write_sweep_config(path, data_dir, out_dir):
    tiny = dict(device='cpu', data_dir=data_dir, block_size=64, batch_size=8, eval_tokens=2048,
                log_interval=0, learning_rate=3e-3, warmup_iters=5)
    with open(path, 'w') as f:
        f.write(f"""
out_dir = {str(out_dir)!r}
pretrain_dataset = 'toy_en'
languages = {{'de': 'toy_de'}}
sizes = {{'10K': dict(n_layer=1, n_head=1, n_embd=32), '33K': dict(n_layer=2, n_head=2, n_embd=48)}}
pretrain = dict({tiny!r}, max_iters=60, eval_interval=20)
transfer = dict({tiny!r}, max_iters=60, eval_interval=20, patience=2)
dataset_tokens = [2000, 8000]
scratch_only_tokens = [32000]
jobs = 2
fit_args = ['--boot', '50']
""")


def test_print_lists_the_grid_in_dependency_order(data_dir, tmp_path):
    cfg = tmp_path / 'sweep.py'
    write_sweep_config(cfg, data_dir, tmp_path / 'out')
    lines = run('sweep.py', str(cfg), '--print').stdout.strip().splitlines()
    # 2 pre-training runs, 1 language x 2 sizes x (2 D_f x 2 inits + 1 scratch-only), the fit
    assert len(lines) == 2 + 2 * 5 + 1
    assert all('--dataset=toy_en' in l for l in lines[:2])
    assert lines[-1].startswith('python fit_scaling.py')
    ft = [l for l in lines if 'ft_de_N33K_D2000 ' in l + ' ' or '/ft_de_N33K_D2K' in l]
    assert len(ft) == 1 and f"--init_from={tmp_path / 'out'}/pt_N33K/best.pt" in ft[0]
    names = [l.split('--out_dir=')[1].split()[0].rsplit('/', 1)[1] for l in lines[:-1]]
    assert names.index('pt_N33K') < names.index(ft[0].split('--out_dir=')[1].split()[0].rsplit('/', 1)[1])
    assert not os.path.exists(tmp_path / 'out')  # printing runs nothing
    # the longest runs first: the transfer runs by D, largest first
    ds = [int(l.split('--dataset_tokens=')[1].split()[0]) for l in lines[2:-1]]
    assert ds == sorted(ds, reverse=True)
    # a check with init='sc' is a scratch run alone (a scratch-only D has no fine-tuned twin)
    check = "{'language': 'de', 'size': '10K', 'dataset_tokens': 32000, 'init': 'sc', 'tag': 'p9', 'patience': 9}"
    more = run('sweep.py', str(cfg), '--print', f'--checks=[{check}]').stdout.strip().splitlines()
    added = [l for l in more if l not in lines]
    assert len(added) == 1 and '/sc_de_N10K_D32K_p9' in added[0] and '--patience=9' in added[0]
    # repeats: every cell at that D_f once more with the next seed, both twins, averaged by the fit
    more = run('sweep.py', str(cfg), '--print', '--repeats={2000: 2}').stdout.strip().splitlines()
    added = [l for l in more if l not in lines]
    assert len(added) == 4 and all('_D2K_s2' in l and l.endswith('--seed=1338') or '--seed=1338 ' in l for l in added)
    # ... and a scratch-only D, the scratch run alone
    more = run('sweep.py', str(cfg), '--print', '--repeats={32000: 2}').stdout.strip().splitlines()
    added = [l for l in more if l not in lines]
    assert len(added) == 2 and all('/sc_de_N' in l and '_D32K_s2' in l for l in added)
    # multi-GPU pre-training stays torchrun; the transfer runs are one process each
    lines = run('sweep.py', str(cfg), '--print', '--pretrain_launcher=torchrun --nproc_per_node=8').stdout.splitlines()
    assert all(l.startswith('torchrun --nproc_per_node=8 train.py ') for l in lines[:2])
    assert all(l.startswith('python train.py ') for l in lines[2:-1])


def test_sweep_killed_midway_finishes_on_restart(data_dir, tmp_path):
    cfg = tmp_path / 'sweep.py'
    out = tmp_path / 'out'
    write_sweep_config(cfg, data_dir, out)
    p = subprocess.Popen([sys.executable, 'sweep.py', str(cfg)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = {}
    deadline = time.time() + 300
    while time.time() < deadline and len(finished) < 4:
        for path in glob.glob(str(out / '*' / 'log.json')):
            try:
                with open(path) as f:
                    if json.load(f)['status'] in ('done', 'early_stopped'):
                        finished[path] = open(path).read()
            except (OSError, ValueError):
                pass  # mid-rename: atomically replaced files are never half-written
        time.sleep(0.05)
    assert p.poll() is None, "the sweep ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    time.sleep(0.5)
    # the runs died with the sweep: nothing keeps writing into the grid
    snapshot = {f: os.path.getmtime(f) for f in glob.glob(str(out / '*' / '*'))}
    time.sleep(1.5)
    assert snapshot == {f: os.path.getmtime(f) for f in glob.glob(str(out / '*' / '*'))}

    p2 = run('sweep.py', str(cfg))
    assert '12/12 runs finished' in p2.stdout
    logs = glob.glob(str(out / '*' / 'log.json'))
    assert len(logs) == 12
    for path in logs:
        with open(path) as f:
            assert json.load(f)['status'] in ('done', 'early_stopped')
    for path, text in finished.items():  # finished runs were not run again
        assert open(path).read() == text
        with open(os.path.join(os.path.dirname(path), 'train.txt')) as f:
            assert sum(l.startswith(sys.executable) for l in f) == 1
    assert os.path.exists(out / 'report' / 'results.json')
    # a third start has nothing left to do
    assert '12/12 runs finished' in run('sweep.py', str(cfg)).stdout


def test_forked_and_new_interpreter_runs_fail_alike(data_dir, tmp_path):
    """A run that exits with an error message (here an unknown key) leaves that message in its
    train.txt and fails the sweep, whether it ran in a fork (the default without GPUs) or a new
    interpreter; the fine-tunes that need it are skipped, the scratch runs finish, identically."""
    cfg = tmp_path / 'sweep.py'
    write_sweep_config(cfg, data_dir, tmp_path / 'out')
    with open(cfg, 'a') as f:
        f.write("pretrain['lerning_rate'] = 1e-3\nsizes = {'10K': sizes['10K']}\nfit = False\n")
    modes = {'fork': ['--fork_runs=True'], 'new': ['--fork_runs=False'], 'gpu': ['--fork_runs=True']}
    for mode, args in modes.items():
        # 'gpu': a machine with GPUs starts new interpreters (the runs' config says cpu all the
        # same, with all the cores each, so their losses differ in the last digits)
        env = dict(os.environ, NUM_GPUS='1') if mode == 'gpu' else None
        p = run('sweep.py', str(cfg), *args, f"--out_dir={tmp_path / mode}", check=False, env=env)
        assert p.returncode == 1 and '3/6 runs finished' in p.stdout, p.stdout + p.stderr
        assert ('torch imported once' in p.stdout) == (mode == 'fork')
        assert 'ft_de_N10K_D2K skipped: pt_N10K failed' in p.stdout + p.stderr
        with open(tmp_path / mode / 'pt_N10K' / 'train.txt') as f:
            text = f.read()
        # tried twice, each time the one-line error naming the closest key
        assert text.count("error: unknown config key 'lerning_rate' (did you mean 'learning_rate'?)\n") == 2, text
    # the scratch runs that finished are the same runs, bit for bit, in a fork and a new interpreter
    for name in ('sc_de_N10K_D2K', 'sc_de_N10K_D8K', 'sc_de_N10K_D32K'):
        losses = [[e['val_loss'] for e in read_log(tmp_path / mode / name)['evals']] for mode in ('fork', 'new')]
        assert losses[0] == losses[1] and len(losses[0]) > 1


def test_gpu_study_cpu_twin(tmp_path):
    """config/sweep_gpu.py as it is, but CPU-sized (tiny shapes, budgets and corpora under the
    names it expects, one D_f and one scratch-only D): every run of the three languages finishes,
    the fit reads them, and --cost prices the real config in GPU-hours."""
    from conftest import DE, EN, write_dataset
    data = tmp_path / 'data'
    for seed, (lang, words) in enumerate((('en', EN), ('de', DE), ('es', DE[::-1]), ('zh', DE[1::2]))):
        write_dataset(str(data), f'builtin_{lang}_gpt2', lang, words, 40_000 if lang == 'en' else 10_000,
                      4_000, seed=seed, tokenizer='gpt2')
    # 12 steps a run: the GPT-2 vocabulary makes even a 16-wide model's step ~60 ms on a CPU
    tiny = dict(device='cpu', data_dir=str(data), compile=False, dtype='float32', block_size=32,
                batch_size=4, eval_tokens=256, learning_rate=3e-3, max_iters=12, warmup_iters=2,
                eval_interval=4, min_iters=8, min_tokens=1_536, max_tokens=1_536, patience=1)
    sizes = {'a': dict(n_layer=1, n_head=1, n_embd=16), 'b': dict(n_layer=1, n_head=2, n_embd=32)}
    out = tmp_path / 'out'
    p = run('sweep.py', 'config/sweep_gpu.py', f'--out_dir={out}', f'--run_overrides={tiny!r}',
            f'--sizes={sizes!r}', '--dataset_tokens=[400]', '--scratch_only_tokens=[1600]',
            '--checks=[]', '--learning_rates=[]', "--fit_args=['--boot', '20']", '--jobs=2')
    assert '22/22 runs finished' in p.stdout, p.stdout[-2000:]
    results = json.load(open(out / 'report' / 'results.json'))
    assert set(results['targets']) == {f'builtin_{l}_gpt2' for l in ('de', 'es', 'zh')}, list(results['targets'])
    for path in glob.glob(str(out / '[fs]c_*' / 'log.json')):
        log = json.load(open(path))
        assert log['config']['dataset'].endswith('_gpt2') and log['config']['block_size'] == 32
    cost = run('sweep.py', 'config/sweep_gpu.py', '--cost').stdout
    hours = float(next(l for l in cost.splitlines() if l.split()[1:2] == ['all']).split()[-2])
    assert 'Transfer budgets by D_f' in cost and '64,000' in cost  # the budget each D_f gets
    assert 0.3 < hours < 3, cost  # "about an hour" on one GPU, as the config says
    # evaluation is counted, and is a small share of a transfer run at its budget
    for config in ('config/sweep_gpu.py', 'config/sweep_paper.py'):
        rows = [l.split() for l in run('sweep.py', config, '--cost').stdout.splitlines()
                if 'transfer' in l]
        assert rows and all(1 < float(r[-1].rstrip('%')) < 15 for r in rows), rows


def test_learning_rate_calibration_comes_first_and_each_arm_gets_its_best(data_dir, tmp_path):
    cfg, out = tmp_path / 'sweep.py', tmp_path / 'out'
    write_sweep_config(cfg, data_dir, out)
    with open(cfg, 'a') as f:
        f.write("sizes = {'10K': sizes['10K']}\nscratch_only_tokens = []\nfit = False\n"
                "learning_rates = [3e-4, 3e-2]\ncalibration_tokens = [2000]\n")
    # before the calibration, the commands of the grid cannot exist: --print and --slurm stop
    # at the calibration, and say how the grid follows
    lines = run('sweep.py', str(cfg), '--print').stdout.strip().splitlines()
    assert len(lines) == 1 + 2 * 2 + 1 and lines[-1].startswith('# then')
    assert sorted(l.split('--learning_rate=')[-1].split()[0] for l in lines[1:-1]) == \
        ['0.0003', '0.0003', '0.03', '0.03']
    run('sweep.py', str(cfg), '--slurm', str(tmp_path / 'slurm'))
    stage = open(tmp_path / 'slurm' / 'fit.sbatch').read()
    assert 'python sweep.py' in stage and 'submit.sh' in stage
    assert 'ft_de_N10K_D8K' not in open(tmp_path / 'slurm' / 'finetune_N10K.txt').read()
    # fit.sbatch counts the rounds of the calibration's jobs: a run that fails every time stops
    # the resubmissions at the third, with one line
    assert '--calibration_round=1 ' in stage
    p = run('sweep.py', str(cfg), '--slurm', str(tmp_path / 'slurm'), '--calibration_round=3',
            check=False)
    assert p.returncode == 1 and 'ran 3 times' in p.stderr, p.stderr
    run('sweep.py', str(cfg))
    def best_rates():   # each arm's lowest test loss among converged runs (all where none is)
        best = {}
        for path in glob.glob(str(out / '*_lr*' / 'log.json')):
            log = read_log(os.path.dirname(path))
            arm = os.path.basename(os.path.dirname(path))[:2]
            rank = (not log['converged'], log['best']['test_loss'])
            if rank < best.get(arm, (None, (True, float('inf'))))[1]:
                best[arm] = (log['config']['learning_rate'], rank)
        return best
    best = best_rates()
    grid = [read_log(out / f'{arm}_de_N10K_D{d}') for arm in ('ft', 'sc') for d in ('2K', '8K')]
    assert [g['config']['learning_rate'] for g in grid] == [best['ft'][0]] * 2 + [best['sc'][0]] * 2
    # once calibrated, --print shows the grid at those rates
    lines = run('sweep.py', str(cfg), '--print').stdout.strip().splitlines()
    assert any('/ft_de_N10K_D8K' in l and f"--learning_rate={best['ft'][0]}" in l for l in lines)
    # a grid run at a rate the calibration no longer chooses is stale: run again, at the right one
    path = out / 'ft_de_N10K_D8K' / 'log.json'
    log = json.load(open(path))
    log['config']['learning_rate'] = 1.0
    json.dump(log, open(path, 'w'))
    run('sweep.py', str(cfg))
    assert read_log(out / 'ft_de_N10K_D8K')['config']['learning_rate'] == best['ft'][0]
    # a rate whose calibration run its budget stopped is a bound: the other rate wins, and the
    # grid runs again at it
    other = next(r for r in (3e-4, 3e-2) if r != best['ft'][0])
    for rate, converged in ((best['ft'][0], False), (other, True)):
        path = out / f'ft_de_N10K_D2K_lr{rate:g}' / 'log.json'
        log = json.load(open(path))
        log['converged'] = converged
        json.dump(log, open(path, 'w'))
    run('sweep.py', str(cfg))
    assert best_rates()['ft'][0] == other
    assert read_log(out / 'ft_de_N10K_D8K')['config']['learning_rate'] == other
