"""What the GPU's fast path runs, checked on the CPU where it cannot be timed: the compiled loss
(plain in the graph, or LinearCrossEntropy's chunks traced into it) against the eager one, the
chunk sizing rule, bench.py's own defaults, and full checkpoints at a bounded rate."""

import os
import sys

import pytest
import torch

from conftest import ROOT, TINY, read_log, run

sys.path.insert(0, ROOT)
from configurator import configure  # noqa: E402
from model import GPT, GPTConfig, compile_model, loss_chunk_rows, padded_vocab_size  # noqa: E402
from test_train import train_defaults  # noqa: E402


@pytest.mark.parametrize('n,vocab,bound', [(100, 320, 32_000), (100, 320, 31_999), (2048, 50304, 1 << 23),
                                           (7, 64, 100), (1000, 64, 64)])
def test_loss_chunk_rows(n, vocab, bound):
    rows = loss_chunk_rows(n, vocab, bound)
    fewest = -(-n // (bound // vocab))
    if n * vocab <= bound:
        assert rows == n  # one chunk: the plain loss when compiled
    else:
        assert rows * vocab <= bound and -(-n // rows) == fewest  # the fewest chunks that fit
    sizes = {min(rows, n - i) for i in range(0, n, rows)}
    assert len(sizes) <= 2  # at most two chunk shapes to compile


def test_paper_shapes_compute_the_plain_loss_on_cuda():
    """compile_model() raises the bound to 2^30 logits on CUDA: every paper shape's training batch
    (16 x 1024 tokens per GPU at the GPT-2 vocabulary) is one chunk, the plain compiled loss; the
    4x larger evaluation batch is chunked, which needs no memory for a backward pass."""
    V = padded_vocab_size(50257)
    assert loss_chunk_rows(16 * 1024, V, 1 << 30) == 16 * 1024
    assert loss_chunk_rows(64 * 1024, V, 1 << 30) == 16 * 1024
    assert loss_chunk_rows(8 * 1024, V, 1 << 23) == 164  # eager: chunks of ~8M logits, as before


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize('chunk_rows', [None, 20])  # one chunk: the plain loss; chunks of 20 rows
def test_compiled_loss_and_gradients_match_eager(chunk_rows):
    """compile_model(): the output layer and loss inside the compiled graph (no graph break), the
    same loss and gradients as the eager chunked path in float32, padded vocabulary rows without
    gradient, and the same loss under inference_mode (evaluation)."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=257))
    if chunk_rows:
        model.loss_max_logits = chunk_rows * 320
    idx, targets = torch.randint(0, 257, (3, 16)), torch.randint(0, 257, (3, 16))
    targets[0, :4] = 256  # the last real id, next to the padded ones
    eager = model(idx, targets)[1]
    eager.backward()
    g_eager = grads(model)
    model.zero_grad()
    torch._dynamo.reset()
    counters.clear()
    compiled = compile_model(model)
    loss = compiled(idx, targets)[1]
    loss.backward()
    assert not counters['graph_break'], dict(counters['graph_break'])
    assert loss.item() == pytest.approx(eager.item(), rel=1e-6)
    g = grads(model)
    for n in g:
        torch.testing.assert_close(g[n], g_eager[n], rtol=1e-4, atol=1e-6, msg=n)
    assert g['transformer.wte.weight'][257:].abs().sum().item() == 0
    with torch.inference_mode():
        assert compiled(idx, targets)[1].item() == pytest.approx(eager.item(), rel=1e-6)


def bench_defaults():
    """bench.py's module-level defaults, read from its source without running the script."""
    scope = {}
    exec(open(os.path.join(ROOT, 'bench.py')).read().split('configure(globals()')[0], scope)
    return scope


def test_bench_declares_train_keys():
    """bench.py declares its own defaults: those of the training step equal train.py's (but the
    batch), and it accepts every other train.py key, so train.py's config files run unchanged."""
    bench, train = bench_defaults(), train_defaults()
    keys = {k for k, v in train.items() if not k.startswith('_') and isinstance(v, (int, float, str, type(None)))}
    missing = keys - set(bench)
    assert not missing, f"declare these train.py keys in bench.py (None where a step ignores them): {missing}"
    for k in keys:
        if bench[k] is not None and k != 'batch_size':
            assert bench[k] == train[k], k
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for f in sorted(os.listdir('config')):
            if not f.startswith(('_', 'sweep')):
                configure(dict(bench), [f'config/{f}'])
    finally:
        os.chdir(cwd)


def eval_lines(stdout):
    return [line for line in stdout.splitlines() if ': val ' in line]


def test_full_checkpoints_at_a_bounded_rate_best_pt_exact(data_dir, tmp_path):
    """ckpt_share=0: ckpt.pt (optimizer state) is written only at the end, best.pt at every new
    best: it and the final ckpt.pt are the same bits as in a run that writes ckpt.pt at every
    evaluation (ckpt_share=1)."""
    args = [*TINY, f'--data_dir={data_dir}', '--dataset=toy_en', '--max_iters=60', '--eval_interval=20']
    every = run('train.py', *args, '--ckpt_share=1.0', f'--out_dir={tmp_path / "every"}')
    bounded = run('train.py', *args, '--ckpt_share=0.0', f'--out_dir={tmp_path / "bounded"}')
    lines = eval_lines(bounded.stdout)
    assert len(lines) == len(eval_lines(every.stdout)) > 3
    assert all('ckpt.pt written' in line for line in eval_lines(every.stdout))
    assert [('ckpt.pt written' in line) for line in lines] == [False] * (len(lines) - 1) + [True]
    assert [e['val_loss'] for e in read_log(tmp_path / 'every')['evals']] == \
        [e['val_loss'] for e in read_log(tmp_path / 'bounded')['evals']]
    for f in ('best.pt', 'ckpt.pt'):
        a, b = (torch.load(tmp_path / d / f, weights_only=False) for d in ('every', 'bounded'))
        assert a['iter'] == b['iter']
        for k in a['model']:
            assert torch.equal(a['model'][k], b['model'][k]), (f, k)
    assert torch.load(tmp_path / 'bounded' / 'best.pt', weights_only=False)['iter'] == \
        read_log(tmp_path / 'bounded')['best']['iter']
    t = read_log(tmp_path / 'bounded')['time']
    assert t['compile'] == 0 and t['total'] == pytest.approx(sum(v for k, v in t.items() if k != 'total'))
