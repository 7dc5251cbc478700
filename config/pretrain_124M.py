# English pre-training, 124M non-embedding parameters (N = 125,263,488, Kaplan's count: token and
# position embeddings excluded). Shape: 13 x 896: 125.3M (+1.0%); GPT-2 small (12 x 768) has only
# 85M non-embedding parameters. n_head = n_embd / 64.
exec(open('config/_pretrain_base.py').read())
out_dir = 'out/pretrain_124M'
n_layer = 13
n_embd = 896
n_head = 14
# Kaplan et al. (2020) fit LR(N) = 0.003239 - 0.0001395 ln N for this setup (batch 512 x 1024):
# 6.38e-04 at N = 125,263,488: the rate follows the counted N, not the label
learning_rate = 6.38e-04
