"""bench.py on a tiny CPU config, and model.py's chunked output layer + loss against the plain one."""

import json
import os
import shutil
import statistics
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import ROOT, run

sys.path.insert(0, ROOT)
from model import GPT, GPTConfig, padded_vocab_size  # noqa: E402

TINY_BENCH = ['--device=cpu', '--n_layer=2', '--n_head=2', '--n_embd=64', '--block_size=64',
              '--batch_size=4', '--warmup=1', '--steps=2', '--repeats=2', '--peak_sizes=64,128',
              '--json_out=-']


def check_result(r, n_layer=2, n_embd=64, block_size=64):
    assert r['tokens_per_s'] > 0 and r['step_ms'] > 0
    # a sanity bound, not a speed target: against a peak of 64- and 128-sized matmuls a bf16 step
    # can exceed 1 on a CPU without AMX (1.58 seen on a 2-core AMD EPYC); a units error is 1000x
    assert 0 < r['mfu'] < 3, r
    assert 0 < r['mfu_model_width'] < 3 * r['peak_flops_per_s'] / r['peak_model_width_flops_per_s']
    assert r['peak_flops_per_s'] == max(r['peak_by_size'].values())
    # each repeat against the better of the device peaks measured just before and after it
    t, m, peaks = r['step_ms_all'], r['mfu_by_repeat'], r['peak_flops_per_s_measured']
    assert len(m) == len(t) and len(peaks) == len(t) + 1 and max(peaks) == r['peak_flops_per_s']
    for t_r, m_r, before, after in zip(t, m, peaks, peaks[1:]):
        assert m_r == pytest.approx(r['tokens_per_step'] / (t_r / 1e3) * r['flops_per_token'] / max(before, after))
    assert r['mfu'] == pytest.approx(statistics.median(m))
    assert r['flops_per_s'] == pytest.approx(r['tokens_per_s'] * r['flops_per_token'])
    # PaLM's convention (docs/contracts.md): 6N + 6 V d + 12 L T d
    expect = 6 * r['N'] + 6 * r['config']['vocab_size'] * n_embd + 12 * n_layer * block_size * n_embd
    assert r['flops_per_token'] == expect
    assert r['peak_memory_mb'] > 0 and r['loss'] > 0


def test_bench_synthetic_json():
    p = run('bench.py', *TINY_BENCH, '--dataset=', '--vocab_size=300')
    r = json.loads(p.stdout.strip().splitlines()[-1])
    check_result(r)
    assert r['config']['vocab_size'] == 300 and r['config']['dataset'] is None
    assert len(r['step_ms_all']) == 2
    assert 'MFU' in p.stderr  # the human-readable report goes to stderr with --json_out=-


def test_bench_dataset_bf16_profile(data_dir, tmp_path):
    out = tmp_path / 'bench.json'
    p = run('bench.py', *TINY_BENCH[:-1], f'--data_dir={data_dir}', '--dataset=toy_en',
            '--dtype=bfloat16', '--compile=False', '--profile=True', f'--json_out={out}')
    r = json.loads(out.read_text())
    check_result(r)
    assert r['config']['vocab_size'] == 257 and r['config']['dtype'] == 'bfloat16'
    assert 'MFU' in p.stdout and 'Self CPU' in p.stdout  # the profiler's table


def test_bench_rejects_unknown_key():
    p = run('bench.py', '--n_layr=2', check=False)
    assert p.returncode != 0 and "n_layer" in p.stderr


@pytest.mark.parametrize('fault, want', [('ids', "toy_de's train.bin holds token id 300"),
                                         ('cut', 'holds 2,000 tokens but meta.json counts')])
def test_bench_checks_the_data_as_train_py_does(data_dir, tmp_path, fault, want):
    shutil.copytree(os.path.join(data_dir, 'toy_de'), tmp_path / 'toy_de')
    ids = np.fromfile(tmp_path / 'toy_de' / 'train.bin', dtype=np.uint16)
    ids[1000] = 300  # >= the byte vocabulary's 257
    (ids if fault == 'ids' else ids[:2000]).tofile(tmp_path / 'toy_de' / 'train.bin')
    p = run('bench.py', *TINY_BENCH, f'--data_dir={tmp_path}', '--dataset=toy_de', check=False)
    assert p.returncode == 1 and p.stderr.strip().splitlines() == [p.stderr.strip()], p.stderr
    assert p.stderr.startswith('error: ') and want in p.stderr and not p.stdout, p.stderr


def reference_loss(model, idx, targets):
    """The plain computation: full logits, cross-entropy over the real vocabulary only."""
    B, T = idx.shape
    tr = model.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(T))
    for block in tr.h:
        x = block(x)
    logits = model.lm_head(tr.ln_f(x))
    V = model.config.vocab_size
    return F.cross_entropy(logits[..., :V].reshape(-1, V).float(), targets.reshape(-1))


