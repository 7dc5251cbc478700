"""What train.py does besides the training loop, shared with bench.py, sample.py and sweep.py:
device settings, data, config checks, resume, batches, the optimizer step, budget, timers."""

import ctypes
import fcntl
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

from prepare.common import TOKENIZERS, prepare_hint, sha256_file
from util import check, fail, remove_dead_temps

def device_settings(device, dtype, compile):
    """(device_type, dtype, compile, autocast): dtype 'auto' is bf16 on CUDA (else fp16), float32
    on the CPU; compile None is on for CUDA and CPU bf16/fp16 (inductor fuses autocast's casts),
    off for CPU float32 (no gain) and without the C++ compiler inductor needs on the CPU."""
    device_type = 'cuda' if device.startswith('cuda') else 'cpu'
    if dtype == 'auto':
        dtype = ('bfloat16' if torch.cuda.is_bf16_supported() else 'float16') \
            if device_type == 'cuda' else 'float32'
    if compile is None:
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
    """Keep a CPU step's freed activations in glibc's heap, not page-faulted in again every step."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 1 << 30) or mallopt(M_MMAP_THRESHOLD, 1 << 25)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)

def again(name):
    return f"prepare {name} again ({prepare_hint(name)} --force)"

def load_meta(data_dir, name):
    """data_dir/name/meta.json (docs/contracts.md), or one line on how to prepare the dataset."""
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
                 f"{again(name)}")
        if m['tokenizer'] and all(isinstance(v, int) for v in (m['vocab_size'], m['eot_token'],
                                                               train['tokens'], train['bytes'])):
            return m
    except (OSError, ValueError, KeyError, TypeError):
        pass
    fail(f"{path} is malformed or lacks vocab_size, eot_token, tokenizer or splits.train "
         f"tokens/bytes: {again(name)}")

def load_tokens(data_dir, name, split, meta=None):
    """A split's uint16 ids as a memmap, as many as meta counts, up to 256 MB with meta's sha256."""
    path = os.path.join(data_dir, name, f'{split}.bin')
    size = os.path.getsize(path) if os.path.exists(path) else -1
    if size <= 0 or size % 2:  # two bytes a token
        what = 'missing' if size < 0 else 'empty' if size == 0 else f'{size:,} bytes, an odd length'
        fail(f"{path} is {what}: {again(name)}")
    want = (meta or {}).get('splits', {}).get(split, {}).get('tokens')
    if isinstance(want, int) and size // 2 != want:
        fail(f"{path} holds {size // 2:,} tokens but meta.json counts {want:,}: the file is cut "
             f"short or from another preparation; {again(name)}")
    digest = (meta or {}).get('sha256')
    digest = digest.get(split) if isinstance(digest, dict) else None
    if isinstance(digest, str) and size <= 1 << 28 and sha256_file(path) != digest:
        fail(f"{path} is not the file meta.json describes (its sha256 differs): it is corrupt or "
             f"from another preparation; {again(name)}")
    return np.memmap(path, dtype=np.uint16, mode='r')

def check_ids(tokens, meta, name, split):
    """Every id must index the embedding: all up to 2^27 tokens, else 128 chunks of 2^20."""
    n, chunk = len(tokens), 1 << 20
    starts = range(0, n, chunk) if n <= 1 << 27 else np.linspace(0, n - chunk, 128).astype(np.int64)
    top = max(int(tokens[s:s + chunk].max()) for s in starts)
    if top >= meta['vocab_size']:
        fail(f"{name}'s {split}.bin holds token id {top}, but its vocabulary "
             f"({meta['tokenizer']}) has {meta['vocab_size']} ids: {again(name)}")

def check_config(c):
    """Fail on a train.py config c (its globals) that no run can have."""
    check(c['dtype'] not in ('auto', 'float32', 'bfloat16', 'float16') or
          c['compile'] not in (None, True, False),
          f"dtype must be auto/float32/bfloat16/float16 (got {c['dtype']!r}), "
          f"compile True or False")
    for k in ('batch_size', 'block_size', 'eval_interval', 'eval_tokens', 'n_layer', 'n_head',
              'n_embd', 'gradient_accumulation_steps'):  # 0 steps: a run that never trained
        check(c[k] < 1, f"{k}={c[k]} must be at least 1: set --{k} to a positive value")
    n_embd, n_head, lr, min_lr, block = (c[k] for k in ('n_embd', 'n_head', 'learning_rate',
                                                         'min_lr', 'block_size'))
    check(n_embd % n_head, f"n_head={n_head} does not divide n_embd={n_embd}: choose n_head "
          f"among {[h for h in range(1, n_embd + 1) if n_embd % h == 0][:12]}")
    check(c['eval_batch_size'] < 0, f"eval_batch_size={c['eval_batch_size']} must be at least 1, "
          f"or 0 (batch_size): fix it")
    check(not (math.isfinite(lr) and math.isfinite(min_lr)),
          f"learning_rate={lr} and min_lr={min_lr} must be finite numbers: fix them")
    check(not 0 <= c['dropout'] < 1,
          f"dropout={c['dropout']} must be in [0, 1): a probability (0 = off)")
    check(lr < 0 or (min_lr < 0 and min_lr != -1), f"learning_rate={lr} and min_lr={min_lr} "
          f"must not be negative (min_lr=-1 is learning_rate/10): fix them")
    for k in ('eval_tokens', 'test_tokens'):
        check(c[k] < block and (k == 'eval_tokens' or c[k] != 0),
              f"{k}={c[k]} is less than one window of block_size={block} tokens: "
              f"raise --{k} to at least {block}")
    check(c['lr_schedule'] not in ('cosine', 'wsd'),
          f"lr_schedule must be 'cosine' or 'wsd' (got {c['lr_schedule']!r})")
    check(not 0 <= c['min_overfit'] < 1, f"min_overfit={c['min_overfit']} must be in [0, 1): "
          f"a fraction of the best val loss (0 = off)")

def claim_out_dir(out_dir):
    """Create and lock out_dir (its fd, held by the caller): one process at a time on a run; a
    flock on the directory leaves no file and dies with its process."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        if not os.access(out_dir, os.W_OK):
            raise PermissionError(13, 'Permission denied')
    except OSError as e:
        fail(f"cannot write to out_dir={out_dir} ({e.strerror}): choose another --out_dir")
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fail(f"another train.py is running on {out_dir}: wait for it to finish or stop it, "
             f"or choose another --out_dir")
    remove_dead_temps(out_dir)  # a writer killed mid-write left its temp file
    return fd

