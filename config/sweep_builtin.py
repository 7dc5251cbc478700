# The built-in study: English -> German, Spanish, Chinese on Debian documentation, byte tokens,
# three model sizes, on a 2-core CPU in about 10 minutes:  python sweep.py config/sweep_builtin.py
# Prepare the corpora first: python prepare/debian_docs.py --lang en (and de, es, zh).
#
# Why these numbers (measured on this 2-core CPU, see README):
# - Sizes 14K, 56K and 222K non-embedding parameters (16x in N, 4x apart), 2 layers each: a step
#   of 8 x 128 bytes takes 6-25 ms on one core, which is what lets ~90 runs fit the time budget.
# - learning_rate 4e-3 for every size: a 3 x 96 model pre-trained to 2.17 nats/byte in 1,000
#   steps at 4e-3 and to 2.39 at 1.5e-3. The twins of a cell share it, so it favours neither.
# - Transfer runs: 8 x 128 bytes a step, at most 1M bytes (1,024 steps) with the cosine schedule
#   over that budget; early stopping after 4 evaluations without improvement, but only once 2
#   epochs of D_f have passed since the best one (a patience in evaluations alone stops
#   fine-tunes on their first plateau) and never before step 100. Evaluations are dense early
#   (steps 1, 3, 6, 12, 25, 50) because fine-tunes peak early, then every 100 steps.
# - D_f from 2K to 256K bytes (128x); scratch runs also at 1M bytes, 4x beyond the largest D_f,
#   so that D_e can be read off the scratch curve at the losses the fine-tuned runs reach.
# - Validation: 8,192 bytes in 64 windows spread evenly over each val split, the same windows for
#   every run of a language; the English val loss is logged during fine-tuning (forgetting).
# - The 1M-byte budget makes the scratch runs at the largest D_f compute-limited (they are still
#   improving when it ends): the README says what that means for D_t there.
out_dir = 'out/builtin'
pretrain_dataset = 'builtin_en'
languages = {'de': 'builtin_de', 'es': 'builtin_es', 'zh': 'builtin_zh'}
_common = dict(device='cpu', block_size=128, learning_rate=4e-3, eval_tokens=8192,
               eval_batch_size=32, log_interval=0, compile=False, dtype='float32')
sizes = {
    '14K': dict(n_layer=2, n_head=1, n_embd=24),
    '56K': dict(n_layer=2, n_head=2, n_embd=48),
    '222K': dict(n_layer=2, n_head=3, n_embd=96),
}
# English pre-training: 2,000 steps of 16 x 128 bytes (4M bytes, 6% of the English corpus)
pretrain = dict(_common, batch_size=16, max_iters=2000, warmup_iters=100, eval_interval=500)
transfer = dict(_common, batch_size=8, max_tokens=1_048_576, warmup_iters=20, eval_interval=100,
                patience=4, patience_epochs=2.0, min_iters=100)
dataset_tokens = [2048, 8192, 32768, 262144]
scratch_only_tokens = [1_048_576]
# run-to-run spread of one cell (two more seeds), and a 5x longer patience for one cell
checks = [
    dict(language='de', size='56K', dataset_tokens=8192, tag='seed2', seed=2),
    dict(language='de', size='56K', dataset_tokens=8192, tag='seed3', seed=3),
    dict(language='de', size='56K', dataset_tokens=32768, tag='patience20', patience=20,
         patience_epochs=10.0),
]
jobs = 2
