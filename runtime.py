"""
What train.py and bench.py share, so that bench.py times exactly what train.py runs: the device
settings (dtype, autocast, torch.compile defaults and caches, the CPU's malloc settings), the data
files checked and read, the batch loader and the optimizer step; the token budget of a run, which
sweep.py's --cost needs too; and what train.py and sample.py share: reading a checkpoint.
"""

import ctypes
import os
import shutil
import sys

import json

import numpy as np
import torch

from prepare.common import TOKENIZERS, prepare_hint, sha256_file


def device_settings(device, dtype, compile):
    """(device_type, dtype, compile, autocast context) from the config values: dtype 'auto' is
    bf16 on CUDA (fp16 where bf16 is missing, with a GradScaler in the caller) and float32 on the
    CPU. compile None is on for CUDA, and on the CPU for bf16/fp16, where inductor fuses autocast's
    casts into the element-wise work around the matmuls (bench.py's bf16 step about 10% faster); off
    for float32 on the CPU, which gains nothing from it, so that short runs (the built-in study's)
    do not spend 15-20 s compiling, and on a CPU machine without a C++ compiler."""
    device_type = 'cuda' if device.startswith('cuda') else 'cpu'
    if dtype == 'auto':
        dtype = ('bfloat16' if torch.cuda.is_bf16_supported() else 'float16') \
            if device_type == 'cuda' else 'float32'
    if compile is None:  # on the CPU inductor needs a C++ compiler (its default: $CXX, else g++;
        # clang++ on macOS): eager without one
        cxx = os.environ.get('CXX', 'clang++' if sys.platform == 'darwin' else 'g++')
        compile = device_type == 'cuda' or (dtype != 'float32' and shutil.which(cxx) is not None)
    autocast = torch.autocast(device_type=device_type, dtype=getattr(torch, dtype),
                              enabled=dtype != 'float32')
    if device_type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        keep_freed_memory()
    return device_type, dtype, compile, autocast


def keep_freed_memory():
    """On the CPU every step allocates and frees the same activations of a few MB. glibc's malloc
    maps blocks that large straight from the kernel and unmaps them when freed, so each step
    page-faults all of them in again: 6,000-13,000 faults a step for bench.py's default model in
    bf16, which ran 7-10% faster without them. Serving them from malloc's heap, which keeps freed
    memory, lets the next step reuse pages already mapped (the process keeps its peak resident
    size, as training does anyway). glibc's mallopt; a no-op where there is none (macOS, Windows)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    # mallopt(3) documents 32 MB as the largest threshold on 64-bit systems; glibc 2.36 takes more,
    # which bigger activations need, and where it is refused the documented maximum is used
    mallopt(M_MMAP_THRESHOLD, 1 << 30) or mallopt(M_MMAP_THRESHOLD, 1 << 25)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)


def load_meta(data_dir, name, fail):
    """data_dir/name/meta.json (the data contract, docs/contracts.md), or fail(one line) saying how to
    prepare the dataset where it is missing, malformed or incomplete."""
    path = os.path.join(data_dir, name, 'meta.json')
    if not os.path.exists(os.path.join(data_dir, name, 'train.bin')) or not os.path.exists(path):
        fail(f"{os.path.join(data_dir, name)}/train.bin or meta.json not found: prepare it first "
             f"with {prepare_hint(name)} (see README, Data)")
    try:
        with open(path) as f:
            m = json.load(f)
        train = m['splits']['train']
        if m['tokenizer'] not in TOKENIZERS:
            fail(f"{path} names tokenizer {m['tokenizer']!r}, not one of {', '.join(TOKENIZERS)}: "
                 f"prepare {name} again ({prepare_hint(name)} --force)")
        if m['tokenizer'] and all(isinstance(v, int) for v in (m['vocab_size'], m['eot_token'],
                                                               train['tokens'], train['bytes'])):
            return m
    except (OSError, ValueError, KeyError, TypeError):
        pass
    fail(f"{path} is malformed or lacks vocab_size, eot_token, tokenizer or splits.train tokens/bytes: "
         f"prepare {name} again ({prepare_hint(name)} --force)")


def load_tokens(data_dir, name, split, fail, meta=None):
    """A split's uint16 token ids as a memmap (a corpus larger than RAM is fine), as many as meta
    (its meta.json) counts: a file cut short, even to an even length, trains on less data. Up to
    256 MB (a fraction of a second) the file's sha256 must be meta's too, so that a changed byte
    is caught; beyond, hashing would add minutes to every run's start-up, and the count stays."""
    path = os.path.join(data_dir, name, f'{split}.bin')
    size = os.path.getsize(path) if os.path.exists(path) else -1
    if size <= 0 or size % 2:  # two bytes a token
        fail(f"{path} is {'missing' if size < 0 else 'empty' if size == 0 else f'{size:,} bytes, an odd length'}"
             f": prepare {name} again ({prepare_hint(name)} --force)")
    want = (meta or {}).get('splits', {}).get(split, {}).get('tokens')
    if isinstance(want, int) and size // 2 != want:
        fail(f"{path} holds {size // 2:,} tokens but meta.json counts {want:,}: the file is cut "
             f"short or from another preparation; prepare {name} again ({prepare_hint(name)} --force)")
    digest = (meta or {}).get('sha256')
    digest = digest.get(split) if isinstance(digest, dict) else None
    if isinstance(digest, str) and size <= 1 << 28 and sha256_file(path) != digest:
        fail(f"{path} is not the file meta.json describes (its sha256 differs): it is corrupt or "
             f"from another preparation; prepare {name} again ({prepare_hint(name)} --force)")
    return np.memmap(path, dtype=np.uint16, mode='r')


