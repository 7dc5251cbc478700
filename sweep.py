"""
Run a whole study: the English pre-training run of each model size, then for every language,
size and fine-tuning set size D_f one run fine-tuned from English and its twin from scratch, then
fit_scaling.py on the results.

    python sweep.py config/sweep_builtin.py --jobs=2       # the built-in CPU study
    python sweep.py config/sweep_paper.py --print > cmds    # commands for a cluster, in order
    python sweep.py config/sweep_paper.py --slurm out/slurm # SLURM jobs: bash out/slurm/submit.sh

Finished runs are skipped, interrupted ones resume, a failed one is retried once; starting it
again finishes the grid (one sweep at a time on an out_dir). Run output: <out_dir>/<run>/train.txt.
Each run is `python train.py ...` as --print shows it; without GPUs, in a fork of this process,
which has imported torch once (fork_runs): a run then skips the interpreter's start-up.
"""

import ast
import functools
import zlib
import json
import math
import os
import runpy
import signal
import subprocess
import sys
import time
import zipfile

from tqdm import tqdm

from configurator import configure, script_defaults
from util import fail

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
scratch_only_tokens = []  # D values with scratch runs only, beyond the grid: D_e is read off the
                          # scratch curve at losses the fine-tunes reach
repeats = {}  # D_f -> runs per grid cell, each with its own seed, D_f draw and pre-trained model
seed = 0  # the study's seed: moves every seed at once (a rerun with another tests the intervals)
pretrain_seeds = 1  # pre-trained models per size: the fine-tunes of a size take them in turn
learning_rates = []  # candidates: each language, size and arm is first trained at each on
                     # calibration_tokens and then uses its best (a shared rate favours one arm)
calibration_tokens = []  # the D_f of the calibration runs: one or two values of the grid
english_val = True  # log the English val loss during fine-tuning runs (forgetting)
# runs beside the grid (a fine-tuned and a scratch twin, or init='sc'/'ft' alone), reported beside
# their grid twin, not fitted: e.g. dict(language='de', size='55K', dataset_tokens=8192,
# tag='seed2', seed=2) for the run-to-run spread
checks = []
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
    """Also accept the spellings --print, --jobs N and --slurm DIR."""
    out, i = [], 0
    while i < len(args):
        if args[i] in ('--print', '--cost', '--prepare'):
            out.append({'--print': '--print_only=True', '--cost': '--cost=True',
                        '--prepare': '--prepare=True'}[args[i]])
        elif args[i] == '--jobs' and i + 1 < len(args):
            out.append(f'--jobs={args[i + 1]}')
            i += 1
        elif args[i] == '--slurm' and i + 1 < len(args):
            out.append(f'--slurm_dir={args[i + 1]}')
            i += 1
        else:
            out.append(args[i])
        i += 1
    return out


configure(globals(), normalise_argv(sys.argv[1:]))
if jobs < 1:
    fail(f"jobs={jobs} must be at least 1: run with --jobs=1 or more")
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


def size_label(name):
    return f"N{name}"


def overrides(d):
    return [f'--{k}={v}' for k, v in d.items()]


def size_args(size):
    """A size's config file goes first (the study's configs refine it), its overrides last."""
    if size not in sizes:
        fail(f"size {size!r} is not in sizes ({', '.join(map(repr, sizes))}): fix the check")
    spec = sizes[size]
    if isinstance(spec, str) and not os.path.isfile(spec):
        fail(f"size {size!r} names config file {spec}, which does not exist: fix sizes")
    return ([spec], []) if isinstance(spec, str) else ([], overrides(spec))


def run_seed(r):
    """train.py's seed of the r-th run of a cell (or pre-trained model) in study `seed`."""
    return 1337 + r + 1000 * seed


def data_seed(lang, repeat):
    """The draw of documents of a language's r-th runs: the same for every size, D_f and both
    twins (train.py nests D_f in it), another for each repeat and study seed. Independent draws
    per cell would make each scratch curve jump from one draw of a few documents to the next."""
    return 1 + zlib.crc32(f"{seed}/{lang}/{repeat}".encode()) % (1 << 30)


def pretrain_name(size, p):
    return f"pt_{size_label(size)}" + (f"_p{p + 1}" if p else '')


