"""
Sample text from a trained model:
    python sample.py --out_dir=out/finetune_de --start="Die Installation" --num_samples=3
The tokenizer (GPT-2 BPE or bytes) is the one the checkpoint was trained with.
"""

import os
import sys

import torch

from configurator import configure
from model import GPT, GPTConfig
from runtime import load_checkpoint
from util import fail

# -----------------------------------------------------------------------------
out_dir = 'out/run'
checkpoint = 'best.pt'  # or ckpt.pt, the latest
start = '\n'  # the prompt; "FILE:prompt.txt" reads it from a file
num_samples = 3
max_new_tokens = 300
temperature = 0.8  # 1.0 = the model's distribution, lower = more conservative
top_k = 200  # keep only the top_k most likely tokens (0 = all)
seed = 1337
device = 'cuda' if torch.cuda.is_available() else 'cpu'
configure(globals(), sys.argv[1:])
sys.stdout.reconfigure(line_buffering=True)  # redirected (a job's log), each line at once
# -----------------------------------------------------------------------------

if top_k < 0 or max_new_tokens < 1 or not temperature > 0:
    fail(f"top_k={top_k} must be at least 0 (0 = all), max_new_tokens={max_new_tokens} at least 1 "
         f"and temperature={temperature} above 0: fix them")
path = f"{out_dir}/{checkpoint}"
if not os.path.exists(path):
    fail(f"no checkpoint {path}: train one first (python train.py ...) or set --out_dir")
if start.startswith('FILE:'):
    try:
        with open(start[5:], encoding='utf-8') as f:
            start = f.read()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read the prompt file {start[5:]} ({getattr(e, 'strerror', None) or e}): "
             f"fix the path after FILE:")
if device.startswith('cuda') and not torch.cuda.is_available():
    fail(f"device={device!r} is not available here: use --device=cpu")
ckpt = load_checkpoint(path, "sample from another one (--checkpoint=ckpt.pt or best.pt)")
model = GPT(GPTConfig(**ckpt['model_args']))
model.load_state_dict(ckpt['model'])
model.eval().to(device)
torch.manual_seed(seed)

if ckpt['tokenizer'] == 'bytes':
    def encode(s):
        return list(s.encode('utf-8'))
    def decode(ids):
        return bytes(i for i in ids if i < 256).decode('utf-8', errors='replace')
else:
    from prepare.common import gpt2_encoding
    encode, decode = gpt2_encoding().encode_ordinary, gpt2_encoding().decode

ids = encode(start) or [ckpt['model_args']['vocab_size'] - 1]  # an empty prompt starts a document
x = torch.tensor(ids, dtype=torch.long, device=device)[None, :]
for _ in range(num_samples):
    y = model.generate(x, max_new_tokens, temperature=temperature, top_k=top_k or None)
    print(decode(y[0].tolist()))
    print('---------------')
