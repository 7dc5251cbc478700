"""train.py, model.py and sample.py as a user runs them, on tiny CPU runs."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY, evals_without_time, read_log, run, wait_for_evals

sys.path.insert(0, ROOT)
from configurator import configure  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402


def train_defaults():
    """train.py's module-level defaults, read from its source without running the script."""
    scope = {}
    exec(open(os.path.join(ROOT, 'train.py')).read().split('config_keys =')[0], scope)
    return scope


@pytest.mark.parametrize('label,target', [('3M', 3.3e6), ('16M', 16e6), ('39M', 39e6),
                                          ('51M', 51e6), ('70M', 70e6), ('124M', 124e6)])
def test_pretrain_configs_have_the_labelled_N(label, target):
    cfg = train_defaults()
    cwd = os.getcwd()
    os.chdir(ROOT)  # config files include config/_pretrain_base.py relative to the repo root
    try:
        configure(cfg, [f'config/pretrain_{label}.py'])
    finally:
        os.chdir(cwd)
    L, d = cfg['n_layer'], cfg['n_embd']
    assert cfg['n_head'] == d // 64
    with torch.device('meta'):  # shapes only: a 124M model need not be initialised to be counted
        model = GPT(GPTConfig(n_layer=L, n_head=cfg['n_head'], n_embd=d, block_size=cfg['block_size'],
                              vocab_size=50257))
    N = model.n_params()
    # Kaplan's N: 12 L d^2 for the blocks plus the LayerNorm gains; no embedding of any kind
    assert N == 12 * L * d * d + (2 * L + 1) * d
    assert abs(N / target - 1) < 0.05
    assert model.n_params(non_embedding=False) == N + 50304 * d + 1024 * d
    assert model.flops_per_token() == 6 * N + 6 * L * 1024 * d
    assert cfg['learning_rate'] == pytest.approx(0.003239 - 0.0001395 * math.log(N), rel=0.01)
    assert cfg['batch_size'] * cfg['gradient_accumulation_steps'] == 512
    assert cfg['max_tokens'] == 26_000_000_000


def test_transfer_configs_are_twins():
    cfgs = {}
    for kind in ('finetune', 'scratch'):
        cfg = train_defaults()
        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            configure(cfg, [f'config/{kind}_de.py', '--dataset_tokens=1e6'])
        finally:
            os.chdir(cwd)
        cfgs[kind] = {k: v for k, v in cfg.items() if not k.startswith('_') and isinstance(v, (int, float, str))}
    ft, sc = cfgs['finetune'], cfgs['scratch']
    assert ft['dataset_tokens'] == 1_000_000 and isinstance(ft['dataset_tokens'], int)
    assert ft['init_from'] == 'out/pretrain_16M/best.pt' and sc['init_from'] == 'scratch'
    differ = {k for k in ft if ft[k] != sc[k]}
    # the shape of the fine-tune comes from its checkpoint (5 x 512, as scratch_de.py sets it)
    assert differ <= {'init_from', 'out_dir', 'n_layer', 'n_embd', 'n_head'}, differ
    assert ft['warmup_iters'] == 300 and ft['lr_schedule'] == 'wsd' and ft['max_epochs'] == 64


@pytest.fixture(scope='module')
def pretrained(data_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('out') / 'pt')
    run('train.py', *TINY, f'--data_dir={data_dir}', '--dataset=toy_en', f'--out_dir={out}',
        '--max_iters=200', '--eval_interval=50')
    return out