def transfer_run(lang, size, d, init, extra=None, repeat=0):
    """(name, train.py arguments, the run it needs first) of one transfer run; repeat r > 0 is
    the cell again with the next run seed and its own draw of documents (named _s<r+1>).
    Fine-tunes take the size's pre-trained models in turn, by D_f and repeat."""
    extra = dict(extra or {})
    for key in ('seed', 'data_seed'):  # a check's own seeds move with the study's too
        if key in extra:
            extra[key] += 1000 * seed
    extra = dict({'seed': run_seed(repeat), 'data_seed': data_seed(lang, repeat)}, **extra)
    tag = extra.get('tag', '')
    name = (f"{init}_{lang}_{size_label(size)}_D{human(d)}" + (f"_{tag}" if tag else '')
            + (f"_s{repeat + 1}" if repeat else ''))
    first, last = size_args(size)
    args = [*first, *transfer_configs, *overrides(transfer), *last, *overrides(run_overrides),
            f'--dataset={languages[lang]}', f'--dataset_tokens={d}', *overrides(extra)]
    if english_val and init == 'ft':  # forgetting is a fine-tuned model's: scratch runs skip it
        args.append(f'--extra_val={pretrain_dataset}')
    need = None
    if init == 'ft':
        grid = sorted(set(dataset_tokens) | set(scratch_only_tokens) | {d})
        need = pretrain_name(size, (grid.index(d) + repeat) % pretrain_seeds)
        args.append(f'--init_from={os.path.join(out_dir, need, "best.pt")}')
    return name, args, need


def calibration_cells():
    """The learning-rate calibration: every language, size, arm and candidate rate on each
    calibration D_f, tagged lr<rate> (fit_scaling.py reports them beside the grid), as
    ((language, size, arm, rate), run)."""
    return [((lang, s, init, rate),
             transfer_run(lang, s, d, init, dict(tag=f'lr{rate:g}', learning_rate=rate)))
            for d in sorted(calibration_tokens, reverse=True) for lang in languages for s in sizes
            for init in ('ft', 'sc') for rate in learning_rates]


def calibration_runs():
    return [run for _, run in calibration_cells()]


def chosen_rates():
    """{(language, size, arm): the candidate rate with the lowest mean log test loss over the
    calibration D_f}, from the calibration runs' logs; None while one of them has not finished."""
    losses = {}
    for (lang, size, init, rate), (name, _, _) in calibration_cells():
        if run_state(name) != 'finished':
            return None
        with open(os.path.join(out_dir, name, 'log.json')) as f:
            best = json.load(f)['best']
        losses.setdefault((lang, size, init), {}).setdefault(rate, []).append(
            math.log(best.get('test_loss') or best['val_loss']))
    return {key: min(by_rate, key=lambda r: sum(by_rate[r]) / len(by_rate[r]))
            for key, by_rate in losses.items()}


def make_runs(rates=None):
    """Every run of the study: pre-training, the learning-rate calibration, then the transfer
    runs at each arm's calibrated rate (rates; without calibration, the configs'), the largest D
    first (the longest runs first, so that the slots finish together; a fine-tune waits for its
    pre-training run while scratch runs go ahead)."""
    runs = []
    for s in sizes:
        first, last = size_args(s)
        runs += [(pretrain_name(s, p), [*first, *pretrain_configs, *overrides(pretrain), *last,
                                        *overrides(run_overrides), f'--dataset={pretrain_dataset}',
                                        f'--seed={run_seed(p)}'], None)
                 for p in range(pretrain_seeds)]
    def rate(lang, s, init):
        return {'learning_rate': rates[lang, s, init]} if rates else {}
    transfer = []
    for lang in languages:
        for s in sizes:
            transfer += [(d, transfer_run(lang, s, d, init, rate(lang, s, init), repeat=r))
                         for d in dataset_tokens for r in range(repeats.get(d, 1))
                         for init in ('ft', 'sc')]
            transfer += [(d, transfer_run(lang, s, d, 'sc', rate(lang, s, 'sc')))
                         for d in scratch_only_tokens]
    for c in checks:
        c = dict(c)
        lang, s, d, init = c.pop('language'), c.pop('size'), c.pop('dataset_tokens'), c.pop('init', '')
        if not c.get('tag') or init not in ('', 'ft', 'sc'):
            fail(f"check {c} needs a tag (its runs are named and reported by it) and an init "
                 f"of 'ft', 'sc' or none (both twins)")
        if lang not in languages:
            fail(f"check {c} names language {lang!r}, not one of languages "
                 f"({', '.join(map(repr, languages))}): fix the check")
        transfer += [(d, transfer_run(lang, s, d, i, dict(rate(lang, s, i), **c)))
                     for i in ([init] if init else ['ft', 'sc'])]
    return runs + calibration_runs() + [r for _, r in sorted(transfer, key=lambda x: -x[0])]


