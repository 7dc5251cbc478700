# Settings shared by the six English pre-training runs of Kim (2021)'s study (after
# Kaplan et al. 2020): GPT-2 BPE, 512 sequences x 1024 tokens per step, Adam, a 500-step linear
# warm-up, then a cosine decay to 10% of the maximum learning rate at the end of 26B tokens.
# Each config/pretrain_<size>.py executes this file, then sets its shape and learning rate.
# OpenWebText2, all of it: python prepare/hf.py --lang en --tokenizer gpt2 --max_bytes 70e9
dataset = 'hf_en_gpt2'
block_size = 1024
batch_size = 16  # per micro-step and GPU: 16 x 1024 tokens fit a 40GB GPU at these sizes
gradient_accumulation_steps = 32  # 16 x 32 = 512 sequences/step, divided among torchrun's GPUs
max_tokens = 26_000_000_000  # 49,591 steps of 524,288 tokens
warmup_iters = 500
min_lr = -1.0  # = learning_rate / 10
weight_decay = 0.0  # "Adam": AdamW without weight decay
beta1, beta2 = 0.9, 0.95
grad_clip = 1.0
eval_interval = 1000
eval_tokens = 1_048_576  # 1,024 sequences: the val loss' standard error is well below 0.01
patience = 0  # pre-training never stops early: it is in the compute-limited regime
