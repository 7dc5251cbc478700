# English pre-training, 39M non-embedding parameters (N = 39,332,480, Kaplan's count: token and
# position embeddings excluded). Shape: 8 x 640: 39.3M (+0.9%). n_head = n_embd / 64.
exec(open('config/_pretrain_base.py').read())
out_dir = 'out/pretrain_39M'
n_layer = 8
n_embd = 640
n_head = 10
# Kaplan et al. (2020) fit LR(N) = 0.003239 - 0.0001395 ln N for this setup (batch 512 x 1024):
# 7.99e-04 at N = 39,332,480: the rate follows the counted N, not the label
learning_rate = 7.99e-04