def count_bytes(tokens, meta):
    """UTF-8 bytes of the text these tokens encode (end-of-text none), a chunk at a time."""
    lengths = np.ones(meta['vocab_size'], dtype=np.int64)
    if meta['tokenizer'] != 'bytes':
        from prepare.common import gpt2_encoding
        enc = gpt2_encoding()
        lengths = np.array([len(enc.decode_single_token_bytes(i)) if i != meta['eot_token'] else 0
                            for i in range(meta['vocab_size'])], dtype=np.int64)
    lengths[meta['eot_token']] = 0
    chunk = 1 << 24
    return int(sum(lengths[np.asarray(tokens[i:i + chunk])].sum()
                   for i in range(0, len(tokens), chunk)))

def draw_train_data(split, eot, n, seed, chunk, documents):
    """(offset, tokens): D_f = n tokens of the split. Seed 0: the first n; else documents from an
    offset the seed draws, or (chunk) chunk-token pieces from as many places, or (documents) the
    first chunk tokens of documents the seed draws. One seed's draws are nested over n."""
    rng = np.random.default_rng(seed)
    if seed and chunk and documents:
        starts = np.concatenate([[0], np.flatnonzero(split[:-1] == eot) + 1])
        ends = np.append(starts[1:], len(split))
        order = rng.permutation(len(starts))
        pieces, total = [], 0
        for d in order[:n]:  # every piece is at least one token
            pieces.append(np.asarray(split[starts[d]:min(ends[d], starts[d] + chunk)]))
            total += len(pieces[-1])
            if total >= n:
                break
        offset, data = int(starts[order[0]]), np.concatenate(pieces)[:n]
    elif seed and chunk:
        starts = rng.permutation(len(split) // chunk)[:math.ceil(n / chunk)] * chunk
        offset = int(starts[0])
        data = np.asarray(split[starts[:, None] + np.arange(chunk)]).ravel()[:n]
    else:
        offset = 0
        if seed:  # the start of the document after a random offset
            start = int(rng.integers(0, len(split)))
            after = np.flatnonzero(split[start:start + (1 << 16)] == eot)
            offset = (start + int(after[0]) + 1) % len(split) if len(after) else start
        data = split[offset:offset + n]
    if len(data) < n:  # past the end of the split: on from its start
        data = np.concatenate([data, split[:n - len(data)]])
    return offset, data

def load_train_data(data_dir, name, meta, n, block_size, seed, chunk, documents):
    """(D_f, offset, tokens, bytes): n tokens of the train split (0: all), drawn and checked."""
    split = load_tokens(data_dir, name, 'train', meta)
    n = n or len(split)
    check(n > len(split), f"dataset_tokens={n:,} but {name}'s train split holds only "
          f"{len(split):,} tokens")
    check(not 0 <= chunk <= len(split), f"data_chunk={chunk} must be between 0 (whole "
          f"documents) and the split's {len(split):,} tokens")
    check(n < block_size + 1, f"dataset_tokens={n} must be at least block_size+1 = "
          f"{block_size + 1}")
    offset, data = draw_train_data(split, meta['eot_token'], n, seed, chunk, documents)
    check_ids(data, meta, name, 'train')
    n_bytes = meta['splits']['train']['bytes'] if n == len(split) else count_bytes(data, meta)
    return n, offset, data, n_bytes

def load_eval_sets(data_dir, name, meta, extra_val, tokens, test_tokens, test_split, *shard):
    """({dataset: set, extra_val's: sets}, test set or None), as load_val's; shard = (block_size,
    rank, world_size). test_split: val's first half ranks the steps, its second tests the best."""
    val_sets = {name: load_val(data_dir, name, meta, tokens, *shard, 0 if test_split else None)}
    test_set = (load_val(data_dir, name, meta, test_tokens or tokens, *shard, 1)
                if test_split else None)
    for extra in filter(None, extra_val.split(',')):
        m = load_meta(data_dir, extra)
        check((m['tokenizer'], m['vocab_size']) != (meta['tokenizer'], meta['vocab_size']),
              f"extra_val {extra} uses tokenizer {m['tokenizer']} ({m['vocab_size']}), "
              f"but {name} uses {meta['tokenizer']} ({meta['vocab_size']})")
        val_sets[extra] = load_val(data_dir, extra, m, tokens, *shard)
    return val_sets, test_set

def load_val(data_dir, name, meta, tokens, block_size, rank, world_size, half=None):
    """(x, y, tokens, bytes): block_size windows spread evenly over the val split (or its half 0
    or 1), the same for every evaluation and twin; every world_size-th per rank."""
    val = load_tokens(data_dir, name, 'val', meta)
    if half is not None:
        val = val[:len(val) // 2] if half == 0 else val[len(val) // 2:]
    n = min(tokens, len(val) - 1) // block_size
    if n < 1:
        fail(f"{name}'s val split has {len(val)} tokens, fewer than block_size+1 = "
             f"{block_size + 1}")
    starts = np.linspace(0, len(val) - block_size - 1, n).astype(np.int64)
    windows = val[starts[:, None] + np.arange(block_size + 1)]
    check_ids(windows.ravel(), meta, name, 'val')
    seqs = torch.from_numpy(windows.astype(np.int64))[rank::world_size]
    return seqs[:, :-1], seqs[:, 1:], n * block_size, count_bytes(windows[:, 1:].ravel(), meta)

def reinit_rare_rows(model, tokens, vocab_size, below, seed):
    """Fresh embedding rows for ids rarer than below in tokens (the pre-training split)."""
    wte = model.transformer.wte.weight
    counts = sum(np.bincount(tokens[i:i + (1 << 24)], minlength=vocab_size)
                 for i in range(0, len(tokens), 1 << 24))[:vocab_size]
    share = counts / counts.sum()
    rare = torch.from_numpy(np.flatnonzero(share < below))
    with torch.no_grad():
        draw = torch.Generator().manual_seed(seed)
        wte[rare] = torch.randn(len(rare), wte.shape[1], generator=draw) * 0.02
    return dict(below=below, tokens=len(rare), share=float(share[rare.numpy()].sum()))

def get_batch(data, block_size, batch_size, generator, device):
    """Inputs and targets: batch_size windows at uniformly random offsets into data."""
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator).numpy()
    buf = torch.from_numpy(data[ix[:, None] + np.arange(block_size + 1)].astype(np.int64))
    x, y = buf[:, :-1], buf[:, 1:]
    if device.startswith('cuda'):  # pinned memory makes the copy asynchronous
        return (x.pin_memory().to(device, non_blocking=True),
                y.pin_memory().to(device, non_blocking=True))
    return x, y

@torch.inference_mode()
def mean_loss(model, x, y, step, device, autocast, ddp):
    """Mean loss in nats/token over x, y and every process; one device sync, not one a batch."""
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for i in range(0, len(x), step):
        xb, yb = x[i:i + step].to(device), y[i:i + step].to(device)
        with autocast:
            _, loss = model(xb, yb)
        total[0] += loss.double() * yb.numel()
        total[1] += yb.numel()
    if ddp:
        dist.all_reduce(total)
    model.train()
    return (total[0] / total[1]).item()

def agreed(value, device, ddp, op=None):
    """An int the same on every process: rank 0's, or (op) reduced over all of them."""
    if not ddp:
        return value
    value = torch.tensor(value, device=device)
    if op is None:
        dist.broadcast(value, 0)
    else:
        dist.all_reduce(value, op=op)
    return int(value)

def optimizer_step(model, optimizer, scaler, grad_clip):
    """After the micro-steps' backward passes: clip the gradient norm, step, clear."""
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)

