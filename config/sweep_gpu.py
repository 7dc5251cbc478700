# The one-GPU study: the built-in corpora (Debian documentation) with GPT-2 BPE, three sizes,
# German, Spanish and Chinese, in about an hour on one current GPU (docs/study.md, "One GPU"):
#   bash study.sh config/sweep_gpu.py            # prepares the _gpt2 corpora, runs, fits
#   python sweep.py config/sweep_gpu.py --cost   # FLOPs and GPU-hours before you start
#
# Why these numbers:
# - Sizes 0.4M, 3.1M and 10.6M non-embedding parameters (27x in N), 64-wide heads and widths of
#   a multiple of 128, which a GPU's matmul units take whole. The GPT-2 vocabulary (50,257,
#   padded to 50,304) makes the output layer most of each step's FLOPs at these sizes.
# - English pre-training: 4,000 steps of 32 x 256 tokens (33M tokens, about two epochs of the
#   17M-token English corpus), a cosine schedule, the learning rate of Kaplan et al.'s LR(N).
# - D_f from 1,000 to 64,000 tokens (4x apart), and scratch runs alone between them and beyond,
#   so that the scratch points lie 2x apart from 500 to 1.02M tokens (the Spanish corpus holds
#   1.43M): D_e is measured only between scratch points at most 2x apart (fit_scaling.py).
# - The two smallest D_f twice (repeats: another run seed, draw of documents and pre-trained
#   model), and two pre-trained models per size, so that the intervals see what a rerun moves.
# - Transfer runs as in the CPU study: warmup-stable-decay (a constant learning rate until
#   validation stalls, then back to the best evaluation and a decay over a fifth of the steps to
#   it), a budget of 64 epochs of D_f clamped to [1M, 100M] tokens so that runs stop on
#   overfitting; 8 x 256 tokens a step, so the smallest D_f is ~2.5 epochs a step.
# - Several runs share the GPU at once (jobs): one small run leaves most of it idle.
# - gpu_flops is an estimate for these small shapes (launch-bound at 2,048 tokens a step), not a
#   measurement: measure it with bench.py at a size's shape and batch (docs/study.md) and pass
#   --gpu_flops=<its GFLOP/s x 1e9> to --cost.
out_dir = 'out/gpu'
pretrain_dataset = 'builtin_en_gpt2'  # python prepare/debian_docs.py --lang en --tokenizer gpt2
languages = {'de': 'builtin_de_gpt2', 'es': 'builtin_es_gpt2', 'zh': 'builtin_zh_gpt2'}
_common = dict(block_size=256, eval_tokens=65536, log_interval=0)
sizes = {
    '0.4M': dict(n_layer=2, n_head=2, n_embd=128, learning_rate=1.44e-3),
    '3.1M': dict(n_layer=4, n_head=4, n_embd=256, learning_rate=1.15e-3),
    '10.6M': dict(n_layer=6, n_head=6, n_embd=384, learning_rate=0.98e-3),
}
pretrain = dict(_common, batch_size=32, max_iters=4000, warmup_iters=200, eval_interval=500)
# transfer runs rank their steps on 32 val windows and report the best model's loss on 128 test
# windows: evaluation stays under 15% of a run's FLOPs from its 300th step on (sweep.py --cost)
transfer = dict(_common, eval_tokens=8192, test_tokens=32768, batch_size=8, lr_schedule='wsd',
                decay_frac=0.2, max_epochs=64.0, min_tokens=1_000_000, max_tokens=100_000_000,
                warmup_iters=100, eval_interval=25, patience=4, patience_epochs=2.0, min_iters=200,
                min_overfit=0.02)
# learning rates tried per language, size and arm before the grid (sweep.py): around the
# sizes' own rates, and below them, where the built-in study's fine-tunes found their best
learning_rates = [2.5e-4, 5e-4, 1e-3, 2e-3]
calibration_tokens = [4_000]
dataset_tokens = [1_000, 4_000, 16_000, 64_000]
scratch_only_tokens = [500, 2_000, 8_000, 32_000, 128_000, 256_000, 512_000, 1_024_000]
repeats = {1_000: 2, 4_000: 2}
pretrain_seeds = 2
checks = [
    # run-to-run spread of one cell (two more seeds)
    dict(language='de', size='3.1M', dataset_tokens=16_000, tag='seed2', seed=2),
    dict(language='de', size='3.1M', dataset_tokens=16_000, tag='seed3', seed=3),
] + [
    # twice the budget, one cell per size: a converged run's best does not depend on it
    dict(language='de', size=s, dataset_tokens=16_000, tag='budget2x', max_epochs=128.0,
         max_tokens=200_000_000) for s in sizes
]
jobs = 4
gpu_flops = 3e13
