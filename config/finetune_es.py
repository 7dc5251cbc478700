# Fine-tune the English 16M model on es: python train.py config/finetune_es.py --dataset_tokens=1e6
# Its twin from scratch is config/scratch_es.py. Another size: --init_from=out/pretrain_70M/best.pt
# (and that size's learning_rate); the shape always comes from the checkpoint.
exec(open('config/_transfer_base.py').read())
dataset = 'fineweb2_es'  # python prepare/hf.py --lang es (GPT-2 BPE)
init_from = 'out/pretrain_16M/best.pt'
extra_val = 'openwebtext2'  # English val loss at each evaluation: how much is forgotten
out_dir = 'out/finetune_es'