def test_pretrain_loss_falls_and_log_follows_the_contract(pretrained):
    log = read_log(pretrained)
    assert log['schema'] == 1 and log['status'] == 'done' and log['role'] == 'pretrain'
    assert log['init_from'] is None
    evals = log['evals']
    assert evals[0]['iter'] == 0 and evals[-1]['iter'] == 200
    iters = [e['iter'] for e in evals]  # dense early evaluations: every ~25% of the steps so far
    assert iters[:4] == [0, 1, 2, 3]
    assert all(b - a <= max(1, b // 4) for a, b in zip(iters, iters[1:]))
    assert len(iters) < 30  # a geometric grid: a short run does not spend itself evaluating
    assert evals[-1]['val_loss'] < evals[0]['val_loss'] - 2.0  # from ln(257) = 5.55 to < 3.5
    assert log['model']['N'] == 12 * 2 * 64 * 64 + 5 * 64
    assert log['flops'] == 200 * 8 * 64 * log['model']['flops_per_token']
    best = log['best']
    assert best['val_loss'] == min(e['val_loss'] for e in evals)
    # bits per byte: the toy bytes are all ASCII, end-of-text ids carry no text
    d = log['data']
    assert best['val_bpb'] == pytest.approx(best['val_loss'] * d['val_tokens'] / d['val_bytes'] / math.log(2))
    assert d['val_bytes'] < d['val_tokens'] and d['dataset_tokens'] == 300_000
    assert set(log['config']) >= {'n_layer', 'learning_rate', 'dataset_tokens', 'patience', 'device'}
    for f in ('ckpt.pt', 'best.pt'):
        assert os.path.exists(os.path.join(pretrained, f))
    assert not [f for f in os.listdir(pretrained) if f.endswith('.tmp')]


def transfer_args(data_dir, out, *extra):
    return [*TINY, f'--data_dir={data_dir}', '--dataset=toy_de', '--dataset_tokens=8000',
            '--max_iters=150', '--eval_interval=25', '--extra_val=toy_en', f'--out_dir={out}', *extra]


def test_finetune_and_scratch_twins(pretrained, data_dir, tmp_path):
    sets = ['--eval_tokens=2048', '--test_tokens=4096']  # a small set ranks steps, a large measures
    run('train.py', *transfer_args(data_dir, tmp_path / 'ft', f'--init_from={pretrained}/best.pt',
                                   '--data_seed=7', *sets))
    run('train.py', *transfer_args(data_dir, tmp_path / 'sc', '--data_seed=7', *sets))
    ft, sc = read_log(tmp_path / 'ft'), read_log(tmp_path / 'sc')
    assert ft['role'] == 'finetune' and sc['role'] == 'scratch'
    assert ft['init_from'] == f'{pretrained}/best.pt' and sc['init_from'] is None
    assert ft['data'] == sc['data'] and ft['data']['dataset_tokens'] == 8000
    differ = {k for k in ft['config'] if ft['config'][k] != sc['config'][k]}
    assert differ == {'init_from', 'out_dir', 'role'}
    assert ft['model'] == sc['model']
    # the pre-trained model starts far ahead and stays ahead on this small D_f
    assert ft['evals'][0]['val_loss'] < sc['evals'][0]['val_loss'] - 0.3
    assert ft['best']['val_loss'] < sc['best']['val_loss']
    # forgetting is measured on the English val split: at the first and last evaluation, and on
    # the best model at the end (every evaluation would cost a fine-tune more than its training)
    assert [e['iter'] for e in ft['evals'] if e['extra_val']] == [0, 150]
    assert set(ft['best']['extra_val']) == {'toy_en'}
    assert ft['evals'][-1]['epoch'] == pytest.approx(150 * 8 * 64 / 8000)
    # the study's loss: the best model on test windows from the second half of the val split,
    # which did not decide when the run stopped
    for log in (ft, sc):
        assert log['data']['test_tokens'] == 4096 and log['data']['val_tokens'] == 2048
        assert 0 < log['best']['test_loss'] != log['best']['val_loss']
    # data_seed draws documents from an offset; a smaller D_f of the same draw is nested in it
    assert ft['data']['data_seed'] == 7 and ft['data']['data_offset'] > 0
    run('train.py', *transfer_args(data_dir, tmp_path / 'half', '--data_seed=7',
                                   '--dataset_tokens=4000', '--max_iters=1', '--test_split=False'))
    half = read_log(tmp_path / 'half')
    assert half['data']['data_offset'] == ft['data']['data_offset']
    assert half['data']['test_tokens'] is None and 'test_loss' not in half['best']


def test_early_stopping_on_a_tiny_dataset(data_dir, tmp_path):
    out = tmp_path / 'es'
    run('train.py', *TINY, f'--data_dir={data_dir}', '--dataset=toy_de', '--dataset_tokens=2000',
        '--n_embd=128', '--learning_rate=1e-2', '--max_iters=3000', '--eval_interval=20',
        '--patience=3', '--patience_epochs=5', f'--out_dir={out}')
    log = read_log(out)
    assert log['status'] == 'early_stopped'
    last, best = log['evals'][-1], log['best']
    assert last['iter'] < 3000
    assert [e['val_loss'] for e in log['evals'][-3:]] > [best['val_loss']] * 3
    assert (last['tokens'] - best['tokens']) / 2000 >= 5  # the patience in epochs of D_f held
    assert torch.load(out / 'best.pt', weights_only=False)['iter'] == best['iter']


WSD = [*TINY, '--dataset=toy_de', '--dataset_tokens=1000', '--learning_rate=1e-2',
       '--eval_interval=20', '--patience=3', '--patience_epochs=5', '--lr_schedule=wsd',
       '--decay_frac=0.25', '--max_tokens=0']


def test_wsd_converges_the_same_under_twice_the_budget(data_dir, tmp_path):
    """warmup-stable-decay: the learning rate is constant until validation stalls, then decays over
    a quarter of the steps so far; the run is converged, and twice the budget changes nothing."""
    logs = []
    for epochs in (400, 800):
        out = tmp_path / f'e{epochs}'
        run('train.py', *WSD, f'--data_dir={data_dir}', f'--max_epochs={epochs}', f'--out_dir={out}')
        logs.append(read_log(out))
    a, b = logs
    assert a['budget']['max_iters'] == math.ceil(400 * 1000 / (8 * 64))
    assert b['budget']['max_iters'] == math.ceil(800 * 1000 / (8 * 64))
    assert a['status'] == 'early_stopped' and a['converged'] and a['stop_reason'] == 'converged'
    start, end, restored = a['decay']['start'], a['decay']['end'], a['decay']['restored']
    # the decay starts from the best evaluation's state and lasts a quarter of the steps to it
    assert a['decay']['trigger'] == 'stall' and end - start == round(0.25 * restored)
    assert restored < start and restored in {e['iter'] for e in a['evals']}
    assert end < a['budget']['max_iters'] and a['evals'][-1]['iter'] == end
    lrs = {e['iter']: e['lr'] for e in a['evals']}
    assert {lr for i, lr in lrs.items() if 10 <= i <= start} == {1e-2}  # stable until the stall
    decaying = [lr for i, lr in sorted(lrs.items()) if i > start]
    assert decaying == sorted(decaying, reverse=True) and decaying[-1] < 2e-3  # then decays
    strip = ('elapsed_s',)
    assert [{k: v for k, v in e.items() if k not in strip} for e in a['evals']] == \
           [{k: v for k, v in e.items() if k not in strip} for e in b['evals']]
    assert a['best'] == b['best']


def test_wsd_resume_after_sigkill_in_the_decay_matches(data_dir, tmp_path):
    args = [*WSD, f'--data_dir={data_dir}', '--max_epochs=400', '--decay_frac=1.0']
    run('train.py', *args, f'--out_dir={tmp_path / "a"}')
    out = tmp_path / 'b'
    p = subprocess.Popen([sys.executable, 'train.py', *args, f'--out_dir={out}'], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if read_log(out)['decay']['start'] is not None:
                break
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed = read_log(out)
    assert killed['status'] == 'running' and killed['decay']['start'] is not None
    run('train.py', '--init_from=resume', f'--out_dir={out}', '--device=cpu')
    a, b = read_log(tmp_path / 'a'), read_log(out)
    assert evals_without_time(a) == evals_without_time(b)  # bit for bit
    assert a['best'] == b['best'] and a['decay'] == b['decay'] and b['converged']


def test_min_overfit_holds_the_stall_until_the_model_overfits(data_dir, tmp_path):
    """min_overfit: a stall counts only once the val loss of the last patience evaluations
    averages that fraction above the best; where the other conditions held earlier (a plateau,
    or noise), the run went on."""
    out = tmp_path / 'mo'
    run('train.py', *WSD, f'--data_dir={data_dir}', '--max_epochs=400', '--min_overfit=0.1',
        f'--out_dir={out}')
    log = read_log(out)
    assert log['decay']['trigger'] == 'stall' and log['converged']
    evals, start = log['evals'], log['decay']['start']
    best_val = {e['iter']: e['val_loss'] for e in evals}[log['decay']['restored']]
    before = [e for e in evals if e['iter'] <= start]
    assert sum(e['val_loss'] for e in before[-3:]) / 3 >= 1.1 * best_val
    held, best, since = [], None, 0  # evaluations where patience and patience_epochs were met
    for e in before[:-1]:
        if best is None or e['val_loss'] < best['val_loss']:
            best, since = e, 0
        else:
            since += 1
        if since >= 3 and e['tokens'] - best['tokens'] >= 5 * 1000:
            held.append(e)
    assert held  # without min_overfit the decay would have started at held[0], before start


def test_wsd_run_that_reaches_its_budget_is_not_converged(data_dir, tmp_path):
    out = tmp_path / 'short'
    run('train.py', *WSD, f'--data_dir={data_dir}', '--max_epochs=20', '--min_tokens=40000',
        f'--out_dir={out}')
    log = read_log(out)
    # 20 epochs of 1,000 tokens is below the 40,000-token floor: the floor is the budget
    assert log['budget']['max_iters'] == math.ceil(40000 / (8 * 64))
    assert log['status'] == 'done' and not log['converged'] and log['stop_reason'] == 'budget'
    assert log['decay']['trigger'] == 'budget' and log['decay']['end'] == log['budget']['max_iters']
    assert log['evals'][-1]['lr'] == pytest.approx(1e-3)  # decayed to min_lr at the budget's end


def test_resume_after_sigkill_matches_an_uninterrupted_run(data_dir, tmp_path):
    args = [*TINY, f'--data_dir={data_dir}', '--dataset=toy_en', '--max_iters=400',
            '--eval_interval=20', '--eval_dense=False']
    run('train.py', *args, f'--out_dir={tmp_path / "a"}')
    out = tmp_path / 'b'
    p = subprocess.Popen([sys.executable, 'train.py', *args, f'--out_dir={out}'], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_evals(out, 6)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed = read_log(out)
    assert killed['status'] == 'running' and killed['evals'][-1]['iter'] < 400
    # ckpt.pt is written at a bounded rate (ckpt_share): it may be older than the last evaluation
    assert torch.load(out / 'ckpt.pt', weights_only=False)['iter'] <= killed['evals'][-1]['iter']
    run('train.py', '--init_from=resume', f'--out_dir={out}', '--device=cpu')
    a, b = read_log(tmp_path / 'a'), read_log(out)
    assert b['status'] == 'done'
    assert evals_without_time(a) == evals_without_time(b)  # bit for bit
    assert a['best'] == b['best']


def test_ddp_two_processes_over_gloo(data_dir, tmp_path):
    out = tmp_path / 'ddp'
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           'train.py', *TINY, f'--data_dir={data_dir}', '--dataset=toy_en', '--max_iters=60',
           '--eval_interval=20', '--gradient_accumulation_steps=2', f'--out_dir={out}']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    log = read_log(out)
    assert log['status'] == 'done'
    assert log['tokens_seen'] == 60 * 8 * 64 * 2  # both processes' micro-batches count
    assert log['evals'][-1]['val_loss'] < log['evals'][0]['val_loss'] - 1.0
    assert sorted(os.listdir(out)) == ['best.pt', 'ckpt.pt', 'log.json']
    # the checkpoint keeps each process's data position
    ckpt = torch.load(out / 'ckpt.pt', weights_only=False)
    assert len(ckpt['data_rng']) == 2
    # resumed (10 more steps) on another number of processes: each process's stream is derived
    # anew (not rank 0's for every new rank), and the run says so
    ckpt['config']['max_iters'] = 70
    torch.save(ckpt, out / 'ckpt.pt')
    (out / 'log.json').write_text(json.dumps(dict(log, status='running')))
    r = run('train.py', '--init_from=resume', f'--out_dir={out}', env=env)
    assert ("resume: 1 process(es), the checkpoint has 2: each process's batches are drawn anew"
            in r.stdout)
    assert read_log(out)['status'] == 'done' and read_log(out)['evals'][-1]['iter'] == 70
    assert len(torch.load(out / 'ckpt.pt', weights_only=False)['data_rng']) == 1


def test_compile_and_bf16_autocast_on_cpu_second_run_loads_the_cache(data_dir, tmp_path):
    """A compiled bf16 run learns; its first evaluation and step are timed as 'compile'; a second
    run of the shape with the same compile_cache loads every compiled graph instead of compiling."""
    logs = []
    for name in ('first', 'second'):
        out = tmp_path / name
        run('train.py', *TINY, f'--data_dir={data_dir}', '--dataset=toy_en', '--max_iters=40',
            '--eval_interval=20', '--compile=True', '--dtype=bfloat16', f'--out_dir={out}',
            f'--compile_cache={tmp_path / "cache"}')
        logs.append(read_log(out))
    first, second = logs
    assert first['config']['compile'] is True and first['config']['dtype'] == 'bfloat16'
    assert first['evals'][-1]['val_loss'] < first['evals'][0]['val_loss'] - 0.5
    assert first['compile_cache']['misses'] > 0 and first['time']['compile'] > 0
    assert second['compile_cache']['hits'] >= first['compile_cache']['misses'] > 0
    assert second['compile_cache']['misses'] == 0, second['compile_cache']


def test_sample_from_a_checkpoint(pretrained):
    p = run('sample.py', f'--out_dir={pretrained}', '--start=the', '--num_samples=1',
            '--max_new_tokens=40', '--device=cpu')
    assert p.stdout.startswith('the') and len(p.stdout) > 30


# --- bad input: one line, non-zero exit, nothing half-written --------------------------------

def fails_with(*args, contains):
    p = run('train.py', *args, check=False)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error:') and contains in lines[0], p.stderr
    return lines[0]


def test_bad_input(pretrained, data_dir, tmp_path):
    base = [*TINY, f'--data_dir={data_dir}', f'--out_dir={tmp_path / "bad"}']
    fails_with(*base, '--dataset=nothing_here', contains='prepare')
    fails_with(*base, '--datset=toy_en', contains="did you mean 'dataset'")
    fails_with(*base, '--max_iters=ten', contains='max_iters')
    fails_with(*base, '--max_iters=1.5', contains='max_iters')
    fails_with(*base, '--dataset=toy_de', '--dataset_tokens=1e9', contains='100,000')
    fails_with(*base, '--dataset=toy_gpt2', f'--init_from={pretrained}/best.pt', contains='tokenizer')
    fails_with(*base, '--dataset=toy_de', f'--init_from={pretrained}/best.pt', '--n_embd=128',
               contains='n_embd=128 (from --n_embd) but checkpoint')
    cfg = tmp_path / 'wide.py'  # a shape from a config file: the hint says where, and how to fix it
    cfg.write_text('n_embd = 128\n')
    line = fails_with(str(cfg), *(a for a in base if not a.startswith('--n_embd')),
                      '--dataset=toy_de', f'--init_from={pretrained}/best.pt',
                      contains=f'n_embd=128 (from {cfg}) but checkpoint')
    assert 'override it with --n_embd=64 or use a checkpoint of that shape' in line
    fails_with(*base, '--init_from=resume', contains='resume')
    assert not os.path.exists(tmp_path / 'bad' / 'log.json')


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path):
    out = tmp_path / 'nan'
    line = fails_with(*TINY, f'--data_dir={data_dir}', '--dataset=toy_en', f'--out_dir={out}',
                      '--learning_rate=1e30', '--grad_clip=0.0', '--warmup_iters=0',
                      '--max_iters=200', '--eval_interval=10', contains='non-finite')
    assert 'checkpoint' in line
    log = read_log(out)
    assert log['status'] == 'failed' and 'non-finite' in log['error']
    good = torch.load(out / 'ckpt.pt', weights_only=False)
    assert all(torch.isfinite(v).all() for v in good['model'].values())


def test_gpt2_bytes_are_exact(tmp_path):
    """D_f and the validation set in bytes: the UTF-8 bytes of the text the GPT-2 tokens encode."""
    import json
    import numpy as np
    from prepare.common import encode
    docs = ['Über die Größe des Gerätes: 42 °C.', '中文文本测试，英语预训练。', 'plain English text here'] * 40
    ids = np.concatenate([np.append(encode(d, 'gpt2'), 50256) for d in docs]).astype(np.uint16)
    d = tmp_path / 'data' / 'gpt2_mix'
    d.mkdir(parents=True)
    ids.tofile(d / 'train.bin')
    ids.tofile(d / 'val.bin')
    n_bytes = sum(len(x.encode('utf-8')) for x in docs)
    split = dict(tokens=len(ids), bytes=n_bytes, documents=len(docs))
    (d / 'meta.json').write_text(json.dumps(dict(tokenizer='gpt2', vocab_size=50257, eot_token=50256,
                                                 language='de', splits=dict(train=split, val=split))))
    half = int(np.nonzero(ids == 50256)[0][len(docs) // 2 - 1]) + 1  # the first half of the documents
    run('train.py', '--device=cpu', '--n_layer=1', '--n_head=1', '--n_embd=32', '--block_size=32',
        '--batch_size=2', '--max_iters=1', '--eval_interval=1', f'--eval_tokens={len(ids)}',
        f'--data_dir={tmp_path / "data"}', '--dataset=gpt2_mix', f'--dataset_tokens={half}',
        f'--out_dir={tmp_path / "out"}')
    data = read_log(tmp_path / 'out')['data']
    assert data['dataset_bytes'] == sum(len(x.encode('utf-8')) for x in docs[:len(docs) // 2])
    assert data['val_bytes'] / data['val_tokens'] == pytest.approx(n_bytes / len(ids), rel=0.1)


def test_reinit_rare_gives_unseen_tokens_fresh_embedding_rows(pretrained, data_dir, tmp_path):
    """Fine-tuning with reinit_rare: the rows of the tokens pre-training never saw are drawn
    afresh, every other row is the pre-trained model's (learning rate 0: the first evaluation's
    best.pt is the model as it starts)."""
    out = tmp_path / 'reinit'
    run('train.py', *transfer_args(data_dir, out, f'--init_from={pretrained}/best.pt',
                                   '--reinit_rare=1e-6', '--learning_rate=0', '--max_iters=1'))
    seen = np.unique(np.memmap(os.path.join(data_dir, 'toy_en', 'train.bin'), dtype=np.uint16))
    unseen = np.setdiff1d(np.arange(257), seen)
    log = read_log(out)
    assert log['reinit'] == {'below': 1e-6, 'tokens': len(unseen), 'share': 0.0}
    assert set(range(128, 256)) < set(unseen) and len(seen) > 10  # bytes >= 0x80 and more
    before = torch.load(f'{pretrained}/best.pt')['model']['transformer.wte.weight']
    after = torch.load(out / 'best.pt')['model']['transformer.wte.weight']
    assert torch.equal(before[seen], after[seen])
    assert not torch.isclose(before[unseen], after[unseen]).all(dim=1).any()
    assert after[unseen].std().item() == pytest.approx(0.02, rel=0.2)


def test_data_documents_draws_the_same_documents_from_a_parallel_corpus(data_dir, tmp_path):
    """Two corpora of the same documents in the same order, of other lengths (a translation:
    here every byte doubled): data_documents draws the same documents from both at one seed."""
    src = os.path.join(data_dir, 'toy_de')
    train = np.fromfile(os.path.join(src, 'train.bin'), dtype=np.uint16)
    eot = train == 256
    doubled = np.repeat(train, np.where(eot, 1, 2))
    par = tmp_path / 'data' / 'toy_de_par'
    os.makedirs(par)
    doubled.astype(np.uint16).tofile(par / 'train.bin')
    shutil.copy(os.path.join(src, 'val.bin'), par / 'val.bin')
    meta = json.load(open(os.path.join(src, 'meta.json')))
    meta['splits']['train']['tokens'] = len(doubled)
    meta.pop('sha256', None)
    json.dump(meta, open(par / 'meta.json', 'w'))
    os.symlink(src, tmp_path / 'data' / 'toy_de')
    offsets = []
    for name in ('toy_de', 'toy_de_par'):
        out = tmp_path / name
        run('train.py', *TINY, f'--data_dir={tmp_path / "data"}', f'--dataset={name}',
            '--dataset_tokens=2000', '--data_seed=5', '--data_chunk=40', '--data_documents=True',
            '--max_iters=1', f'--out_dir={out}')
        offsets.append(read_log(out)['data']['data_offset'])
    k = int(eot[:offsets[0]].sum())  # the first document drawn, by its index
    assert offsets[0] > 0 and offsets[1] == 2 * offsets[0] - k
