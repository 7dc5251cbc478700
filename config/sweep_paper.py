# Kim (2021)'s study at full scale, for a GPU node or a cluster:
#   python sweep.py config/sweep_paper.py --jobs 8          # one run per GPU on an 8-GPU node
#   python sweep.py config/sweep_paper.py --print > cmds    # or: the commands, in order
#   python sweep.py config/sweep_paper.py --slurm out/slurm/  # or: SLURM jobs, docs/sweeps.md
#   python sweep.py config/sweep_paper.py --cost            # FLOPs and GPU-hours before you start
# Six sizes pre-trained on OpenWebText2 with GPT-2 BPE (config/pretrain_*.py, 26B tokens each),
# then for German, Spanish and Chinese a fine-tuned and a from-scratch run per size and D_f
# (config/_transfer_base.py: budgets that grow with D_f, warmup-stable-decay, stopped on
# overfitting).
out_dir = 'out/paper'
pretrain_dataset = 'hf_en_gpt2'  # python prepare/hf.py --lang en --tokenizer gpt2 --max_bytes 70e9
languages = {'de': 'hf_de_gpt2', 'es': 'hf_es_gpt2', 'zh': 'hf_zh_gpt2'}  # --max_bytes 2e9 each
sizes = {s: f'config/pretrain_{s}.py' for s in ('3M', '16M', '39M', '51M', '70M', '124M')}
transfer_configs = ['config/_transfer_base.py']
# D_f from 8,000 tokens in steps of 4x up to 33M tokens (3.6 orders of magnitude), and
# from-scratch runs alone halfway between them (2x), below and beyond them up to 16x the
# largest D_f (524M tokens: the 2 GB per language that the prepare commands above keep hold
# ~0.5-1B tokens): D_e is measured only between scratch points at most 2x apart.
# learning rates tried per language, size and arm before the grid (sweep.py): around the
# sizes' own rates, and below them, where the built-in study's fine-tunes found their best
learning_rates = [2.5e-4, 5e-4, 1e-3, 2e-3]
calibration_tokens = [32_000]
dataset_tokens = [8_000 * 4 ** i for i in range(7)]
scratch_only_tokens = ([4_000] + [16_000 * 4 ** i for i in range(7)]
                       + [131_072_000, 262_144_000, 524_288_000])
repeats = {8_000: 2}  # another run seed and draw of documents: the run-to-run spread
checks = [dict(language='de', size='16M', dataset_tokens=512_000, tag='patience40', patience=40,
               patience_epochs=20.0)]
jobs = 8
pretrain_launcher = 'torchrun --standalone --nproc_per_node=8'