def dense_eval_iters(eval_interval):
    """Evaluations every ~25% of the steps so far up to 5 x eval_interval: fine-tunes peak early."""
    return {round(1.25 ** j) for j in range(60)} & set(range(1, 5 * eval_interval))

def budget_tokens(max_tokens, max_epochs, min_tokens, dataset_tokens):
    """Token budget (0: max_iters): max_epochs of D_f in [min_tokens, max_tokens], or max_tokens."""
    if max_epochs <= 0:
        return max_tokens
    tokens = max(min_tokens, round(max_epochs * dataset_tokens))
    return min(tokens, max_tokens) if max_tokens > 0 else tokens

# dense bf16 peaks (datasheets, no sparsity) by part of the GPU's name, first match wins
BF16_PEAK_FLOPS = [('B200', 2250e12), ('H200', 989e12), ('H100 PCIe', 756e12), ('H100 NVL', 835e12),
                   ('H100', 989e12), ('A100', 312e12), ('L40S', 362e12), ('L40', 181e12),
                   ('L4', 121e12), ('A10', 125e12)]

def peak_flops(device):
    if not device.startswith('cuda'):
        return None
    name = torch.cuda.get_device_name(device)
    return next((f for part, f in BF16_PEAK_FLOPS if part in name), None)

def use_compile_cache(path):
    """torch.compile's caches in path, shared by runs ('': torch's default, under /tmp)."""
    if path:
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = os.path.abspath(path)

