# English pre-training, 51M non-embedding parameters (N = 49,556,736, Kaplan's count: token and
# position embeddings excluded). Shape: 7 x 768: 49.6M (-2.8%); 8 x 704 would miss by 7%. n_head =
# n_embd / 64.
exec(open('config/_pretrain_base.py').read())
out_dir = 'out/pretrain_51M'
n_layer = 7
n_embd = 768
n_head = 12
# Kaplan et al. (2020) fit LR(N) = 0.003239 - 0.0001395 ln N for this setup (batch 512 x 1024):
# 7.67e-04 at N = 49,556,736: the rate follows the counted N, not the label
learning_rate = 7.67e-04
