"""Run a whole study: the English pre-training run of each model size, then for every language,
size and fine-tuning set size D_f one run fine-tuned from English and its twin from scratch, then
fit_scaling.py on the results.

    python sweep.py config/sweep_builtin.py --jobs=2       # the built-in CPU study
    python sweep.py config/sweep_paper.py --print > cmds    # commands for a cluster, in order
    python sweep.py config/sweep_paper.py --slurm out/slurm # SLURM jobs: bash out/slurm/submit.sh
    python sweep.py config/sweep_paper.py --cost            # FLOPs and GPU-hours of every run

Finished runs are skipped, interrupted ones resume, a failed one is retried once; starting it
again finishes the grid (one sweep at a time on an out_dir). Run output: <out_dir>/<run>/train.txt.
Without GPUs each run is a fork of this process, which has imported torch once (fork_runs).
"""

import ast
import collections
import functools
import json
import math
import os
import runpy
import signal
import subprocess
import sys
import time
import zipfile
import zlib

from tqdm import tqdm

from configurator import configure, script_defaults
from util import check, fail

# -----------------------------------------------------------------------------
out_dir = 'out/sweep'
pretrain_dataset = 'builtin_en'
languages = {'de': 'builtin_de', 'es': 'builtin_es', 'zh': 'builtin_zh'}  # language -> dataset
sizes = {}  # name -> train.py overrides for that size (shape, learning_rate), or its config file
pretrain_configs = []  # config files every pre-training run starts from
transfer_configs = []  # ... and every transfer run (fine-tuned and scratch alike)
pretrain = {}  # train.py overrides for the pre-training runs
transfer = {}  # ... for the transfer runs (both twins)
run_overrides = {}  # train.py overrides for every run, after the size's (e.g. device='cpu')
dataset_tokens = [4096, 16384, 65536]  # the D_f grid: a fine-tuned and a scratch run each
scratch_only_tokens = []  # D with scratch runs only, beyond the grid: D_e is read off their curve
repeats = {}  # D -> runs per cell (scratch-only D too): own seed, D_f draw and pre-trained model
seed = 0  # the study's seed: moves every seed at once (a rerun with another tests the intervals)
pretrain_seeds = 1  # pre-trained models per size: the fine-tunes of a size take them in turn
learning_rates = []  # each language, size and arm runs at its best of these on calibration_tokens
calibration_tokens = []  # the D_f of the calibration runs: one or two values of the grid
calibration_round = 0  # --slurm: rounds of the calibration's jobs so far (3 at most)
english_val = True  # log the English val loss during fine-tuning runs (forgetting)
# runs beside the grid (both twins, or init='sc'/'ft' alone), reported, not fitted:
checks = []  # e.g. dict(language='de', size='55K', dataset_tokens=8192, tag='seed2', seed=2)
jobs = 1  # runs at once: one GPU each when there are GPUs, else the CPU cores split evenly
print_only = False  # print the commands instead of running them (--print)
pretrain_launcher = ''  # e.g. 'torchrun --standalone --nproc_per_node=8' for pre-training runs
retries = 1
fork_runs = True  # start CPU runs as forks of this process with torch imported (POSIX; see above)
cost = False  # print the FLOPs and GPU-hours of every run instead of running them (--cost)
gpu_flops = 1.25e14  # achieved FLOP/s per GPU for --cost (an A100 at 40% of its bf16 peak)
prepare = False  # first prepare every dataset the grid needs and lacks (--prepare)
fit = True  # run fit_scaling.py at the end
fit_args = []
# SLURM (--slurm DIR): write the grid as batch jobs for a cluster instead of running it (slurm.py)
slurm_dir = ''
slurm_partition = ''  # '' = the cluster's default
slurm_partition_cpu = ''  # the fit's job (no GPU); '' = the cluster's default
slurm_account = ''
slurm_time_pretrain = '24:00:00'  # a job's time limit: a run cut off is requeued and resumes
slurm_time_transfer = '4:00:00'  # per transfer task (and for the fit)
slurm_setup = ''  # shell lines every job runs first, e.g. 'source .venv/bin/activate'
slurm_options = []  # more #SBATCH options for every job, e.g. ['--qos=long', '--constraint=a100']
gpus_per_node = 8  # pre-training: torchrun over every GPU of its nodes; 0: CPU nodes, one process
slurm_cpus = 8  # CPUs per GPU (--cpus-per-task; a pre-training job's: this x gpus_per_node a node)
slurm_mem = '64G'  # --mem of an array task and of the fit (pre-training jobs take whole nodes)
slurm_signal_margin = 300  # seconds before the time limit: the run writes ckpt.pt, the job requeues
pretrain_nodes = {}  # size -> nodes of its pre-training job (1 if not named), e.g. {'124M': 2}
array_throttle = 0  # at most this many tasks of an array at once (--array=...%N); 0: no limit
# -----------------------------------------------------------------------------

