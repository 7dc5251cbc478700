"""Time the real training step and report its hardware efficiency (docs/speed.md):
    python bench.py config/pretrain_16M.py --device=cpu --dataset=builtin_en_gpt2 --batch_size=8
    python bench.py --dataset= --vocab_size=50257 --dtype=bfloat16 --json_out=-
train.py's config files and --key=value overrides (the keys a step does not read are ignored),
plus the bench keys below. One step is train.py's: gradient_accumulation_steps x (get_batch,
forward under autocast, backward), clipping, the AdamW step and zero_grad. MFU (PaLM's FLOPs) is
against the best dense matmul throughput measured in this process, beside each repeat; on the CPU
also against a matmul of the model's width (mfu_model_width). Peak memory: CUDA's, else the peak
RSS; page faults a step should be near zero once warm (runtime.keep_freed_memory).
"""

import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch

from configurator import configure, script_defaults
from model import GPT, GPTConfig, compile_model
from runtime import (check_config, device_settings, get_batch, load_meta, load_train_data,
                     optimizer_step, use_compile_cache)

# -----------------------------------------------------------------------------
# train.py's keys and defaults, read from its source, so that its config files run unchanged
globals().update(script_defaults('train.py'))
device = 'cuda' if torch.cuda.is_available() else 'cpu'
batch_size = 8  # but this one (train.py's is 16): the batch docs/speed.md's CPU figures time
# bench keys
vocab_size = 257  # with dataset='' (synthetic uniform tokens): 257 = bytes, 50257 = GPT-2
warmup = 3  # untimed steps first (allocator, oneDNN/cuBLAS heuristics, torch.compile)
steps = 5  # timed steps per repeat
repeats = 5  # the reported figures are medians over the repeats
threads = 0  # torch.set_num_threads (0 = torch's default: one per physical core)
peak_sizes = ''  # comma-separated square matmul sizes for the peak; '' = chosen from the model
profile = False  # also print a torch.profiler table of a few steps
json_out = ''  # write the results as JSON to this path ('-' = stdout, the rest goes to stderr)
# -----------------------------------------------------------------------------
configure(globals(), sys.argv[1:])
sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
# -----------------------------------------------------------------------------

def say(*a):
    print(*a, file=sys.stderr if json_out == '-' else sys.stdout, flush=True)

if threads > 0:
    torch.set_num_threads(threads)
check_config(globals())
device_type, dtype, compile, autocast = device_settings(device, dtype, compile)
cuda = device_type == 'cuda'
if compile:
    use_compile_cache(compile_cache)
torch.manual_seed(seed)

def sync():
    if cuda:
        torch.cuda.synchronize()

# -----------------------------------------------------------------------------
# data: train.py's loader and checks (meta.json, the file's length, every id in the vocabulary)
if dataset:
    meta = load_meta(data_dir, dataset)
    vocab_size = meta['vocab_size']
    train_data = load_train_data(data_dir, dataset, meta, dataset_tokens, block_size, 0, 0,
                                 False)[2]
else:
    train_data = np.random.default_rng(seed).integers(0, vocab_size, 1 << 20).astype(np.uint16)
data_rng = torch.Generator().manual_seed(seed)

# -----------------------------------------------------------------------------
# the model and the training step, as in train.py
model = GPT(GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                      bias=bias, vocab_size=vocab_size, dropout=dropout)).to(device)
optimizer = model.configure_optimizer(weight_decay, learning_rate, (beta1, beta2), device_type)
scaler = torch.amp.GradScaler(device_type, enabled=dtype == 'float16')
step_model = compile_model(model) if compile else model
tokens_per_step = batch_size * block_size * gradient_accumulation_steps
flops_per_token = model.flops_per_token(include_output_layer=True, attention_factor=12)

def train_step():
    for _ in range(gradient_accumulation_steps):
        x, y = get_batch(train_data, block_size, batch_size, data_rng, device)
        with autocast:
            _, loss = step_model(x, y)
        scaler.scale(loss / gradient_accumulation_steps).backward()
    optimizer_step(model, optimizer, scaler, grad_clip)
    return loss

def rss_mb(field):
    """VmRSS / VmHWM of this process in MB (Linux), or None."""
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith(field + ':'))
    except (OSError, StopIteration):
        return None

# -----------------------------------------------------------------------------
# the matmul peak for this dtype on this device, measured now
_operands = {}  # allocated once, before the peak memory is reset: re-measuring adds nothing to it

def matmul_flops(n, loop_s=0.05):
    """The best of 5 timed loops of n x n matmuls, each loop about loop_s long: a fixed count of
    FLOPs would take minutes where a dtype is emulated (bf16 on a CPU without AMX: 2 GFLOP/s)."""
    if n not in _operands:
        _operands[n] = [torch.randn(n, n, device=device, dtype=getattr(torch, dtype))
                        for _ in range(2)]

    def seconds(reps):  # per matmul, over reps of them
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(*_operands[n])
        sync()
        return (time.perf_counter() - t0) / reps
    seconds(2)  # warm-up
    reps = max(1, min(10_000, int(loop_s / max(seconds(1), 1e-7))))
    return 2 * n ** 3 / min(seconds(reps) for _ in range(5))

def measure_peak():
    width = {n_embd} if device_type == 'cpu' else set()  # for mfu_model_width, reported on the CPU
    # the model's width and its MLP width, and larger squares, which run closest to peak
    sizes = ({int(s) for s in peak_sizes.split(',')} if peak_sizes else
             {4 * n_embd, 1024, 2048} | ({4096, 8192} if cuda else set()))
    return {n: matmul_flops(n) for n in sorted(sizes | width)}