def run_state(name, args=()):
    """'finished', 'failed', 'resumable' or 'new', from the run's log.json and ckpt.pt; 'stale'
    where it ran at another learning rate than args ask (a calibration that chose anew)."""
    d = os.path.join(out_dir, name)
    try:
        with open(os.path.join(d, 'log.json')) as f:
            log = json.load(f)
        status = log['status']
    except (OSError, ValueError, KeyError, TypeError):
        status = log = None
    rate = [float(a.split('=', 1)[1]) for a in args
            if learning_rates and a.startswith('--learning_rate=')]  # only a calibration chooses
    if status and rate and (log.get('config') or {}).get('learning_rate') != rate[-1]:
        return 'stale'
    if status in ('done', 'early_stopped'):
        # a pre-training run's best.pt is what its fine-tunes start from: without it, run it again
        if name.startswith('pt_') and not os.path.exists(os.path.join(d, 'best.pt')):
            return 'failed'
        return 'finished'
    if status == 'failed':
        return 'failed'
    return 'resumable' if os.path.exists(os.path.join(d, 'ckpt.pt')) else 'new'


def whole(path):
    """Whether a checkpoint (torch.save's zip archive) is intact, every member's CRC checked,
    without importing torch: a truncated or corrupt ckpt.pt would fail every resume."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def missing_datasets(runs):
    """{data directory: the command that prepares it} for every dataset of the grid not there yet."""
    from prepare.common import prepare_hint
    missing = {}
    for _, args, _ in runs:
        c = resolve(args)
        for name in [c.get('dataset', 'builtin_en'), *filter(None, str(c.get('extra_val', '')).split(','))]:
            d = os.path.join(c.get('data_dir', 'data'), name)
            if not all(os.path.exists(os.path.join(d, f)) for f in ('train.bin', 'meta.json')):
                missing[d] = prepare_hint(name)
    return missing


def prepare_datasets(runs):
    """--prepare (study.sh): run the prepare command of each missing dataset, one after another."""
    for d, cmd in missing_datasets(runs).items():
        if cmd.startswith('python prepare/') and '<' not in cmd and 'PATH' not in cmd:
            print(f"sweep: {d} missing: {cmd}", flush=True)
            if subprocess.run([sys.executable, *cmd.split()[1:]]).returncode:
                fail(f"{cmd} failed (its message is above): fix that and rerun")


def check_datasets(runs):
    """Every dataset of the grid exists before the first run starts: a missing language would
    otherwise fail its runs only after all the pre-training ran."""
    missing = missing_datasets(runs)
    if missing:
        fail(f"{', '.join(missing)} not prepared (train.bin, meta.json): prepare "
             f"{'them' if len(missing) > 1 else 'it'} first with {'; '.join(missing.values())}"
             " (or run the sweep with --prepare)")
    for name, args, _ in runs:  # a D_f beyond its split would fail only after all pre-training
        c = resolve(args)
        path = os.path.join(c.get('data_dir', 'data'), c.get('dataset', 'builtin_en'), 'meta.json')
        try:
            with open(path) as f:
                tokens = json.load(f)['splits']['train']['tokens']
        except (OSError, ValueError, KeyError, TypeError):
            continue  # train.py says what is wrong with it
        if isinstance(tokens, int) and c.get('dataset_tokens', 0) > tokens:
            fail(f"run {name} has dataset_tokens={c['dataset_tokens']:,}, but {path}'s "
                 f"train split holds {tokens:,} tokens: remove it from dataset_tokens (or checks)")


def lock(directory):
    """One sweep at a time on an out_dir: a second one would run every run again beside the first
    and rewrite the best.pt its fine-tunes load. flock, so that a killed sweep's lock dies with it."""
    import fcntl
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(os.path.join(directory, 'sweep.lock'), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        fail(f"cannot write to out_dir={directory} ({e.strerror}): choose another --out_dir")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode().strip() or '?'
        fail(f"another sweep (pid {pid}) is running on {directory}: wait for it "
             f"to finish or stop it, or choose another --out_dir")
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
    # a sweep killed with SIGKILL must not leave runs behind that a restarted sweep would then
    # run a second time next to them (Linux: PR_SET_PDEATHSIG)
    try:
        import ctypes
        ctypes.CDLL('libc.so.6').prctl(1, signal.SIGKILL)
    except OSError:
        pass


children = []  # every process started, for stop()
lock_fd = None


def launch(name, cmd, slot, note=None):
    env = dict(os.environ)
    n_gpus = gpu_count()
    if exclusive(name):
        pass  # the launcher's processes share the whole node
    elif n_gpus:
        env['CUDA_VISIBLE_DEVICES'] = str(slot % n_gpus)
    else:  # split the cores: two runs fighting over every core are slower than one each
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // jobs))
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    out = open(os.path.join(d, 'train.txt'), 'a')
    out.write((note + '\n' if note else '') + ' '.join(cmd) + '\n')
    out.flush()
    if forking() and cmd[:2] == [sys.executable, 'train.py']:
        children.append(ForkedRun(cmd[1:], out, env))
    else:
        children.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         preexec_fn=die_with_parent if os.name == 'posix' else None))
    return children[-1], out