@pytest.mark.parametrize('vocab_size', [257, 320, 1000])  # padded to 320, not padded, padded to 1024
@pytest.mark.parametrize('chunk', [7, 64, 10_000])  # many uneven chunks, a few, one
def test_chunked_loss_and_gradients_match_the_plain_loss(vocab_size, chunk):
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=vocab_size))
    assert model.lm_head.weight.shape[0] == padded_vocab_size(vocab_size)
    model.loss_max_logits = chunk * padded_vocab_size(vocab_size)
    idx = torch.randint(0, vocab_size, (3, 16))
    targets = torch.randint(0, vocab_size, (3, 16))
    targets[0, :4] = vocab_size - 1  # the last real id, next to the padded ones
    logits, loss = model(idx, targets)
    assert logits is None
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    ref = reference_loss(model, idx, targets)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6, abs=1e-6)
    for n, p in model.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)
    # the padded rows of the tied output/embedding matrix get no gradient
    assert grads['transformer.wte.weight'][vocab_size:].abs().sum().item() == 0
    with torch.no_grad():  # evaluation: the same loss, no gradients computed
        assert model(idx, targets)[1].item() == pytest.approx(ref.item(), rel=1e-6)


def test_compiled_models_one_chunk_loss_matches_the_chunked_one():
    """compile_model() computes a loss whose logits fit in one chunk plainly (in the graph): the
    same loss and gradients as the chunked path, padded vocabulary rows included. Checked eager;
    test_train compiles it."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=257))
    idx, targets = torch.randint(0, 257, (3, 16)), torch.randint(0, 257, (3, 16))
    results = []
    for in_graph in (False, True):
        model.loss_in_graph = in_graph
        model.zero_grad()
        loss = model(idx, targets)[1]
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (chunked, g_chunked), (plain, g_plain) = results
    assert plain == pytest.approx(chunked, rel=1e-6)
    for n in g_chunked:
        torch.testing.assert_close(g_plain[n], g_chunked[n], rtol=1e-4, atol=1e-6, msg=n)
    assert g_plain['transformer.wte.weight'][257:].abs().sum().item() == 0


def test_bf16_cpu_paths_match_float32():
    """Under bf16 autocast on CPU the attention runs as batched matmuls and the loss in chunks:
    both must agree with the float32 model within bf16 precision, gradients included."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=32, vocab_size=257))
    model.loss_max_logits = 50 * 320
    idx = torch.randint(0, 257, (4, 32))
    targets = torch.randint(0, 257, (4, 32))
    _, loss32 = model(idx, targets)
    loss32.backward()
    g32 = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        _, loss16 = model(idx, targets)
    loss16.backward()
    assert loss16.dtype == torch.float32
    assert loss16.item() == pytest.approx(loss32.item(), rel=2e-2)
    for n, p in model.named_parameters():
        cos = F.cosine_similarity(p.grad.flatten().float(), g32[n].flatten(), dim=0).item()
        assert cos > 0.98, (n, cos)


def test_training_steps_reuse_their_memory():
    """glibc unmaps freed multi-MB activations, so without runtime.keep_freed_memory every step
    page-faults them in again: about 9,600 faults a step for bench.py's default model (4 layers,
    width 256, context 256, batch 8) in float32 on a 2-core AMD EPYC, against ~1,000 with it. Not
    bf16, where the faults are alike but a CPU without AMX takes ~15x longer."""
    p = run('bench.py', '--device=cpu', '--dtype=float32', '--compile=False', '--warmup=3', '--steps=3',
            '--repeats=2', '--peak_sizes=256', '--dataset=', '--json_out=-')
    r = json.loads(p.stdout.strip().splitlines()[-1])
    # a warming heap may still grow; without the fix: 9,600
    assert r['page_faults_per_step'] < 2000, r['page_faults_per_step']


def test_compile_defaults(monkeypatch):
    """compile=None: on for CUDA and for bf16/fp16 on the CPU, where it wins; off for float32 on
    the CPU, where it does not and the study's short runs would pay for compiling, and off where
    inductor would find no C++ compiler."""
    from runtime import device_settings
    monkeypatch.setenv('CXX', sys.executable)  # a compiler that exists, whatever the machine has
    assert device_settings('cpu', 'auto', None)[1:3] == ('float32', False)
    assert device_settings('cpu', 'bfloat16', None)[1:3] == ('bfloat16', True)
    assert device_settings('cpu', 'bfloat16', False)[1:3] == ('bfloat16', False)
    assert device_settings('cpu', 'float32', True)[1:3] == ('float32', True)
    monkeypatch.setenv('CXX', 'no-such-compiler')
    assert device_settings('cpu', 'bfloat16', None)[1:3] == ('bfloat16', False)
