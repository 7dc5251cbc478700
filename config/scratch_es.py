# Train the 16M model from scratch on es: python train.py config/scratch_es.py --dataset_tokens=1e6
# The twin of config/finetune_es.py: the same data, schedule, evaluation and stopping; random init.
# Another size: its shape and learning_rate, e.g. --n_layer=10 --n_embd=768 --n_head=12.
exec(open('config/_transfer_base.py').read())
learning_rate = 9.27e-04  # the 16M model's pre-training rate (config/pretrain_16M.py)
dataset = 'hf_es_gpt2'  # python prepare/hf.py --lang es --tokenizer gpt2 --max_bytes 2e9
n_layer = 5  # the shape of config/pretrain_16M.py
n_embd = 512
n_head = 8
extra_val = 'hf_en_gpt2'
out_dir = 'out/scratch_es'