def forking():
    """Whether runs start as forks: CPU runs only, where start-up is a large share of a short run;
    a GPU run, hours long, is better off in a new interpreter than in a fork nobody here could test."""
    return fork_runs and hasattr(os, 'fork') and not gpu_count()


def preload():
    """Import what train.py imports (the optimizer imports dynamo), once, before the first fork.
    Nothing here may run a parallel torch kernel: a forked child would inherit an OpenMP pool
    without its threads (numpy's OpenBLAS starts threads at import, but restarts them in a fork).
    CUDA is not initialised either."""
    t0 = time.time()
    import numpy, torch, torch._dynamo, torch.distributed, torch.nn.parallel  # noqa: F401
    import model, runtime  # noqa: F401
    return time.time() - t0


class ForkedRun:
    """A run of train.py (args[0], a script) in a forked child, with what run_all uses of a
    subprocess.Popen."""

    def __init__(self, args, out, env):
        sys.stdout.flush()  # or the child would write the parent's pending output a second time
        sys.stderr.flush()
        self.returncode = None
        self.pid = os.fork()
        if self.pid == 0:
            os._exit(self._child(args, out, env))

    @staticmethod
    def _child(args, out, env):
        code = 1
        try:
            die_with_parent()
            for sig in (signal.SIGINT, signal.SIGTERM):  # not the sweep's handler: train.py sets its own
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
        return code

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


def gpu_count():
    return int(os.environ.get('NUM_GPUS', '0')) or _cuda_count()


@functools.lru_cache(maxsize=None)
def _cuda_count():
    try:
        out = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=10)
        return len(out.stdout.strip().splitlines()) if out.returncode == 0 else 0
    except (OSError, subprocess.TimeoutExpired):
        return 0


def run_all(runs):
    todo = [r for r in runs if run_state(r[0], r[1]) != 'finished']
    done = {r[0] for r in runs} - {r[0] for r in todo}
    failed, attempts, running = set(), {}, {}
    bar = tqdm(total=len(runs), initial=len(done), unit='run', smoothing=0.05)
    while todo or running:
        if stopping:
            stop(stopping)
        for name, (p, f, slot) in list(running.items()):
            if p.poll() is None:
                continue
            f.close()
            del running[name]
            if run_state(name, next(r[1] for r in runs if r[0] == name)) == 'finished':
                done.add(name)
                bar.update(1)
            elif attempts[name] <= retries:
                tqdm.write(f"{name} failed (exit {p.returncode}): retrying, see {out_dir}/{name}/train.txt")
                todo.insert(0, next(r for r in runs if r[0] == name))
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
            attempts[name] = attempts.get(name, 0) + 1
            state = run_state(name, args)
            ckpt, note = os.path.join(out_dir, name, 'ckpt.pt'), None
            if state == 'resumable' and not whole(ckpt):  # resuming it would fail every time
                os.replace(ckpt, ckpt + '.corrupt')
                note = f"sweep: {ckpt} is truncated or corrupt: moved to ckpt.pt.corrupt, the run starts afresh"
                tqdm.write(note)
                state = 'failed'
            if state in ('failed', 'new', 'stale'):  # a retry starts over; so does a run with
                # no ckpt.pt, and one at a rate the calibration no longer chooses
                for fname in ('ckpt.pt', 'best.pt', 'log.json'):
                    if os.path.exists(os.path.join(out_dir, name, fname)):
                        os.remove(os.path.join(out_dir, name, fname))
            slot = min(set(range(jobs)) - {s for _, _, s in running.values()})
            p, f = launch(name, command(name, args, state == 'resumable'), slot, note)
            running[name] = (p, f, slot)
            bar.set_postfix_str(name)
        time.sleep(0.2)
    bar.close()
    return failed


