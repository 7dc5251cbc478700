"""
One script for the three kinds of run of the study:
    pre-train on English:      python train.py config/pretrain_16M.py
    fine-tune from English:    python train.py config/finetune_de.py --dataset_tokens=1e6
    the from-scratch twin:     python train.py config/scratch_de.py --dataset_tokens=1e6
on one process (add --device=cpu on a laptop) or under DDP:
    torchrun --standalone --nproc_per_node=8 train.py config/pretrain_70M.py
The result is out_dir/log.json (docs/contracts.md), with best.pt (the model at the best
validation loss, which fine-tunes start from) and ckpt.pt (for init_from='resume').
"""

import copy
import json
import math
import os
import signal
import sys
import time
_t_process = time.time()  # the start-up (imports, data, model) counts as run overhead

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from configurator import configure
from model import GPT, GPTConfig, compile_model
from runtime import (Timers, agreed, budget_tokens, check_config, claim_out_dir,
                     compile_cache_counts, crash_message, dense_eval_iters, device_settings,
                     get_batch, load_checkpoint, load_eval_sets, load_meta, load_tokens,
                     load_train_data, mean_loss, optimizer_step, peak_flops, reinit_rare_rows,
                     resume_checkpoint, source_shape, use_compile_cache)
from util import atomic_write, check, fail

sys.stdout.reconfigure(line_buffering=True)  # a redirected run's train.txt shows each line at once

# -----------------------------------------------------------------------------
# default config values (a config file or --key=value overrides any of them)
# I/O
out_dir = 'out/run'
init_from = 'scratch'  # 'scratch', 'resume' (continue out_dir/ckpt.pt) or a checkpoint to fine-tune
reinit_rare = 0.0  # fine-tuning: fresh embedding rows for tokens rarer than this in pre-training
overwrite = False  # replace a run already in out_dir (else refused: one run, one out_dir)
role = ''  # 'pretrain' | 'scratch' | 'finetune'; '' infers it from init_from and the language
tag = ''  # labels a run outside a sweep's grid (a check): fit_scaling.py reports it, not fits it
# data
data_dir = 'data'
dataset = 'builtin_en'  # data_dir/<dataset>/{train,val}.bin + meta.json, written by prepare/
dataset_tokens = 0  # D_f: train on D_f tokens of the (document-shuffled) train split; 0 = all
data_seed = 0  # which D_f tokens: 0 = the first; else documents from an offset this seed draws
data_chunk = 0  # with data_seed: D_f as pieces of this many tokens (0: consecutive documents)
data_documents = False  # ... the pieces being the first tokens of documents the seed draws
extra_val = ''  # comma-separated datasets also evaluated (forgetting), first, last and best only
test_split = True  # val's first half ranks the steps, its second tests the best model at the end
eval_tokens = 262144  # the fixed validation set: eval_tokens tokens spread over the val split
test_tokens = 0  # the test set's tokens (0 = eval_tokens), evaluated once on the best model
eval_batch_size = 0  # sequences per evaluation forward pass; 0 = batch_size, 4 x that on CUDA
# evaluation and stopping
eval_interval = 100
eval_dense = True  # also evaluate every ~25% of the steps so far, up to 5 x eval_interval
log_interval = 10
patience = 0  # validation has stalled after this many evaluations without improvement ...
patience_epochs = 0.0  # ... once also this many epochs of D_f passed since the best one ...
min_iters = 0  # ... and never before this step (0 = patience off: the run ends at its budget)
min_overfit = 0.0  # ... and (> 0) once their mean is this fraction above the best (only
                   # overfitting is final: small models leave a plateau again)
