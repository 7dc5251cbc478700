# Settings shared by every transfer run of Kim (2021)'s study, fine-tuned and from scratch alike:
# the two twins of a cell differ only in init_from. Kim (2021): a 300-step warm-up, then training
# to the best validation loss or 15M tokens. That cap made every scratch run at D_f >= 15M tokens a
# compute-limited point (less than an epoch), read as if it were converged. Here the budget grows
# with D_f and the schedule does not depend on it (warmup-stable-decay, see train.py), so a run
# stops on overfitting, and the few that reach the budget are reported as unconverged bounds.
block_size = 1024
# 8 x 1024 tokens per step: Kim's 512 x 1024 would make the smallest D_f (8,000 tokens) 64
# epochs a step, and a fine-tune peaks within its first few hundred steps
batch_size = 8
gradient_accumulation_steps = 1
lr_schedule = 'wsd'
decay_frac = 0.2  # the decay after the stall: a fifth of the steps so far, linear to min_lr
warmup_iters = 300
min_lr = -1.0  # = learning_rate / 10
# budget: 64 epochs of D_f, at least 5M tokens (the smallest D_f needs hundreds of steps to
# stall) and at most 4B (a 524M-token D_f gets 7.6 epochs; a small model there may not overfit
# and is then reported as unconverged)
max_epochs = 64.0
min_tokens = 5_000_000
max_tokens = 4_000_000_000
weight_decay = 0.0
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
# The stall: 8 evaluations without improvement, but only once 2 epochs of D_f have passed since
# the best one and never before the warm-up ends: a patience counted in evaluations alone
# stops a fine-tune on its first plateau (docs/training.md: evaluation and early stopping).
eval_interval = 25
patience = 8
# ... and only once those evaluations average 2% above the best: a plateau is no stall
min_overfit = 0.02
patience_epochs = 2.0
min_iters = 300
# evaluation: 32 sequences of the val split's first half at every evaluation, only to rank the
# steps (which is best, when it stalls); the loss reported is the best model's on 256 sequences
# of the second half, once: evaluation stays under 15% of a run's FLOPs from its 400th step on
# (sweep.py --cost)
eval_tokens = 32_768
test_tokens = 262_144
