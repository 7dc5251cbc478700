# Fine-tune the English 16M model on de: python train.py config/finetune_de.py --dataset_tokens=1e6
# Its twin from scratch is config/scratch_de.py. Another size: --init_from=out/pretrain_70M/best.pt
# (and that size's learning_rate); the shape always comes from the checkpoint.
exec(open('config/_transfer_base.py').read())
learning_rate = 9.27e-04  # the 16M model's pre-training rate (config/pretrain_16M.py)
dataset = 'hf_de_gpt2'  # python prepare/hf.py --lang de --tokenizer gpt2 --max_bytes 2e9
init_from = 'out/pretrain_16M/best.pt'
extra_val = 'hf_en_gpt2'  # English val loss at each evaluation: how much is forgotten
out_dir = 'out/finetune_de'
