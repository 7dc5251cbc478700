# English pre-training, 16M non-embedding parameters (N = 15,734,272, Kaplan's count: token and
# position embeddings excluded). Shape: 5 x 512: 12 L d^2 = 15.7M (-1.7%), d/L ~ 100 as in
# Kaplan's well-performing aspect ratios. n_head = n_embd / 64.
exec(open('config/_pretrain_base.py').read())
out_dir = 'out/pretrain_16M'
n_layer = 5
n_embd = 512
n_head = 8
# Kaplan et al. (2020) fit LR(N) = 0.003239 - 0.0001395 ln N for this setup (batch 512 x 1024):
# 9.27e-04 at N = 15,734,272: the rate follows the counted N, not the label
learning_rate = 9.27e-04