def compile_cache_counts():
    """(hits, misses) of inductor's FX graph cache in this process so far."""
    from torch._dynamo.utils import counters
    return counters['inductor']['fxgraph_cache_hit'], counters['inductor']['fxgraph_cache_miss']

SHAPE_KEYS = ('n_layer', 'n_head', 'n_embd', 'block_size', 'bias')

def resume_checkpoint(g, explicit_keys, master):
    """out_dir/ckpt.pt, checked to be the run's, its config written over train.py's globals g;
    exits 0 where log.json says the run is finished."""
    out_dir = g['out_dir']
    ckpt_path, log_path = os.path.join(out_dir, 'ckpt.pt'), os.path.join(out_dir, 'log.json')
    try:
        with open(log_path) as f:
            run_log = json.load(f)
        status = run_log.get('status')
    except (OSError, ValueError, AttributeError):
        run_log, status = None, None
    if status in ('done', 'early_stopped'):
        if master:
            print(f"{out_dir}: the run is finished ({status}); nothing to resume, left as it is")
        sys.exit(0)
    check(not os.path.exists(ckpt_path),
          f"init_from='resume' but there is no {ckpt_path}: start the run without it")
    ckpt = load_checkpoint(ckpt_path, "move it aside and start the run afresh without "
                                      "init_from=resume")
    theirs = {k: ckpt['config'].get(k) for k in ('dataset', 'dataset_tokens', 'seed', *SHAPE_KEYS)}
    ours = {k: ((run_log or {}).get('config') or {}).get(k, v) for k, v in theirs.items()}
    diff = [(f"{k}={theirs[k]!r}", f"{k}={ours[k]!r}") for k in theirs if theirs[k] != ours[k]]
    check(diff, f"{ckpt_path} is not this run's (it has {', '.join(a for a, _ in diff)}, "
          f"{log_path} {', '.join(b for _, b in diff)}): put the run's own ckpt.pt back, or "
          f"start over with --overwrite=True")
    # a resumed run is the same run: its original config wins over everything but the system keys
    # and the split of a step into micro-steps (out of memory: a smaller batch_size, more steps)
    resplit = {'batch_size', 'gradient_accumulation_steps', 'eval_batch_size'} & set(explicit_keys)
    ignored = []
    for k, v in ckpt['config'].items():
        if k not in ('device', 'dtype', 'compile', 'out_dir', 'init_from', 'overwrite', *resplit):
            if k in explicit_keys and g[k] != v:
                ignored.append(f"{k}={g[k]!r} (the run has {v!r})")
            g[k] = v
    if ignored and master:
        print(f"resume: the checkpoint's config wins; ignored: {', '.join(ignored)}")
    run_step = ckpt['config']['batch_size'] * ckpt['config']['gradient_accumulation_steps']
    per_step = g['batch_size'] * g['gradient_accumulation_steps']
    check(resplit - {'eval_batch_size'} and per_step != run_step,
          f"resume: batch_size x gradient_accumulation_steps must stay the run's {run_step} "
          f"(got {per_step}): a step's tokens are part of the run")
    # CPU kernels split their sums over threads, so the thread count is part of a bit-exact resume
    threads, now = ckpt.get('num_threads'), torch.get_num_threads()
    if threads not in (None, now):
        torch.set_num_threads(threads)
    if master and threads != now:
        print("resume: " + (f"the run's {threads} thread(s), not {now}, so that it continues bit "
                            f"for bit" if threads else "the checkpoint does not record its thread "
                            "count: the run may differ in the last digits"))
    return ckpt

