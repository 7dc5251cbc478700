# English pre-training, 3.3M non-embedding parameters (N = 3,148,032, Kaplan's count: token and
# position embeddings excluded). Shape: 4 x 256: 3.3M needs 12 L d^2 = 3.3M; 4 layers of 256 is
# the closest shape with 64-wide heads (-4.6%). n_head = n_embd / 64.
exec(open('config/_pretrain_base.py').read())
out_dir = 'out/pretrain_3M'
n_layer = 4
n_embd = 256
n_head = 4
# Kaplan et al. (2020) fit LR(N) = 0.003239 - 0.0001395 ln N for this setup (batch 512 x 1024):
# 1.15e-03 at N = 3,148,032: the rate follows the counted N, not the label
learning_rate = 1.15e-03
