# The built-in study: English -> German, Spanish, Chinese on Debian documentation, byte tokens,
# three model sizes, on a 2-core CPU in about 10 minutes (python sweep.py config/sweep_builtin.py).
# Prepare the corpora first: python prepare/debian_docs.py --lang en (and de, es, zh).
#
# Why these numbers (measured on this 2-core CPU, see README):
# - Sizes 25K, 99K and 332K non-embedding parameters (13x in N): at 128-byte context a step of the
#   largest takes ~35 ms on one core, which is what lets 84 runs finish in the time budget.
# - learning_rate 4e-3 for every size: at 332K it pre-trained to 2.17 nats/byte in 1,000 steps
#   where 1.5e-3 reached 2.39; the twins of a cell share it, so it cannot favour either.
# - Transfer runs: 8 x 128 bytes a step, at most 1M bytes (1,000 steps), a cosine schedule over
#   that budget; early stopping after 4 evaluations without improvement, and only once 2 epochs
#   of D_f have passed since the best one (a patience in evaluations alone stops fine-tunes on
#   their first plateau) and never before step 100. Evaluations are dense early (steps 1, 3, 6,
#   12, 25, 50) because fine-tunes peak early, then every 100 steps.
# - D_f from 2K to 256K bytes (128x); scratch runs also at 1M bytes, 4x beyond the largest D_f,
#   so D_e can be read off the scratch curve at the losses the fine-tuned runs reach.
# - Validation: 8,192 bytes in 64 windows spread evenly over each val split, the same windows for
#   every run of a language; the English val loss is logged during transfer (forgetting).
out_dir = 'out/builtin'
pretrain_dataset = 'builtin_en'
languages = {'de': 'builtin_de', 'es': 'builtin_es', 'zh': 'builtin_zh'}
_common = dict(device='cpu', block_size=128, learning_rate=4e-3, eval_tokens=8192,
              eval_batch_size=64, log_interval=0, compile=False, dtype='float32')
sizes = {
    '25K': dict(n_layer=2, n_head=1, n_embd=32),
    '99K': dict(n_layer=2, n_head=2, n_embd=64),
    '332K': dict(n_layer=3, n_head=3, n_embd=96),
}
# English pre-training: 2,000 steps of 16 x 128 bytes (4M bytes, 6% of the English corpus)
pretrain = dict(_common, batch_size=16, max_iters=2000, warmup_iters=100, eval_interval=500)
transfer = dict(_common, batch_size=8, max_tokens=1_048_576, warmup_iters=20, eval_interval=100,
                patience=4, patience_epochs=2.0, min_iters=100)
dataset_tokens = [2048, 8192, 32768, 262144]
scratch_only_tokens = [1_048_576]
jobs = 2