def print_time_breakdown(runs):
    """Where the runs' time went, summed over every run's log: the share that is not training
    (process start-up, data loading, evaluation, checkpoints) is the study's overhead."""
    total = {}
    for name, _, _ in runs:
        try:
            with open(os.path.join(out_dir, name, 'log.json')) as f:
                t = json.load(f).get('time', {})
        except (OSError, ValueError):
            continue
        for k, v in t.items():
            total[k] = total.get(k, 0.0) + v
    if total.get('total'):
        print(f"time in runs: {total['total']:.0f}s of CPU/GPU slots: " + ', '.join(
            f"{k} {100 * total.get(k, 0) / total['total']:.1f}%"
            for k in ('training', 'startup', 'compile', 'data', 'eval', 'checkpoint')))


def resolve(args):
    """The train.py settings a run's arguments make (its defaults, config files, overrides)."""
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
    """Tokens a run of iters steps evaluates (forward passes), as train.py does: the stopping
    set at each evaluation (every eval_interval steps, the dense early grid and a decay's four
    quarters), the test set once, and a fine-tune's extra val sets at the first and the last
    evaluation and on the best model."""
    from runtime import dense_eval_iters
    interval = c['eval_interval']
    dense = {i for i in dense_eval_iters(interval) if i <= iters and i % interval}
    evals = iters // interval + 1 + (len(dense) if c['eval_dense'] else 0)
    evals += 4 if c['lr_schedule'] == 'wsd' else 0
    window = c['block_size']
    tokens = evals * (c['eval_tokens'] // window * window)
    if c['test_split']:
        tokens += (c['test_tokens'] or c['eval_tokens']) // window * window
    if finetune and c['extra_val']:
        tokens += 3 * len(c['extra_val'].split(',')) * (c['eval_tokens'] // window * window)
    return tokens


def print_cost(runs):
    """FLOPs per run from model.py's FLOPs model, output layer included (it is real work on a GPU),
    at each run's full token budget, evaluation included (a forward pass is a third of a training
    step's FLOPs): early stopping makes transfer runs cheaper than this bound."""
    import torch
    from model import GPT, GPTConfig
    from runtime import budget_tokens
    total, budgets, evaluation = {}, {}, {}
    calibration = {name for name, _, _ in calibration_runs()}
    for name, args, _ in runs:
        c = resolve(args)
        with torch.device('meta'):  # shapes only, no memory
            model = GPT(GPTConfig(n_layer=c['n_layer'], n_head=1, n_embd=c['n_embd'],
                                  block_size=c['block_size'], vocab_size=50257 if 'gpt2' in str(c.get('dataset')) else 257))
        per_iter = c['batch_size'] * c['block_size'] * c['gradient_accumulation_steps']
        tokens = budget_tokens(c['max_tokens'], c['max_epochs'], c['min_tokens'], c['dataset_tokens'])
        tokens = math.ceil(tokens / per_iter) * per_iter if tokens else c['max_iters'] * per_iter
        per_token = model.flops_per_token(include_output_layer=True)
        finetune = c['init_from'] not in ('scratch', 'resume')
        evaluated = eval_tokens_of(c, tokens // per_iter, finetune)
        flops = (tokens + evaluated / 3) * per_token
        kind = 'pre-training' if name.startswith('pt_') else 'lr calibration' \
            if name in calibration else \
            'scratch beyond the grid' if c['dataset_tokens'] not in dataset_tokens else 'transfer (upper bound)'
        key = (kind, f"N={model.n_params() / 1e6:.3g}M")
        n, f = total.get(key, (0, 0.0))
        total[key] = (n + 1, f + flops)
        evaluation[key] = evaluation.get(key, 0.0) + evaluated / 3 * per_token
        if kind != 'pre-training':
            budgets.setdefault((c['dataset_tokens'], tokens, c['lr_schedule']), []).append(name)
    print(f"{'runs':>5} {'kind':<24} {'size':<10} {'FLOPs':>10} {'GPU-hours':>10} {'eval':>6}"
          f"  (at {gpu_flops:.3g} FLOP/s per GPU; eval: evaluation's share of the FLOPs)")
    for key, (n, f) in total.items():
        print(f"{n:>5} {key[0]:<24} {key[1]:<10} {f:>10.3g} {f / gpu_flops / 3600:>10.1f} "
              f"{100 * evaluation[key] / f:>5.1f}%")
    f = sum(f for _, f in total.values())
    print(f"{len(runs):>5} {'all':<24} {'':<10} {f:>10.3g} {f / gpu_flops / 3600:>10.1f} "
          f"{100 * sum(evaluation.values()) / f:>5.1f}%")
    print("\nTransfer budgets by D_f (both twins alike; a run stops on its stall, else it is an "
          "unconverged bound):")
    print(f"{'D_f tokens':>12} {'budget tokens':>14} {'epochs':>8} {'schedule':>9} {'runs':>5}")
    for (d, tokens, schedule), names in sorted(budgets.items()):
        print(f"{d:>12,} {tokens:>14,} {tokens / d:>8.1f} {schedule:>9} {len(names):>5}")


def on_signal(signum, frame):
    # noted, and acted on where the sweep waits (run_all's loop, the fit): stopping right here
    # could find a Popen.wait or a waitpid cut short, holding its lock or its child's exit status
    global stopping
    stopping = signum


def stop(signum):
    """Ctrl-C or SIGTERM: pass it on to the runs (train.py leaves each resumable, with one line in
    its train.txt) and the fit, wait for them, and leave with one line."""
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
    if learning_rates and not calibration_tokens:
        fail("learning_rates needs calibration_tokens (the D_f of the calibration runs): "
             "name one or two values of the grid")
    rates = chosen_rates() if learning_rates else None
    runs = make_runs(rates)
    # with a calibration, the grid's commands (their rates) exist once the calibration finished
    first_stage = [r for r in runs if r[0].startswith('pt_')] + calibration_runs()
    grid_waits = bool(learning_rates) and rates is None
    if not any(need or n.startswith(('ft_', 'sc_')) for n, _, need in runs):
        fail("the grid is empty (no sizes, languages or dataset_tokens, so no transfer "
             "runs): name them in a sweep config, e.g. python sweep.py config/sweep_builtin.py")
    if cost:
        print_cost(runs)
        sys.exit(0)
    if slurm_dir:
        if os.path.exists(slurm_dir) and not os.path.isdir(slurm_dir):
            fail(f"--slurm {slurm_dir} is a file, not a directory: choose another path")
        import slurm
        # a grid that waits for the calibration: its stage job writes and submits the grid's
        then = ['python', 'sweep.py', *normalise_argv(sys.argv[1:]), '&&', 'bash',
                os.path.join(os.path.abspath(slurm_dir), 'submit.sh')]
        slurm.write_jobs(slurm_dir, [(n, command(n, a, False, python='python'), need)
                                     for n, a, need in (first_stage if grid_waits else runs)],
                         then if grid_waits else ['python', 'fit_scaling.py', out_dir, *fit_args],
                         {pretrain_name(s, p): k for s, k in pretrain_nodes.items()
                          for p in range(pretrain_seeds)},
                         partition=slurm_partition, partition_cpu=slurm_partition_cpu,
                         account=slurm_account, setup=slurm_setup, cpus=slurm_cpus, mem=slurm_mem,
                         signal_margin=slurm_signal_margin,
                         time_pretrain=slurm_time_pretrain, time_transfer=slurm_time_transfer,
                         gpus_per_node=gpus_per_node, throttle=array_throttle, options=slurm_options)
        if grid_waits:
            print("sweep: the grid waits for the learning-rate calibration: fit.sbatch, once it "
                  "ended, writes the grid's jobs at each arm's best rate and submits them")
        sys.exit(0)
    if print_only:
        for name, args, _ in (first_stage if grid_waits else runs):  # in dependency order
            print(' '.join(command(name, args, False, python='python')))
        if grid_waits:
            print(f"# then, once these finished, the grid at each arm's calibrated rate: "
                  f"python sweep.py {' '.join(sys.argv[1:])}")
        elif fit:
            print(' '.join(['python', 'fit_scaling.py', out_dir, *fit_args]))
        sys.exit(0)
    if prepare:
        prepare_datasets(runs)
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
        if fit_process.returncode:  # a study whose fit failed has no (or a stale) report; the
            # fit's own error line says why, and stays the one error line
            print(f"sweep: fit_scaling.py {out_dir} failed (exit {fit_process.returncode}): "
                  f"its error is above")
            sys.exit(1)
    if failed:
        fail(f"{len(failed)} run(s) failed: {', '.join(sorted(failed))}; see their "
             f"train.txt, fix them and start the sweep again")
