# English pre-training, 70M non-embedding parameters (N = 70,795,008, Kaplan's count: token and
# position embeddings excluded). Shape: 10 x 768: 70.8M (+1.1%). n_head = n_embd / 64.
exec(open('config/_pretrain_base.py').read())
out_dir = 'out/pretrain_70M'
n_layer = 10
n_embd = 768
n_head = 12
# Kaplan et al. (2020) fit LR(N) = 0.003239 - 0.0001395 ln N for this setup (batch 512 x 1024):
# 7.17e-04 at N = 70,795,008: the rate follows the counted N, not the label
learning_rate = 7.17e-04