# the budget: max_iters, or max_tokens when > 0, or max_epochs of D_f when > 0 (then clamped to
# [min_tokens, max_tokens]): a budget that grows with D_f lets a run on more data train longer
max_tokens = 0
max_epochs = 0.0
min_tokens = 0
ckpt_share = 0.05  # ckpt.pt at evaluations while its writes take less than this share of the time
# model
n_layer = 4
n_head = 4
n_embd = 256
block_size = 256
dropout = 0.0
bias = False
# optimizer: AdamW, a linear warm-up, then lr_schedule 'cosine' (to min_lr at max_iters) or 'wsd':
# learning_rate until a stall, then from the best evaluation a linear decay to min_lr over
# decay_frac of its steps (the best loss then depends on the data, not on the budget)
lr_schedule = 'cosine'
decay_frac = 0.2
batch_size = 16  # sequences per micro-step (per process)
gradient_accumulation_steps = 1  # micro-steps per optimizer step, summed over all processes
learning_rate = 1e-3
max_iters = 1000
weight_decay = 0.0
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
warmup_iters = 100
min_lr = -1.0  # -1 = learning_rate / 10
# system
device = 'cuda' if torch.cuda.is_available() else 'cpu'
dtype = 'auto'  # 'float32' | 'bfloat16' | 'float16'; auto: bf16 on CUDA (else fp16), fp32 on CPU
compile = None  # torch.compile: None = on for CUDA and CPU bf16/fp16, off for CPU float32
compile_cache = '.cache/torchinductor'  # torch.compile's caches, shared by runs; '' = torch's
seed = 1337
# -----------------------------------------------------------------------------
config_keys = [k for k, v in globals().items()
               if not k.startswith('_') and isinstance(v, (int, float, bool, str, type(None)))]
explicit_keys = configure(globals(), sys.argv[1:])
# -----------------------------------------------------------------------------

def write_failed_log(error):
    """log.json 'failed' with error, where the run has one: a sweep then never waits on it."""
    if master_process and 'log' in globals() and os.path.isdir(out_dir):
        log.update(status='failed', error=error)
        try:
            atomic_write([(log_path, json_file(log))])
        except OSError:
            pass

def interrupted(signum, frame):
    # SIGINT always, SIGTERM/SIGUSR1 before training: one line, no traceback; the last checkpoint
    # stays and log.json says 'running', so the run resumes where it was
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    saved = os.path.exists(os.path.join(out_dir, 'ckpt.pt'))
    fail(f"interrupted by {signal.Signals(signum).name}: " + (
        "continue the run with --init_from=resume" if saved else
        "nothing was saved yet: start the run again"), 128 + signum)

def crashed(kind, value, tb):
    # an unexpected exception (out of memory, a bug): one line, and log.json 'failed' with it, so
    # that nobody (nor a sweep) takes the run for running
    if kind is KeyboardInterrupt or not issubclass(kind, Exception):
        return sys.__excepthook__(kind, value, tb)
    reason, advice = crash_message(kind, value, tb, globals().get('it'),
                                   os.path.exists(os.path.join(out_dir, 'ckpt.pt')))
    write_failed_log(reason)
    print(f"error: {reason}: {advice}", file=sys.stderr)  # then the interpreter exits with 1

def stop_requested(signum, frame):
    # SIGTERM/SIGUSR1 while training (SLURM's pre-emption and time limit, a sweep stopping): acted
    # on after the step in progress, with a ckpt.pt, so that a requeued job repeats no work
    global stop_signal
    stop_signal = stop_signal or signum

sys.excepthook, stop_signal = crashed, None
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
    signal.signal(_sig, interrupted)
check(device.split(':')[0] not in ('cpu', 'cuda') or
      device.startswith('cuda') and not torch.cuda.is_available(),
      f"device={device!r} is not available here: use --device=cpu")

ddp = int(os.environ.get('RANK', -1)) != -1  # torchrun; gloo on the CPU, where tests run DDP
if ddp:
    dist.init_process_group(backend='nccl' if device.startswith('cuda') else 'gloo')
    rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    if device.startswith('cuda'):
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
else:
    rank, world_size = 0, 1
master_process = rank == 0
ckpt_path, best_path, log_path = (os.path.join(out_dir, f)
                                  for f in ('ckpt.pt', 'best.pt', 'log.json'))

def run_files():
    # rerunning a command never replaces a run (nor the best.pt fine-tunes start from)
    found = [p for p in (log_path, ckpt_path, best_path) if os.path.exists(p)]
    check(found and init_from != 'resume' and not overwrite,
          f"{out_dir} holds a run ({', '.join(map(os.path.basename, found))}): continue it with "
          f"--init_from=resume, or start over with another --out_dir or --overwrite=True")
    return found

