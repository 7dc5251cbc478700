"""A GPT-2-style decoder: learned positions, pre-LayerNorm blocks, causal self-attention through
scaled_dot_product_attention (flash attention on CUDA), a 4x GELU MLP, the output layer tied to
the token embedding, no biases by default. The vocabulary is padded up to a multiple of 64, for
faster matmuls; padded ids never occur in the data and the loss gives them no probability.
N (n_params) is Kaplan et al.'s non-embedding count, C (flops_per_token) their compute."""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

@dataclass
class GPTConfig:
    block_size: int = 256
    vocab_size: int = 257  # the real vocabulary; the embedding is padded (see padded_vocab_size)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = False

def padded_vocab_size(vocab_size):
    return ((vocab_size + 63) // 64) * 64

class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be divisible by n_head"
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.dropout = config.n_head, config.dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))

class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))

class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x

class LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of (x @ w.T)[:, :V] against targets, chunk rows at a time. The forward
    pass has the softmax at hand, so it computes the gradients too and backward only scales them:
    float32 logits never exist beyond one chunk. Matmuls run in dtype (autocast's), the softmax in
    float32; padded columns of w (ids >= V) are masked out, so they get no gradient."""

    @staticmethod
    def forward(ctx, x, w, targets, V, chunk, dtype, grad):
        with torch.autocast(x.device.type, enabled=False):
            n, xc, wc = x.shape[0], x.to(dtype), w.to(dtype)
            loss = torch.zeros((), dtype=torch.float32, device=x.device)
            if grad:
                grad_x = torch.empty(x.shape, dtype=dtype, device=x.device)
                grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device)
            for i in range(0, n, chunk):
                xi, ti = xc[i:i + chunk], targets[i:i + chunk]
                logits = (xi @ wc.t()).float()
                logits[:, V:] = float('-inf')  # the padded ids (an empty slice without padding)
                logp = torch.log_softmax(logits, dim=1)
                loss -= logp.gather(1, ti[:, None]).sum()
                if grad:  # d loss_sum / d logits = softmax - one_hot(target)
                    p = logp.exp_()
                    p[torch.arange(len(ti), device=p.device), ti] -= 1.0
                    p = p.to(dtype)
                    grad_x[i:i + chunk] = p @ wc
                    if dtype == torch.float32:
                        grad_w.addmm_(p.t(), xi)
                    else:
                        grad_w += p.t() @ xi
        if grad:
            ctx.save_for_backward(grad_x, grad_w)
            ctx.scale, ctx.x_dtype = 1.0 / n, x.dtype
        return loss / n

    @staticmethod
    def backward(ctx, g):
        grad_x, grad_w = ctx.saved_tensors
        g = g * ctx.scale
        return (grad_x * g).to(ctx.x_dtype), grad_w * g, None, None, None, None, None

def loss_chunk_rows(n, vocab, max_logits):
    """Rows per chunk of the output layer + loss: all n where n x vocab logits fit in max_logits,
    else the fewest equal chunks that fit (so a compiled loss traces at most two chunk shapes)."""
    if n * vocab <= max_logits:
        return n
    chunks = -(-n // max(1, max_logits // vocab))
    return -(-n // chunks)

def compile_model(model):
    """torch.compile(model) with the output layer and the loss in the graph, where their work
    fuses: plain where the logits fit in loss_max_logits, else LinearCrossEntropy's chunks. On CUDA
    the bound is 2^30, one chunk at every paper shape's per-GPU batch (docs/speed.md)."""
    model.loss_in_graph = True
    if model.lm_head.weight.device.type == 'cuda':
        model.loss_max_logits = max(model.loss_max_logits, 1 << 30)
    return torch.compile(model)

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.loss_in_graph = False  # compile_model(): a one-chunk loss computed plainly, in graph
        self.loss_max_logits = 1 << 23  # logits at once: 32 MB in fp32 suits CPU caches
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(padded_vocab_size(config.vocab_size), config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, padded_vocab_size(config.vocab_size), bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: residual variance independent of depth
            if name.endswith('c_proj.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            torch.nn.init.zeros_(module.bias)

    def n_params(self, non_embedding=True):
        """Kaplan's N: all parameters but the token and position embeddings (and the tied head)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, include_output_layer=False, attention_factor=6):
        """Training FLOPs per token: 6N plus 6 n_layer block_size n_embd for attention (Kaplan et
        al. 2020, Table 1 x3). PaLM's MFU convention adds the output layer (include_output_layer)
        and counts QK^T and AV in full (attention_factor=12)."""
        c = self.config
        f = 6 * self.n_params() + attention_factor * c.n_layer * c.block_size * c.n_embd
        if include_output_layer:
            f += 6 * c.vocab_size * c.n_embd
        return f

    def forward(self, idx, targets=None):
        B, T = idx.size()
        assert T <= self.config.block_size, f"sequence of {T} > block_size {self.config.block_size}"
        pos = torch.arange(T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None  # generation needs the last position only
        w = self.lm_head.weight
        chunk = loss_chunk_rows(B * T, w.shape[0], self.loss_max_logits)
        if self.loss_in_graph and chunk == B * T:
            logits = self.lm_head(x)[..., :self.config.vocab_size].float()
            return None, F.cross_entropy(logits.view(B * T, -1), targets.reshape(-1))
        # no (B, T, vocab) logits: the output layer and the loss run in chunks of rows, over the
        # real vocabulary only (padded ids take no probability)
        dev = x.device.type
        cdt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
        grad = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)
        return None, LinearCrossEntropy.apply(x.reshape(B * T, -1), w, targets.reshape(-1),
                                              self.config.vocab_size, chunk, cdt, grad)

    def configure_optimizer(self, weight_decay, learning_rate, betas, device_type):
        # decay only the matrices (not LayerNorm gains/biases), as in GPT-2 / nanoGPT
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{'params': [p for p in params if p.dim() >= 2], 'weight_decay': weight_decay},
                  {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}]
        # fused AdamW: the fast path on CUDA, and on the CPU no slower than foreach (docs/speed.md)
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas,
                                 fused=device_type in ('cuda', 'cpu'))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size:])
            logits = logits[:, -1, :self.config.vocab_size] / max(temperature, 1e-6)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float('inf')
            idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx
