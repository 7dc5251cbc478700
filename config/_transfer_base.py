# Settings shared by every transfer run of the seed study, fine-tuned and from scratch alike:
# the two twins of a cell differ only in init_from. Kim (2021): a 300-step warm-up, a cosine decay
# to 10% of the maximum learning rate, training to the best validation loss or 15M tokens.
block_size = 1024
# 8 x 1024 tokens per step: the seed's 512 x 1024 would make 15M tokens 29 steps, fewer than its
# own 300-step warm-up; at 8,192 tokens a step the smallest D_f (8,000 tokens) is about an epoch
# a step and the 15M-token budget is 1,831 steps.
batch_size = 8
gradient_accumulation_steps = 1
max_tokens = 15_000_000
warmup_iters = 300
min_lr = -1.0  # = learning_rate / 10
weight_decay = 0.0
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
# Early stopping: the best validation loss is the result. Evaluate every 25 steps (and densely
# before: fine-tuned runs peak early) and stop after 8 evaluations without improvement, but only
# once 2 epochs of D_f have passed since the best one and never before the warm-up ends: a patience
# counted in evaluations alone stops a fine-tune on its first plateau (see DESIGN.md).
eval_interval = 25
patience = 8
patience_epochs = 2.0
min_iters = 300
eval_tokens = 524_288  # 512 sequences of the fixed val split, the same at every evaluation