run_files()
# resume: the run's own ckpt.pt and config (a finished run exits here)
ckpt = None if init_from != 'resume' else resume_checkpoint(globals(), explicit_keys,
                                                             master_process)
config = {k: globals()[k] for k in config_keys}
check(gradient_accumulation_steps % world_size,
      f"gradient_accumulation_steps={gradient_accumulation_steps} must be a multiple of "
      f"the number of processes ({world_size})")
grad_accum = gradient_accumulation_steps // world_size

# -----------------------------------------------------------------------------
# data: uint16 token ids through np.memmap; a checkpoint to start from gives the model's shape
meta = load_meta(data_dir, dataset)
source = ckpt
if ckpt is None and init_from != 'scratch':
    check(not os.path.exists(init_from),
          f"init_from={init_from!r} is neither 'scratch', 'resume' nor an existing checkpoint")
    source = load_checkpoint(init_from, "rerun the run that wrote it, or choose another init_from")
if source is not None:
    globals().update(source_shape(source, init_from, config, explicit_keys, meta, dataset))
check_config(globals())
device_type, dtype, compile, autocast = device_settings(device, dtype, compile)
tokens_per_iter = batch_size * block_size * gradient_accumulation_steps
min_lr = learning_rate / 10 if min_lr < 0 else min_lr
dataset_tokens, data_offset, train_data, dataset_bytes = load_train_data(
    data_dir, dataset, meta, dataset_tokens, block_size, data_seed, data_chunk, data_documents)
budget = budget_tokens(max_tokens, max_epochs, min_tokens, dataset_tokens)
max_iters = math.ceil(budget / tokens_per_iter) if budget > 0 else max_iters
config.update(device=device, dtype=dtype, compile=compile, dataset_tokens=dataset_tokens,
              max_iters=max_iters, min_lr=min_lr)
# batches come from a generator the checkpoint keeps: a resumed run sees the same batches
data_rng = torch.Generator().manual_seed(seed + rank)
val_sets, test_set = load_eval_sets(data_dir, dataset, meta, extra_val, eval_tokens, test_tokens,
                                    test_split, block_size, rank, world_size)

# every input is valid: only now the run's directory (the writes then stage their temp files here)
if master_process:
    out_dir_fd = claim_out_dir(out_dir)  # held until the process ends
    if init_from != 'resume':  # --overwrite=True: the old run goes now, not at its first evaluation
        for p in run_files():
            os.remove(p)

# -----------------------------------------------------------------------------
# model
model_args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                  bias=bias, vocab_size=meta['vocab_size'], dropout=dropout)
torch.manual_seed(seed)
model = GPT(GPTConfig(**model_args))
if source is not None:
    model.load_state_dict(source['model'])
reinit = None  # fine-tuning only: not again on resume, the checkpoint holds the rows
if reinit_rare > 0 and source is not None and ckpt is None:
    pre = source['config']
    pre_train = load_tokens(pre.get('data_dir', data_dir), pre['dataset'], 'train')
    reinit = reinit_rare_rows(model, pre_train, meta['vocab_size'], reinit_rare, seed)
model.to(device)
N = model.n_params()
flops_per_token = model.flops_per_token()
optimizer = model.configure_optimizer(weight_decay, learning_rate, (beta1, beta2), device_type)
scaler = torch.amp.GradScaler(device_type, enabled=dtype == 'float16')
if ckpt is not None:
    optimizer.load_state_dict(ckpt['optimizer'])
    scaler.load_state_dict(ckpt['scaler'])
raw_model = model
if compile:
    use_compile_cache(compile_cache)
    model = compile_model(model)
if ddp:
    model = DDP(model, device_ids=[int(os.environ['LOCAL_RANK'])] if device_type == 'cuda'
                else None)

role = config['role'] = role or ('finetune' if source is not None else
                                  'pretrain' if meta.get('language') == 'en' else 'scratch')