def normalise_argv(args):
    """Also accept the spellings --print, --cost, --prepare, --jobs N and --slurm DIR."""
    flags = {'--print': '--print_only=True', '--cost': '--cost=True', '--prepare': '--prepare=True'}
    out, args = [], list(args)
    while args:
        arg = args.pop(0)
        if arg in ('--jobs', '--slurm') and args:
            arg = f"{'--jobs' if arg == '--jobs' else '--slurm_dir'}={args.pop(0)}"
        out.append(flags.get(arg, arg))
    return out

configure(globals(), normalise_argv(sys.argv[1:]))
check(jobs < 1, f"jobs={jobs} must be at least 1: run with --jobs=1 or more")
# -----------------------------------------------------------------------------

def human(n):
    """2048 -> '2K', 1048576 -> '1M', 100000 -> '100K': short run names for D_f."""
    for unit, div in (('G', 1 << 30), ('M', 1 << 20), ('K', 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    for unit, div in (('G', 10**9), ('M', 10**6), ('K', 10**3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)

def overrides(d):
    return [f'--{k}={v}' for k, v in d.items()]

def train_args(size, configs, stage, dataset):
    """A size's config file goes first (the study's configs refine it), its overrides last."""
    check(size not in sizes,
          f"size {size!r} is not in sizes ({', '.join(map(repr, sizes))}): fix the check")
    spec = sizes[size]
    check(isinstance(spec, str) and not os.path.isfile(spec),
          f"size {size!r} names config file {spec}, which does not exist: fix sizes")
    first, last = ([spec], []) if isinstance(spec, str) else ([], overrides(spec))
    return [*first, *configs, *overrides(stage), *last, *overrides(run_overrides),
            f'--dataset={dataset}']

def run_seed(r):
    """train.py's seed of the r-th run of a cell (or pre-trained model) in study `seed`."""
    return 1337 + r + 1000 * seed

def data_seed(lang, repeat):
    """The draw of documents of a language's r-th runs, the same for every size, D_f (train.py
    nests them) and both twins: a draw per cell would make the scratch curve jump between draws."""
    return 1 + zlib.crc32(f"{seed}/{lang}/{repeat}".encode()) % (1 << 30)

def pretrain_name(size, p):
    return f"pt_N{size}" + (f"_p{p + 1}" if p else '')

def pretrain_run(size, p):
    args = train_args(size, pretrain_configs, pretrain, pretrain_dataset)
    return pretrain_name(size, p), [*args, f'--seed={run_seed(p)}'], None

def transfer_run(lang, size, d, init, extra=None, repeat=0):
    """(name, train.py arguments, the run it needs first); repeat r > 0: the cell with the next
    seeds (_s<r+1>). Fine-tunes take the size's pre-trained models in turn."""
    extra = {k: v + 1000 * seed if k in ('seed', 'data_seed') else v  # a check's own seeds too
             for k, v in (extra or {}).items()}
    extra = dict({'seed': run_seed(repeat), 'data_seed': data_seed(lang, repeat)}, **extra)
    name = (f"{init}_{lang}_N{size}_D{human(d)}" + (f"_{extra['tag']}" if extra.get('tag') else '')
            + (f"_s{repeat + 1}" if repeat else ''))
    args = [*train_args(size, transfer_configs, transfer, languages[lang]),
            f'--dataset_tokens={d}', *overrides(extra)]
    if init != 'ft':
        return name, args, None
    if english_val:  # forgetting is a fine-tuned model's: scratch runs skip it
        args.append(f'--extra_val={pretrain_dataset}')
    grid = sorted(set(dataset_tokens) | set(scratch_only_tokens) | {d})
    need = pretrain_name(size, (grid.index(d) + repeat) % pretrain_seeds)
    return name, args + [f'--init_from={os.path.join(out_dir, need, "best.pt")}'], need

def calibration_cells():
    """((language, size, arm, rate), run) of every candidate rate on each calibration D_f."""
    return [((lang, s, init, rate),
             transfer_run(lang, s, d, init, dict(tag=f'lr{rate:g}', learning_rate=rate)))
            for d in sorted(calibration_tokens, reverse=True) for lang in languages for s in sizes
            for init in ('ft', 'sc') for rate in learning_rates]

def calibration_runs():
    return [run for _, run in calibration_cells()]

def chosen_rates():
    """{(language, size, arm): the rate with the lowest mean log test loss over the calibration
    D_f among the rates whose runs converged (a run its budget stopped is a bound, and the grid
    needs points), among all where none did}; None while a calibration run has not finished."""
    losses = collections.defaultdict(lambda: collections.defaultdict(list))
    for (lang, size, init, rate), (name, _, _) in calibration_cells():
        if run_state(name) != 'finished':
            return None
        log = read_log(name)
        loss = math.log(log['best'].get('test_loss') or log['best']['val_loss'])
        losses[lang, size, init][rate].append((loss, log.get('converged', True)))
    def best(by_rate):
        converged = {r: runs for r, runs in by_rate.items() if all(c for _, c in runs)}
        candidates = converged or by_rate
        return min(candidates, key=lambda r: sum(l for l, _ in candidates[r]) / len(candidates[r]))
    return {key: best(by_rate) for key, by_rate in losses.items()}

def make_runs(rates=None):
    """Every run: pre-training, the calibration, then the transfer runs at each arm's calibrated
    rate (rates; else the configs'), largest D first, so that the slots finish together."""
    runs = [pretrain_run(s, p) for s in sizes for p in range(pretrain_seeds)]
    def at_rate(lang, s, d, init, extra=None, repeat=0):
        rate = {'learning_rate': rates[lang, s, init]} if rates else {}
        return d, transfer_run(lang, s, d, init, dict(rate, **(extra or {})), repeat)
    transfer = []
    for lang in languages:
        for s in sizes:
            transfer += [at_rate(lang, s, d, init, repeat=r) for d in dataset_tokens
                         for r in range(repeats.get(d, 1)) for init in ('ft', 'sc')]
            transfer += [at_rate(lang, s, d, 'sc', repeat=r) for d in scratch_only_tokens
                         for r in range(repeats.get(d, 1))]
    for c in checks:
        c = dict(c)
        lang, s, d = c.pop('language'), c.pop('size'), c.pop('dataset_tokens')
        init = c.pop('init', '')
        check(not c.get('tag') or init not in ('', 'ft', 'sc'), f"check {c} needs a tag (its runs "
              "are named and reported by it) and an init of 'ft', 'sc' or none (both twins)")
        check(lang not in languages, f"check {c} names language {lang!r}, not one of languages "
              f"({', '.join(map(repr, languages))}): fix the check")
        transfer += [at_rate(lang, s, d, i, c) for i in ([init] if init else ['ft', 'sc'])]
    return runs + calibration_runs() + [r for _, r in sorted(transfer, key=lambda x: -x[0])]

def read_log(name):
    """A run's log.json, or None where it is missing or not JSON."""
    try:
        with open(os.path.join(out_dir, name, 'log.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def run_state(name, args=()):
    """'finished', 'failed', 'resumable' or 'new', from the run's log.json and ckpt.pt; 'stale'
    where it ran at another learning rate than args ask (a calibration that chose anew)."""
    d, log = os.path.join(out_dir, name), read_log(name)
    status = log.get('status') if isinstance(log, dict) else None
    rate = [float(a.split('=', 1)[1]) for a in args
            if learning_rates and a.startswith('--learning_rate=')]  # only a calibration chooses
    if status and rate and (log.get('config') or {}).get('learning_rate') != rate[-1]:
        return 'stale'
    if status in ('done', 'early_stopped'):  # a pre-training run's fine-tunes need its best.pt
        return 'failed' if name.startswith('pt_') and not os.path.exists(
            os.path.join(d, 'best.pt')) else 'finished'
    if status == 'failed':
        return 'failed'
    return 'resumable' if os.path.exists(os.path.join(d, 'ckpt.pt')) else 'new'

def whole(path):
    """Whether a checkpoint (torch.save's zip archive) is intact, every member's CRC checked."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False

def check_datasets(runs):
    """Every dataset and D_f of the grid exists before the first run starts (not once the
    pre-training ran); --prepare first prepares the missing ones, one after another."""
    from prepare.common import prepare_hint
    configs = [(name, resolve(args)) for name, args, _ in runs]
    dirs = {os.path.join(c['data_dir'], n): n for _, c in configs
            for n in [c['dataset'], *filter(None, str(c['extra_val']).split(','))]}
    def missing():
        return {d: prepare_hint(n) for d, n in dirs.items()
                if not all(os.path.exists(os.path.join(d, f)) for f in ('train.bin', 'meta.json'))}
    for d, cmd in missing().items() if prepare else ():
        if cmd.startswith('python prepare/') and '<' not in cmd and 'PATH' not in cmd:
            print(f"sweep: {d} missing: {cmd}", flush=True)
            check(subprocess.run([sys.executable, *cmd.split()[1:]]).returncode,
                  f"{cmd} failed (its message is above): fix that and rerun")
    todo = missing()
    check(todo, f"{', '.join(todo)} not prepared (train.bin, meta.json): prepare "
          f"{'them' if len(todo) > 1 else 'it'} first with {'; '.join(todo.values())}"
          " (or run the sweep with --prepare)")
    for name, c in configs:
        path = os.path.join(c['data_dir'], c['dataset'], 'meta.json')
        try:
            with open(path) as f:
                tokens = json.load(f)['splits']['train']['tokens']
        except (OSError, ValueError, KeyError, TypeError):
            continue  # train.py says what is wrong with it
        if isinstance(tokens, int) and c['dataset_tokens'] > tokens:
            fail(f"run {name} has dataset_tokens={c['dataset_tokens']:,}, but {path}'s "
                 f"train split holds {tokens:,} tokens: remove it from dataset_tokens (or checks)")

def lock(directory):
    """One sweep at a time on an out_dir (a second would rerun its runs and rewrite their best.pt);
    flock, so that the lock dies with its sweep."""
    import fcntl
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(os.path.join(directory, 'sweep.lock'), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        fail(f"cannot write to out_dir={directory} ({e.strerror}): choose another --out_dir")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fail(f"another sweep (pid {os.read(fd, 32).decode().strip() or '?'}) is running on "
             f"{directory}: wait for it to finish or stop it, or choose another --out_dir")
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd

def exclusive(name):
    return name.startswith('pt_') and bool(pretrain_launcher)

def command(name, args, resume, python=sys.executable):
    if resume:  # a resumed run takes its whole config from its checkpoint
        args = ['--init_from=resume']
    launcher = pretrain_launcher.split() if exclusive(name) else [python]
    return [*launcher, 'train.py', *args, f'--out_dir={os.path.join(out_dir, name)}']

def die_with_parent():
    """Runs die with their sweep, even a SIGKILLed one: a restarted sweep would run them twice."""
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except OSError:
        pass

children = []  # every process started, for stop()
lock_fd = None

def start(run, slot):
    """Start a run in a slot (afresh if it failed, is new or stale); its output to train.txt."""
    name, args, _ = run
    run_dir = os.path.join(out_dir, name)
    state, ckpt, note = run_state(name, args), os.path.join(run_dir, 'ckpt.pt'), ''
    if state == 'resumable' and not whole(ckpt):  # resuming it would fail every time
        os.replace(ckpt, ckpt + '.corrupt')
        note = (f"sweep: {ckpt} is truncated or corrupt: moved to ckpt.pt.corrupt, the run "
                "starts afresh")
        tqdm.write(note)
        state = 'failed'
    if state in ('failed', 'new', 'stale'):  # no ckpt.pt, or one at a rate no longer chosen
        for f in ('ckpt.pt', 'best.pt', 'log.json'):
            if os.path.exists(os.path.join(run_dir, f)):
                os.remove(os.path.join(run_dir, f))
    cmd, env = command(name, args, state == 'resumable'), dict(os.environ)
    if exclusive(name):
        pass  # the launcher's processes share the whole node
    elif gpu_count():
        env['CUDA_VISIBLE_DEVICES'] = str(slot % gpu_count())
    else:  # split the cores: two runs fighting over every core are slower than one each
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // jobs))
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, 'train.txt'), 'a') as out:  # the run holds its own copy
        out.write((note + '\n' if note else '') + ' '.join(cmd) + '\n')
        out.flush()
        if forking() and cmd[:2] == [sys.executable, 'train.py']:
            children.append(ForkedRun(cmd[1:], out, env))
        else:
            children.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                             preexec_fn=die_with_parent))
    return children[-1]

def forking():
    """CPU runs start as forks (start-up is much of a short run); GPU runs in a new interpreter."""
    return fork_runs and hasattr(os, 'fork') and not gpu_count()

def preload():
    """Import what train.py imports (the optimizer imports dynamo) once, before the first fork; no
    parallel torch kernel (a fork inherits an OpenMP pool without its threads), no CUDA."""
    t0 = time.time()
    import numpy, torch, torch._dynamo, torch.distributed, torch.nn.parallel  # noqa: F401
    import model, runtime  # noqa: F401
    return time.time() - t0

class ForkedRun:
    """train.py (args[0]) run in a forked child, with what run_all uses of a subprocess.Popen."""

    def __init__(self, args, out, env):
        sys.stdout.flush()  # or the child would write the parent's pending output a second time
        sys.stderr.flush()
        self.returncode, self.pid = None, os.fork()
        if self.pid:
            return
        code = 1
        try:
            die_with_parent()
            for sig in (signal.SIGINT, signal.SIGTERM):  # train.py sets its own handlers
                signal.signal(sig, signal.SIG_DFL)
            if lock_fd is not None:  # the lock is the sweep's, not held on by its runs
                os.close(lock_fd)
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            os.environ.clear()
            os.environ.update(env)
            if 'OMP_NUM_THREADS' in env:  # torch read the variable at import, in the parent
                import torch
                torch.set_num_threads(int(env['OMP_NUM_THREADS']))
            sys.argv = list(args)
            runpy.run_path(args[0], run_name='__main__')
            code = 0
        except SystemExit as e:  # what the interpreter does with sys.exit's argument
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            sys.excepthook(*sys.exc_info())  # train.py's: log.json 'failed' and one line
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)

    def poll(self, flags=os.WNOHANG):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self):
        return self.poll(0)

    def send_signal(self, sig):
        if self.returncode is None:
            os.kill(self.pid, sig)

@functools.lru_cache(maxsize=None)
def gpu_count():
    """NUM_GPUS, else the GPUs nvidia-smi lists."""
    if int(os.environ.get('NUM_GPUS', '0')):
        return int(os.environ['NUM_GPUS'])
    try:
        out = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=10)
        return len(out.stdout.strip().splitlines()) if out.returncode == 0 else 0
    except (OSError, subprocess.TimeoutExpired):
        return 0

def run_all(runs):
    """Run runs, jobs at a time, each once the run it needs finished, a failed one again up to
    retries times; returns the names of those that failed."""
    by_name = {r[0]: r for r in reversed(runs)}  # the first run of a name
    todo = [r for r in runs if run_state(r[0], r[1]) != 'finished']
    done = set(by_name) - {r[0] for r in todo}
    failed, attempts, running = set(), collections.Counter(), {}
    bar = tqdm(total=len(runs), initial=len(done), unit='run', smoothing=0.05)
    while todo or running:
        if stopping:
            stop(stopping)
        for name, (p, slot) in list(running.items()):
            if p.poll() is None:
                continue
            del running[name]
            if run_state(name, by_name[name][1]) == 'finished':
                done.add(name)
                bar.update(1)
            elif attempts[name] <= retries:
                tqdm.write(f"{name} failed (exit {p.returncode}): retrying, see "
                           f"{out_dir}/{name}/train.txt")
                todo.insert(0, by_name[name])
            else:
                failed.add(name)
                tqdm.write(f"{name} failed again: giving up, see {out_dir}/{name}/train.txt")
        for r in list(todo):
            name, args, need = r
            if len(running) >= jobs or any(exclusive(n) for n in running) or \
                    (exclusive(name) and running):
                break
            if need in failed:
                todo.remove(r)
                failed.add(name)
                tqdm.write(f"{name} skipped: {need} failed")
                continue
            if need is not None and need not in done:
                continue
            todo.remove(r)
            attempts[name] += 1
            slot = min(set(range(jobs)) - {s for _, s in running.values()})
            running[name] = (start(r, slot), slot)
            bar.set_postfix_str(name)
        time.sleep(0.2)
    bar.close()
    return failed

def print_time_breakdown(runs):
    """Where the runs' time went, summed over their logs: what is not training is overhead."""
    total = collections.Counter()
    for name, _, _ in runs:
        total.update((read_log(name) or {}).get('time', {}))
    if total.get('total'):
        print(f"time in runs: {total['total']:.0f}s of CPU/GPU slots: " + ', '.join(
            f"{k} {100 * total.get(k, 0) / total['total']:.1f}%"
            for k in ('training', 'startup', 'compile', 'data', 'eval', 'checkpoint')))

def resolve(args):
    """The train.py settings a run's arguments make (its defaults, config files, overrides); an
    unknown key is left to train.py, which fails that run alone."""
    cfg = script_defaults('train.py')
    for a in args:
        if a.startswith('--'):
            k, _, v = a[2:].partition('=')
            try:
                cfg[k] = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                cfg[k] = v
        else:
            try:
                exec(compile(open(a).read(), a, 'exec'), {}, cfg)
            except (OSError, SyntaxError) as e:
                fail(f"config file {a}: {e.strerror if isinstance(e, OSError) else e}")
    return cfg

def eval_tokens_of(c, iters, finetune):
    """Tokens a run of iters steps evaluates, as train.py does: the val set at each evaluation
    (with the dense early ones and a decay's quarters), the test set once, and a fine-tune's
    extra_val sets at the first and last evaluation and on the best model."""
    from runtime import dense_eval_iters
    interval, window = c['eval_interval'], c['block_size']
    val = c['eval_tokens'] // window * window
    dense = {i for i in dense_eval_iters(interval) if i <= iters and i % interval}
    evals = iters // interval + 1 + (len(dense) if c['eval_dense'] else 0)
    tokens = (evals + (4 if c['lr_schedule'] == 'wsd' else 0)) * val
    if c['test_split']:
        tokens += (c['test_tokens'] or c['eval_tokens']) // window * window
    if finetune and c['extra_val']:
        tokens += 3 * len(c['extra_val'].split(',')) * val
    return tokens

def print_cost(runs):
    """FLOPs per run (output layer included) at its full token budget, evaluation included (a
    forward pass is a third of a step's): early stopping makes transfer runs cheaper."""
    import torch
    from model import GPT, GPTConfig
    from runtime import budget_tokens
    rows, budgets = {}, collections.Counter()  # rows: (kind, size) -> [runs, FLOPs, eval FLOPs]
    calibration = {name for name, _, _ in calibration_runs()}
    for name, args, _ in runs:
        c = resolve(args)
        with torch.device('meta'):  # shapes only, no memory
            model = GPT(GPTConfig(n_layer=c['n_layer'], n_head=1, n_embd=c['n_embd'],
                                  block_size=c['block_size'],
                                  vocab_size=50257 if 'gpt2' in str(c['dataset']) else 257))
        per_iter = c['batch_size'] * c['block_size'] * c['gradient_accumulation_steps']
        tokens = budget_tokens(c['max_tokens'], c['max_epochs'], c['min_tokens'],
                               c['dataset_tokens'])
        tokens = math.ceil(tokens / per_iter) * per_iter if tokens else c['max_iters'] * per_iter
        per_token = model.flops_per_token(include_output_layer=True)
        evaluated = eval_tokens_of(c, tokens // per_iter, c['init_from'] not in ('scratch',
                                                                               'resume'))
        kind = ('pre-training' if name.startswith('pt_') else
                'lr calibration' if name in calibration else
                'scratch beyond the grid' if c['dataset_tokens'] not in dataset_tokens else
                'transfer (upper bound)')
        row = rows.setdefault((kind, f"N={model.n_params() / 1e6:.3g}M"), [0, 0.0, 0.0])
        row[:] = (row[0] + 1, row[1] + (tokens + evaluated / 3) * per_token,
                  row[2] + evaluated / 3 * per_token)
        if kind != 'pre-training':
            budgets[c['dataset_tokens'], tokens, c['lr_schedule']] += 1
    print(f"{'runs':>5} {'kind':<24} {'size':<10} {'FLOPs':>10} {'GPU-hours':>10} {'eval':>6}"
          f"  (at {gpu_flops:.3g} FLOP/s per GPU; eval: evaluation's share of the FLOPs)")
    rows['all', ''] = [len(runs), *(sum(row[i] for row in rows.values()) for i in (1, 2))]
    for (kind, size), (n, f, e) in rows.items():
        print(f"{n:>5} {kind:<24} {size:<10} {f:>10.3g} {f / gpu_flops / 3600:>10.1f} "
              f"{100 * e / f:>5.1f}%")
    print("\nTransfer budgets by D_f (both twins alike; a run stops on its stall, else it is an "
          "unconverged bound):")
    print(f"{'D_f tokens':>12} {'budget tokens':>14} {'epochs':>8} {'schedule':>9} {'runs':>5}")
    for (d, tokens, schedule), n in sorted(budgets.items()):
        print(f"{d:>12,} {tokens:>14,} {tokens / d:>8.1f} {schedule:>9} {n:>5}")

def write_slurm(stage, grid_waits):
    """The stage's runs as SLURM jobs, then the fit, or (grid_waits) this sweep again, which
    writes and submits the grid's jobs at the calibrated rates."""
    check(os.path.exists(slurm_dir) and not os.path.isdir(slurm_dir),
          f"--slurm {slurm_dir} is a file, not a directory: choose another path")
    # a calibration run that fails every time must not have its jobs resubmitted forever
    check(grid_waits and calibration_round >= 3, f"the learning-rate calibration's jobs ran "
          f"{calibration_round} times and some of its runs did not finish: see their train.txt "
          f"under {out_dir} and {slurm_dir}/logs, fix them, then run sweep.py --slurm again")
    import slurm
    argv = [a for a in normalise_argv(sys.argv[1:]) if not a.startswith('--calibration_round=')]
    then = ['python', 'sweep.py', *argv, f'--calibration_round={calibration_round + 1}', '&&',
            'bash', os.path.join(os.path.abspath(slurm_dir), 'submit.sh')]
    settings = {k[len('slurm_'):]: v for k, v in globals().items()
                if k.startswith('slurm_') and k != 'slurm_dir'}  # the settings, not the place
    slurm.write_jobs(slurm_dir, [(n, command(n, a, False, python='python'), need)
                                 for n, a, need in stage],
                     then if grid_waits else ['python', 'fit_scaling.py', out_dir, *fit_args],
                     {pretrain_name(s, p): k for s, k in pretrain_nodes.items()
                      for p in range(pretrain_seeds)},
                     gpus_per_node=gpus_per_node, throttle=array_throttle, **settings)
    if grid_waits:
        print("sweep: the grid waits for the learning-rate calibration: fit.sbatch, once it "
              "ended, writes the grid's jobs at each arm's best rate and submits them")

def on_signal(signum, frame):
    # acted on where the sweep waits: here a Popen.wait or waitpid may be cut short mid-way
    global stopping
    stopping = signum

def stop(signum):
    """Ctrl-C or SIGTERM: pass it on to the runs (each stays resumable) and the fit, wait for
    them, and leave with one line."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # one stop; a second Ctrl-C must not cut it short
    live = [p for p in children if p.poll() is None]
    for p in live:
        p.send_signal(signal.SIGTERM if p is fit_process else signum)
    for p in live:
        p.wait()
    for bar in list(tqdm._instances):  # the progress bar ends its line before ours
        bar.close()
    fail(f"interrupted by {signal.Signals(signum).name}: {len(live)} process(es) stopped; "
         f"start the sweep again to finish the grid", 128 + signum)

stopping = None  # the signal that asked the sweep to stop
fit_process = None
if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
    check(learning_rates and not calibration_tokens, "learning_rates needs calibration_tokens (the "
          "D_f of the calibration runs): name one or two values of the grid")
    rates = chosen_rates() if learning_rates else None
    runs = make_runs(rates)
    # with a calibration, the grid's commands (their rates) exist once the calibration finished
    first_stage = [r for r in runs if r[0].startswith('pt_')] + calibration_runs()
    grid_waits = bool(learning_rates) and rates is None
    stage = first_stage if grid_waits else runs
    check(not any(need or n.startswith(('ft_', 'sc_')) for n, _, need in runs),
          "the grid is empty (no sizes, languages or dataset_tokens, so no transfer runs): name "
          "them in a sweep config, e.g. python sweep.py config/sweep_builtin.py")
    if cost:
        print_cost(runs)
    elif slurm_dir:
        write_slurm(stage, grid_waits)
    elif print_only:
        for name, args, _ in stage:  # in dependency order
            print(' '.join(command(name, args, False, python='python')))
        if grid_waits:
            print(f"# then, once these finished, the grid at each arm's calibrated rate: "
                  f"python sweep.py {' '.join(sys.argv[1:])}")
        elif fit:
            print(' '.join(['python', 'fit_scaling.py', out_dir, *fit_args]))
    if cost or slurm_dir or print_only:
        sys.exit(0)
    check_datasets(runs)
    lock_fd = lock(out_dir)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    t0 = time.time()
    if forking():
        tqdm.monitor_interval = 0  # no monitor thread: the forks must come from a single thread
        print(f"sweep: torch imported once for all runs in {preload():.1f}s")
    failed = set()
    if grid_waits:
        failed = run_all(first_stage)
        rates = None if failed else chosen_rates()
        runs = make_runs(rates) if rates else first_stage
    if rates:
        print("sweep: calibrated learning rates (fine-tuned / scratch): " + ', '.join(
            f"{lang} {s} {rates[lang, s, 'ft']:g} / {rates[lang, s, 'sc']:g}"
            for lang in languages for s in sizes))
    failed |= run_all([r for r in runs if r[0] not in failed])
    print(f"sweep: {len(runs) - len(failed)}/{len(runs)} runs finished in {time.time() - t0:.0f}s"
          + (f"; failed: {', '.join(sorted(failed))}" if failed else ''))
    print_time_breakdown(runs)
    if fit:  # its own session, so that a Ctrl-C reaches it as stop()'s SIGTERM, without a traceback
        fit_process = subprocess.Popen([sys.executable, 'fit_scaling.py', out_dir, *fit_args],
                                       preexec_fn=die_with_parent, start_new_session=True)
        children.append(fit_process)
        while fit_process.poll() is None:
            if stopping:
                stop(stopping)
            time.sleep(0.2)
        if fit_process.returncode:  # the fit's own error line says why, and stays the one error
            print(f"sweep: fit_scaling.py {out_dir} failed (exit {fit_process.returncode}): "
                  f"its error is above")
            sys.exit(1)
    check(failed, f"{len(failed)} run(s) failed: {', '.join(sorted(failed))}; see their "
          f"train.txt, fix them and start the sweep again")