class Timers:
    """A run's seconds: startup, compile (the first evaluation and step), data, eval, checkpoint
    and training (the rest), added to before (a resumed run's first part)."""

    def __init__(self, t_process, compiled, before):
        self.t_process, self.before = t_process, before
        self.t = dict(startup=time.time() - t_process, compile=0.0, data=0.0, eval=0.0,
                      checkpoint=0.0)
        self.compiling = dict(eval=compiled, training=compiled)

    def add(self, kind, t0):
        if self.compiling.get(kind):
            self.compiling[kind] = False
            kind = 'compile'
        if kind in self.t:  # 'training' is the time no timer counts
            self.t[kind] += time.time() - t0

    def breakdown(self):
        t = dict(self.t, total=time.time() - self.t_process)
        t['training'] = t['total'] - sum(self.t.values())
        return {k: self.before.get(k, 0.0) + v for k, v in t.items()}

def crash_message(kind, value, tb, it, resumable):
    """(reason, advice): train.py's line for an unexpected exception at iteration it (or None)."""
    while tb.tb_next:
        tb = tb.tb_next
    where = f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"
    # CUDA's allocator raises OutOfMemoryError, the CPU's a RuntimeError (can't allocate memory)
    oom = isinstance(value, (MemoryError, torch.OutOfMemoryError)) or any(
        s in str(value) for s in ('out of memory', "can't allocate memory"))
    reason = (f"{'out of memory' if oom else type(value).__name__}"
              f"{'' if it is None else ' at iter ' + str(it)}: "
              f"{str(value).splitlines()[0][:200] if str(value) else kind.__name__} ({where})")
    if not oom:
        return reason, "an unexpected error: report it with this line"
    return reason, ("resume with a smaller --batch_size and a larger "
                    "--gradient_accumulation_steps, their product kept (--init_from=resume takes "
                    "them)" if resumable else
                    "start again with a smaller --batch_size and --overwrite=True")

def source_shape(source, init_from, config, explicit_keys, meta, dataset):
    """Checkpoint source's shape, into config and returned; it must have meta's tokenizer, and
    naming another shape (explicit_keys) is a mistake."""
    for k in SHAPE_KEYS:
        want = source['model_args'][k]
        fix = (f"drop --{k}" if explicit_keys.get(k) == f"--{k}" else
               f"override it with --{k}={want}")
        check(k in explicit_keys and config[k] != want,
              f"{k}={config[k]} (from {explicit_keys.get(k)}) but checkpoint {init_from} has "
              f"{k}={want}: {fix} or use a checkpoint of that shape")
        config[k] = want
    vocab = source['model_args']['vocab_size']
    check((source['tokenizer'], vocab) != (meta['tokenizer'], meta['vocab_size']),
          f"checkpoint {init_from} was trained with tokenizer {source['tokenizer']} (vocab "
          f"{vocab}), but {dataset} uses {meta['tokenizer']} (vocab {meta['vocab_size']}): "
          f"prepare {dataset} with --tokenizer {source['tokenizer']}")
    return {k: config[k] for k in SHAPE_KEYS}

def load_checkpoint(path, hint):
    """torch.load, or one line where the file is truncated or not a checkpoint of ours."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
        if not isinstance(ckpt, dict) or not {'model', 'model_args', 'tokenizer'} <= ckpt.keys():
            raise ValueError('not a train.py checkpoint')
        return ckpt
    except Exception as e:  # zip, pickle and tensor errors alike: the file is not usable
        fail(f"checkpoint {path} is unreadable ({type(e).__name__}), truncated or corrupt: {hint}")