def get_lr(it):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if lr_schedule == 'wsd':
        if decay['start'] is None:
            return learning_rate
        ratio = (it - decay['start']) / max(1, decay['end'] - decay['start'])
        return learning_rate + min(1.0, ratio) * (min_lr - learning_rate)
    ratio = min(1.0, (it - warmup_iters) / max(1, max_iters - warmup_iters))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)

dense_iters = dense_eval_iters(eval_interval)

def is_eval_iter(it):
    # a decay is short: its quarters and its end are evaluated too
    start, end = decay['start'], decay['end']
    quarters = () if start is None else {start + (end - start) * q // 4 for q in (1, 2, 3, 4)}
    return (it % eval_interval == 0 or it == max_iters or it in quarters or
            eval_dense and it in dense_iters)

def stalled():
    """The stopping rule: validation has not improved for patience evaluations and
    patience_epochs of D_f, the run is at least min_iters long, and (min_overfit) it overfits."""
    recent = [e['val_loss'] for e in log['evals'][-patience:]] if patience > 0 else []
    return (patience > 0 and evals_since_best >= patience and it >= min_iters and
            it * tokens_per_iter - best['tokens'] >= patience_epochs * dataset_tokens and
            (min_overfit <= 0 or sum(recent) / len(recent) >= (1 + min_overfit) * best['val_loss']))

def start_decay(trigger):
    restored = best['iter'] if trigger == 'stall' else None  # a stall goes back to the best's state
    steps = it if restored is None else restored
    decay.update(start=it, end=min(max_iters, it + max(1, round(decay_frac * steps))),
                 trigger=trigger, restored=restored)

def run_over():
    """'converged' (the stopping rule ended it), 'budget' or None, at an evaluation."""
    if lr_schedule == 'wsd' and decay['start'] is not None and it >= decay['end']:
        return 'converged' if decay['trigger'] == 'stall' else 'budget'
    if lr_schedule == 'cosine' and stalled():
        return 'converged'
    return 'budget' if it >= max_iters else None

def estimate_loss(x, y):
    # no activations are kept for a backward pass: on CUDA 4x the training batch fits
    step = eval_batch_size or batch_size * (4 if device_type == 'cuda' else 1)
    return mean_loss(model, x, y, step, device, autocast, ddp)

def extra_losses():
    return {k: estimate_loss(*v[:2]) for k, v in val_sets.items() if k != dataset}

# -----------------------------------------------------------------------------
# the run's state: restored whole from ckpt.pt on resume
train_loss_sum, train_loss_n = torch.zeros((), device=device), 0  # since the last evaluation
if ckpt is not None:
    log = ckpt['log']
    it, best, evals_since_best = ckpt['iter'], ckpt['best'], ckpt['evals_since_best']
    best_state, decay = ckpt.get('best_state'), log['decay']
    if len(ckpt['data_rng']) == world_size:  # each process continues its own stream
        data_rng.set_state(ckpt['data_rng'][rank])
        if 'train_loss' in ckpt:  # older checkpoints lack it
            train_loss_sum.copy_(ckpt['train_loss'][rank][0])
            train_loss_n = ckpt['train_loss'][rank][1]
    else:  # another number of processes: a stream per process, new but reproducible
        data_rng.manual_seed(data_rng.initial_seed() + 1_000_003 * (it + 1))
        if master_process:
            print(f"resume: {world_size} process(es), the checkpoint has {len(ckpt['data_rng'])}: "
                  f"each process's batches are drawn anew from its seed, rank and iter {it}")
    torch.set_rng_state(ckpt['torch_rng'])
    log['status'] = 'running'
else:
    it, best, evals_since_best, best_state = 0, None, 0, None
    decay = dict(start=None, end=None, trigger=None, restored=None)  # the wsd decay, once begun
    log = dict(
        schema=1, status='running', role=role, init_from=None if source is None else init_from,
        config=config, reinit=reinit, model=dict(model_args, N=N, flops_per_token=flops_per_token),
        data=dict(dataset=dataset, language=meta.get('language'), tokenizer=meta['tokenizer'],
                  dataset_tokens=dataset_tokens, dataset_bytes=dataset_bytes,
                  data_seed=data_seed, data_offset=data_offset, data_chunk=data_chunk,
                  data_documents=data_documents, test_tokens=test_set and test_set[2],
                  test_bytes=test_set and test_set[3], val_tokens=val_sets[dataset][2],
                  val_bytes=val_sets[dataset][3], extra_val={
                      k: dict(val_tokens=v[2], val_bytes=v[3]) for k, v in val_sets.items()
                      if k != dataset}),
        budget=dict(max_iters=max_iters, max_tokens=max_iters * tokens_per_iter,
                    max_epochs=max_epochs, lr_schedule=lr_schedule),
        decay=decay, converged=False, stop_reason=None, evals=[], best=None, tokens_seen=0,
        flops=0, elapsed_s=0.0, epochs=0.0)
elapsed_before = log['elapsed_s']

def checkpoint(full):
    obj = dict(model=raw_model.state_dict(), model_args=model_args, config=config,
               tokenizer=meta['tokenizer'], iter=it, log=log)
    if full:  # each process's data position, and its train loss since the last evaluation
        per_rank = [(data_rng.get_state(), train_loss_sum.cpu(), train_loss_n)] * world_size
        if ddp:
            dist.all_gather_object(per_rank, per_rank[0])
        obj.update(optimizer=optimizer.state_dict(), scaler=scaler.state_dict(), best=best,
                   evals_since_best=evals_since_best, data_rng=[r[0] for r in per_rank],
                   train_loss=[r[1:] for r in per_rank], torch_rng=torch.get_rng_state(),
                   best_state=best_state, num_threads=torch.get_num_threads())
    return lambda f: torch.save(obj, f)

def json_file(obj):
    return lambda f: f.write(json.dumps(obj, indent=1).encode())

def save(files):
    """Write [(path, write)] together; an I/O error leaves them as they were, and fails."""
    if not master_process:
        return
    try:
        atomic_write(files)
    except OSError as e:
        error = f"writing {e.filename or out_dir} failed: {e.strerror or e}"
        write_failed_log(error)
        fail(f"{error}: free space in (or fix) {out_dir} and run again; "
             f"the last checkpoint is kept")

def finish(status, error=None, stop_reason=None):
    # converged: a point of the converged curve, ended by the stopping rule and not by its budget
    log.update(status=status, stop_reason=stop_reason, converged=stop_reason == 'converged',
               time=timers.breakdown())
    if compile:  # FX graphs loaded from compile_cache (hits) and compiled anew (misses)
        log['compile_cache'] = dict(zip(('hits', 'misses'), compile_cache_counts()),
                                    dir=compile_cache)
    if error:
        log['error'] = error
    save([(log_path, json_file(log))])
    if ddp:
        dist.barrier()  # leave together: rank 0 may still be writing
        dist.destroy_process_group()

if master_process:
    print(f"{role} run -> {out_dir}: N={N:,} non-embedding parameters, "
          f"{flops_per_token:,} FLOPs/token, D_f={dataset_tokens:,} tokens "
          f"({dataset_bytes:,} bytes), {tokens_per_iter:,} tokens/step, max_iters={max_iters}, "
          f"{device} {dtype}{' compiled' if compile else ''}, {world_size} process(es)")
t_start = time.time()
timers = Timers(_t_process, compile, log.get('time', {}))  # a resume adds to its first part's

def save_and_stop():
    """ckpt.pt where the run is, then exit as a signal would (a sweep or a SLURM job resumes it)."""
    log['elapsed_s'] = elapsed_before + time.time() - t_start
    log['time'] = timers.breakdown()
    save([(ckpt_path, checkpoint(full=True)), (log_path, json_file(log))])
    if ddp:
        dist.barrier()  # rank 0 has written it: no process may exit before (torchrun would kill it)
    fail(f"interrupted by {signal.Signals(stop_signal).name}: ckpt.pt written at iter {it}; "
         f"continue the run with --init_from=resume", 128 + stop_signal)

resumed_at = it if ckpt is not None else None
# the log line's MFU: PaLM's FLOPs (as bench.py) against the GPU's bf16 peak (else none)
peak, palm_flops = peak_flops(device), raw_model.flops_per_token(True, attention_factor=12)
interval = dict(t=time.time(), it=it, busy=0.0)

def progress(loss):
    """The log line: this interval's step time (evaluations, checkpoints, compiling left out)."""
    now, busy = time.time(), sum(timers.t[k] for k in ('eval', 'checkpoint', 'compile'))
    dt = max(1e-9, now - interval['t'] - busy + interval['busy']) / max(1, it - interval['it'])
    interval.update(t=now, it=it, busy=busy)
    tok_s = tokens_per_iter / dt
    pace = (now - t_start - timers.t['compile']) / max(1, it - (resumed_at or 0))
    eta = int(pace * (max_iters - it))
    mfu = f", MFU {100 * tok_s * palm_flops / world_size / peak:.1f}%" if peak else ''
    return (f"iter {it}: loss {loss:.4f}, lr {lr:.2e}, {dt * 1000:.0f} ms/iter, {tok_s:,.0f} "
            f"tok/s{mfu}, {100 * it / max_iters:.0f}% done, "
            f"ETA {eta // 3600}h{eta // 60 % 60:02d}m{eta % 60:02d}s")

ckpt_time = 0.0  # seconds spent writing ckpt.pt (with what was written beside it)
for _sig in (signal.SIGTERM, signal.SIGUSR1):
    signal.signal(_sig, stop_requested)
stop_reason = None
while True:
    lr = get_lr(it)
    for group in optimizer.param_groups:
        group['lr'] = lr
    if is_eval_iter(it) and it == resumed_at and run_over():
        stop_reason = run_over()  # killed between the deciding evaluation and the end of the run
        break
    if is_eval_iter(it) and it != resumed_at:
        t0 = time.time()
        losses = {name: estimate_loss(x, y) for name, (x, y, _, _) in val_sets.items()
                  if name == dataset or not log['evals']}
        val_loss = losses[dataset]
        tokens = it * tokens_per_iter
        if ddp:  # the logged train loss is every process's
            dist.all_reduce(train_loss_sum)  # a sum: gloo has no average
            train_loss_sum /= world_size
        train_loss = (train_loss_sum.item() / train_loss_n) if train_loss_n else None
        train_loss_sum.zero_()
        train_loss_n = 0
        timers.add('eval', t0)
        if not all(map(math.isfinite, (val_loss, 0.0 if train_loss is None else train_loss))):
            msg = f"non-finite loss at iter {it} (train {train_loss}, val {val_loss})"
            kept = f"; {out_dir}/ckpt.pt keeps the last good checkpoint" * os.path.exists(ckpt_path)
            finish('failed', msg + kept)
            # a resume keeps the run's learning rate and would repeat the same steps: start over
            fail(msg + kept + ": start the run again with a lower --learning_rate and "
                 "--overwrite=True, or check the data")
        log.update(tokens_seen=tokens, flops=tokens * flops_per_token,
                   epochs=tokens / dataset_tokens, elapsed_s=elapsed_before + time.time() - t_start,
                   time=timers.breakdown())
        log['evals'].append(dict(
            iter=it, tokens=tokens, flops=tokens * flops_per_token, epoch=tokens / dataset_tokens,
            train_loss=train_loss, val_loss=val_loss, lr=lr, elapsed_s=log['elapsed_s'],
            extra_val={k: v for k, v in losses.items() if k != dataset}))
        t0 = time.time()
        files = []  # written together: best.pt is never ahead of ckpt.pt and log.json
        if best is None or val_loss < best['val_loss']:
            best = dict(iter=it, tokens=tokens, flops=tokens * flops_per_token, val_loss=val_loss,
                        val_bpb=val_loss * val_sets[dataset][2] / val_sets[dataset][3]
                        / math.log(2))
            evals_since_best = 0
            files.append((best_path, checkpoint(full=False)))
            if lr_schedule == 'wsd':  # a stall's decay starts from the best evaluation's state
                best_state = dict(optimizer=copy.deepcopy(optimizer.state_dict()), model={
                    k: v.detach().clone() for k, v in raw_model.state_dict().items()})
        else:
            evals_since_best += 1
        log['best'] = best
        stop_reason = run_over()
        if stop_reason and len(val_sets) > 1 and len(losses) == 1:  # the last evaluation
            log['evals'][-1]['extra_val'] = extra = extra_losses()
            losses.update(extra)
        if not stop_reason and lr_schedule == 'wsd' and decay['start'] is None and stalled():
            start_decay('stall')  # before the checkpoint, so that a resumed run decays the same
            raw_model.load_state_dict(best_state['model'])
            optimizer.load_state_dict(best_state['optimizer'])
        # ckpt.pt at the last evaluation, else while its writes take under ckpt_share of the time
        due = stop_reason is not None or ckpt_time < ckpt_share * (time.time() - _t_process)
        full = bool(agreed(int(due), device, ddp))  # rank 0's clock decides for all
        save(files + [(ckpt_path, checkpoint(full=True))] * full + [(log_path, json_file(log))])
        timers.add('checkpoint', t0)
        ckpt_time += (time.time() - t0) * full
        if master_process:
            print(f"iter {it}: val {val_loss:.4f}" +
                  ''.join(f", {k} {v:.4f}" for k, v in losses.items() if k != dataset) +
                  f", best {best['val_loss']:.4f} @ {best['iter']}, "
                  f"epoch {tokens / dataset_tokens:.2f}" + (', ckpt.pt written' if full else ''))
        if stop_reason:
            break
    # SIGTERM/SIGUSR1 to any process: all stop after this iter's evaluation (a resume skips it)
    stop_signal = agreed(stop_signal or 0, device, ddp, dist.ReduceOp.MAX) or None
    if stop_signal:
        save_and_stop()
    if it >= max_iters:
        stop_reason = 'budget'
        break
    # no stall before the budget: it ends with a decay all the same (after the evaluation)
    if lr_schedule == 'wsd' and decay['start'] is None and it >= warmup_iters and \
            it + round(decay_frac * it) >= max_iters:
        start_decay('budget')
    # one optimizer step: grad_accum micro-steps, gradients synchronised on the last only
    t_step = time.time()
    for micro in range(grad_accum):
        if ddp:
            model.require_backward_grad_sync = micro == grad_accum - 1
        t0 = time.time()
        x, y = get_batch(train_data, block_size, batch_size, data_rng, device)
        timers.add('data', t0)
        with autocast:
            _, loss = model(x, y)
        train_loss_sum += loss.detach()
        train_loss_n += 1
        scaler.scale(loss / grad_accum).backward()
    optimizer_step(model, optimizer, scaler, grad_clip)
    timers.add('training', t_step)
    it += 1
    if master_process and log_interval and it % log_interval == 0:
        print(progress(loss.item()))

if test_set is not None or len(val_sets) > 1:  # the best model on the test set and extra_val
    if best_state is None and ddp:
        dist.barrier()  # rank 0 wrote best.pt
    raw_model.load_state_dict(best_state['model'] if best_state is not None else
                              torch.load(best_path, map_location=device)['model'])
    if test_set is not None:
        best['test_loss'] = estimate_loss(*test_set[:2])
        best['test_bpb'] = best['test_loss'] * test_set[2] / test_set[3] / math.log(2)
    if len(val_sets) > 1:
        best['extra_val'] = extra_losses()
    log['best'] = best
status = 'early_stopped' if stop_reason == 'converged' else 'done'
finish(status, stop_reason=stop_reason)
if master_process:
    t = timers.breakdown()
    test = f", test {best['test_loss']:.4f}" if 'test_loss' in best else ''
    print(f"{status}: best val {best['val_loss']:.4f} nats/token ({best['val_bpb']:.4f} bits/byte)"
          f" at iter {best['iter']}{test}; {it} iters in {t['total']:.1f}s: " + ', '.join(
              f"{k} {t[k]:.1f}s ({100 * t[k] / max(t['total'], 1e-9):.0f}%)"
              for k in ('training', 'startup', 'compile', 'data', 'eval', 'checkpoint')))
if ddp:  # all is written: skip the teardown, where a leftover torch.distributed thread
    sys.stdout.flush()  # sometimes aborts a non-zero rank
    sys.stderr.flush()
    os._exit(0)