def check_ids(tokens, meta, name, split, fail):
    """Token ids must index the embedding, or the model fails deep inside with an IndexError. All
    of them up to 2^27 tokens (256 MB, a fraction of a second); beyond, 128 chunks of 2^20 spread
    evenly: a full pass over a 10 GB file would add minutes to every run's start-up, and a wrong
    tokenizer or dtype, the way this happens, shows in every chunk."""
    n, chunk = len(tokens), 1 << 20
    starts = range(0, n, chunk) if n <= 1 << 27 else np.linspace(0, n - chunk, 128).astype(np.int64)
    top = max(int(tokens[s:s + chunk].max()) for s in starts)
    if top >= meta['vocab_size']:
        fail(f"{name}'s {split}.bin holds token id {top}, but its vocabulary ({meta['tokenizer']}) has "
             f"{meta['vocab_size']} ids: prepare {name} again ({prepare_hint(name)} --force)")


def get_batch(data, block_size, batch_size, generator, device):
    """batch_size windows of block_size + 1 tokens at uniformly random offsets into data (a uint16
    memmap, or its first D_f tokens), drawn by generator: inputs and next-token targets."""
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator).numpy()
    buf = torch.from_numpy(data[ix[:, None] + np.arange(block_size + 1)].astype(np.int64))
    x, y = buf[:, :-1], buf[:, 1:]
    if device.startswith('cuda'):  # pinned memory makes the copy asynchronous
        return (x.pin_memory().to(device, non_blocking=True),
                y.pin_memory().to(device, non_blocking=True))
    return x, y


def optimizer_step(model, optimizer, scaler, grad_clip):
    """After the micro-steps' backward passes: clip the gradient norm, step, clear."""
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def dense_eval_iters(eval_interval):
    """The early evaluations beside every eval_interval-th step: a geometric grid (every ~25% of
    the steps so far) up to 5 x eval_interval. A fine-tune peaks within its first few dozen
    steps, and its best is only as good as the evaluation grid around it."""
    return {round(1.25 ** j) for j in range(60)} & set(range(1, 5 * eval_interval))


def budget_tokens(max_tokens, max_epochs, min_tokens, dataset_tokens):
    """A run's token budget (0: none, max_iters decides): max_epochs of D_f clamped to
    [min_tokens, max_tokens] when max_epochs > 0, else max_tokens. Twins of a cell share D_f and
    these settings, so they share the budget; a larger D_f gets a longer one."""
    if max_epochs <= 0:
        return max_tokens
    tokens = max(min_tokens, round(max_epochs * dataset_tokens))
    return min(tokens, max_tokens) if max_tokens > 0 else tokens


# dense bf16 tensor-core peaks (the vendors' datasheets, no sparsity) by a part of the GPU's name,
# the first match winning (H100 PCIe before H100, L40S before L4, A100 before A10): train.py's MFU
BF16_PEAK_FLOPS = [('B200', 2250e12), ('H200', 989e12), ('H100 PCIe', 756e12), ('H100 NVL', 835e12),
                   ('H100', 989e12), ('A100', 312e12), ('L40S', 362e12), ('L40', 181e12),
                   ('L4', 121e12), ('A10', 125e12)]


def peak_flops(device):
    """The bf16 peak FLOP/s of device, a GPU of BF16_PEAK_FLOPS; None on the CPU or another GPU."""
    if not device.startswith('cuda'):
        return None
    name = torch.cuda.get_device_name(device)
    return next((f for part, f in BF16_PEAK_FLOPS if part in name), None)


def use_compile_cache(path):
    """Keep torch.compile's on-disk caches (inductor's FX graphs, AOTAutograd's graphs, the C++ and
    Triton kernels) in path, shared by every run that names it: a sweep compiles each shape once,
    and every later run of that shape loads the compiled graphs instead of compiling them again (a
    run still traces the model, which is not cached). '' keeps torch's default
    ($TORCHINDUCTOR_CACHE_DIR, else a directory under /tmp, which a batch job's node may not keep)."""
    if path:
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = os.path.abspath(path)


def compile_cache_counts():
    """(hits, misses) of inductor's FX graph cache in this process so far."""
    from torch._dynamo.utils import counters
    return counters['inductor']['fxgraph_cache_hit'], counters['inductor']['fxgraph_cache_miss']


def load_checkpoint(path, fail, hint):
    """torch.load, or fail(one line) where the file is truncated or not a checkpoint of ours."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
        if not isinstance(ckpt, dict) or not {'model', 'model_args', 'tokenizer'} <= ckpt.keys():
            raise ValueError('not a train.py checkpoint')
        return ckpt
    except Exception as e:  # zip, pickle and tensor errors alike: the file is not usable
        fail(f"checkpoint {path} is unreadable ({type(e).__name__}), truncated or corrupt: {hint}")