# -----------------------------------------------------------------------------
load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
say(f"bench: {n_layer} layers, d_model {n_embd}, {n_head} heads, context {block_size}, vocab "
    f"{vocab_size} (padded {model.lm_head.weight.shape[0]}), batch {batch_size} x "
    f"{gradient_accumulation_steps}, {device} {dtype}{' compiled' if compile else ''}, "
    f"{torch.get_num_threads()} threads, data {dataset or 'synthetic'}"
    + (f", load average {load:.2f}" if load is not None else ''))
peak_by_size = measure_peak()
say(f"matmul peak ({dtype}): " + ', '.join(f"{n}: {f / 1e9:.0f}" for n, f in peak_by_size.items())
    + " GFLOP/s")

t0 = time.perf_counter()
for _ in range(warmup):
    train_step()
sync()
warmup_s = time.perf_counter() - t0
rss_before = rss_mb('VmRSS')
if cuda:
    torch.cuda.reset_peak_memory_stats()
else:
    try:  # "5" resets the peak resident set size (VmHWM) to the current one, Linux >= 4.0
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass
# each repeat's MFU is against the better of the peaks just before and after it: a machine whose
# speed drifts compares like with like, and a peak measured in a slow moment cannot inflate the MFU
times, peaks, faults = [], [peak_by_size], 0
for _ in range(repeats):
    sync()
    f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for _ in range(steps):
        loss = train_step()
    sync()
    times.append((time.perf_counter() - t0) / steps)
    faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0  # memory touched anew
    peaks.append(measure_peak())
loss = loss.item()
peak_mem = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else rss_mb('VmHWM')
mem_kind = 'torch.cuda.max_memory_allocated' if cuda else 'peak RSS (VmHWM) of the process'
peak_delta = None if cuda or peak_mem is None or rss_before is None else peak_mem - rss_before

step_s = statistics.median(times)
tokens_per_s = tokens_per_step / step_s
flops_per_s = tokens_per_s * flops_per_token
mfus, mfus_width = [], []
for t, before, after in zip(times, peaks, peaks[1:]):
    achieved = tokens_per_step / t * flops_per_token
    mfus.append(achieved / max(*before.values(), *after.values()))
    if n_embd in before:
        mfus_width.append(achieved / max(before[n_embd], after[n_embd]))
peak_by_size = {n: max(p[n] for p in peaks) for n in peak_by_size}  # the best seen, for the report
mfu, peak = statistics.median(mfus), max(peak_by_size.values())
mfu_width = statistics.median(mfus_width) if mfus_width else None
peak_width = peak_by_size.get(n_embd) if mfus_width else None
device_peaks = [max(p.values()) for p in peaks]
result = dict(
    config=dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size,
                vocab_size=vocab_size, batch_size=batch_size,
                gradient_accumulation_steps=gradient_accumulation_steps, device=device,
                dtype=dtype, compile=compile, threads=torch.get_num_threads(),
                dataset=dataset or None),
    N=model.n_params(), flops_per_token=flops_per_token,
    flops_convention='PaLM: 6N + 6 V d + 12 L T d',
    tokens_per_step=tokens_per_step, step_ms=step_s * 1e3,
    step_ms_all=[t * 1e3 for t in times], tokens_per_s=tokens_per_s, flops_per_s=flops_per_s,
    peak_flops_per_s=peak, peak_flops_per_s_measured=device_peaks,
    peak_by_size={str(k): v for k, v in peak_by_size.items()}, mfu=mfu, mfu_by_repeat=mfus,
    peak_model_width_flops_per_s=peak_width, mfu_model_width=mfu_width,
    mfu_model_width_by_repeat=mfus_width or None,
    peak_memory_mb=peak_mem, peak_memory_kind=mem_kind, peak_memory_growth_mb=peak_delta,
    page_faults_per_step=faults / (repeats * steps), warmup_s=warmup_s, loss=loss,
    load_average=load, torch=torch.__version__)
say(f"step {step_s * 1e3:.1f} ms (median of {repeats} x {steps} steps; range "
    f"{min(times) * 1e3:.1f}-{max(times) * 1e3:.1f}), {tokens_per_s:,.0f} tokens/s, "
    f"{flops_per_token / 1e6:.2f} MFLOPs/token (PaLM), {flops_per_s / 1e9:.1f} GFLOP/s")
width_mfu = (f"; {mfu_width:.3f} of a {n_embd}-sized square matmul (the model's width, "
             f"{peak_width / 1e9:.0f} GFLOP/s at best)" if mfu_width is not None else '')
say(f"MFU {mfu:.3f} of the measured {dtype} matmul peak (median over the repeats, each against the "
    f"better peak measured beside it; {min(device_peaks) / 1e9:.0f}-"
    f"{max(device_peaks) / 1e9:.0f} GFLOP/s){width_mfu}")
growth = (f"; {peak_delta:+.0f} MB over the {rss_before:.0f} MB before the timed steps"
          if peak_delta is not None else '')
say(f"peak memory {peak_mem:.0f} MB ({mem_kind}{growth}), "
    f"{faults / (repeats * steps):,.0f} page faults a step")
# the load average counts this process too: more than one runnable task per core means sharing
if max(device_peaks) > 1.1 * min(device_peaks) or (load or 0) > (os.cpu_count() or 1):
    say("warning: the machine looks busy (load average or an unstable peak): measure again")

if profile:
    from torch.profiler import ProfilerActivity, profile as torch_profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(steps):
            train_step()
        sync()
    sort = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
    say(prof.key_averages().table(sort_by=sort, row_limit=25))

if json_out == '-':
    print(json.dumps(result))
elif json_out:
    with open(json_out, 'w') as f:
        json.dump(result, f, indent=1)
