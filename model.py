"""
A GPT-2-style decoder, small enough to read in one sitting.

Learned positions, pre-LayerNorm blocks, causal self-attention through
torch.nn.functional.scaled_dot_product_attention (flash attention on CUDA; in bf16 on CPU two
batched matmuls, which are faster there), a 4x GELU MLP,
the output layer tied to the token embedding, no biases by default. The vocabulary is padded up
to a multiple of 64 because matmuls with such shapes are faster; padded ids never occur in the
data, and the loss (computed in chunks with the output layer, see LinearCrossEntropy) gives them
no probability at all.

N (n_params) is Kaplan et al.'s non-embedding parameter count: token AND position embeddings are
excluded. The compute axis of the study is Kaplan's C ~ 6N + 6 n_layer block_size n_embd FLOPs per
training token (see flops_per_token).
"""

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


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's has no bias=False before 2.1 on every path)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be divisible by n_head"
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_size)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if q.device.type == 'cpu' and q.dtype == torch.bfloat16 and not (self.training and self.dropout):
            # bf16 on CPU: the masked softmax between two batched matmuls (AMX) runs ~1.6x faster
            # forward+backward than the CPU flash kernel at these sizes; fp32 and CUDA use SDPA
            hs = C // self.n_head
            q, k, v = (t.reshape(B * self.n_head, T, hs) for t in (q, k, v))
            mask = torch.full((T, T), float('-inf'), device=x.device, dtype=q.dtype).triu_(1)
            att = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=1.0 / math.sqrt(hs))
            y = torch.bmm(att.softmax(dim=-1), v).view(B, self.n_head, T, hs)
        else:
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
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class LinearCrossEntropy(torch.autograd.Function):
    """mean cross-entropy of (x @ w.T)[:, :V] against targets, chunk rows at a time. The softmax is
    at hand in the forward pass, so the gradients are computed there too (no extra FLOPs) and
    backward only scales them: the (rows, vocab) float32 logits, their log-softmax and their
    gradient never exist beyond one chunk. The matmuls run in dtype (the autocast dtype), the
    softmax in float32; padded columns of w (ids >= V) are masked out, so they get no gradient."""

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
                if V < w.shape[0]:
                    logits[:, V:] = float('-inf')
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


def linear_cross_entropy(x, w, targets, V, chunk, dtype, grad):
    return LinearCrossEntropy.apply(x, w, targets, V, chunk, dtype, grad)


def loss_chunk_rows(n, vocab, max_logits):
    """Rows per chunk of the output layer + loss for n rows of a (padded) vocabulary: all n at once
    where n x vocab logits fit in max_logits, else the fewest chunks that fit, of equal size but
    the last (so a compiled loss traces at most two chunk shapes)."""
    if n * vocab <= max_logits:
        return n
    chunks = -(-n // max(1, max_logits // vocab))
    return -(-n // chunks)


def compile_model(model):
    """torch.compile(model) with the output layer and the loss in the compiled graph, where the
    compiler fuses the element-wise work around their matmuls: computed plainly (full logits)
    where the batch's logits fit in loss_max_logits, else LinearCrossEntropy's chunks, traced
    into the graph (its loop unrolled). On CUDA the bound is raised to 2^30 logits: one chunk for
    every paper shape at its per-GPU batch, where the plain compiled loss measured faster than
    chunks and below nanoGPT's peak memory (README, Speed). Eager runs keep the chunked loss."""
    model.loss_in_graph = True
    if model.lm_head.weight.device.type == 'cuda':
        model.loss_max_logits = max(model.loss_max_logits, 1 << 30)
    return torch.compile(model)


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.loss_in_graph = False  # compile_model(): one-chunk losses computed plainly, in the graph
        # logits of the output layer and loss computed at once, eager: 8M (32 MB in float32, which
        # the CPU's caches and allocator serve well); compile_model() raises it on CUDA
        self.loss_max_logits = 1 << 23
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(padded_vocab_size(config.vocab_size), config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, padded_vocab_size(config.vocab_size), bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 n_layer) so the residual stream's
        # variance does not grow with depth
        for name, p in self.named_parameters():
            if name.endswith('c_proj.weight'):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def n_params(self, non_embedding=True):
        """Kaplan's N: all parameters but the token and position embeddings. The output layer
        is tied to the token embedding, so it is excluded too."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def flops_per_token(self, include_output_layer=False, attention_factor=6):
        """Training FLOPs per token, forward + backward: 6N for the weights plus
        6 n_layer block_size n_embd for the attention scores (Kaplan et al. 2020, Table 1 x3).
        include_output_layer adds the 6 vocab n_embd of the (tied) output matmul; the PaLM MFU
        convention also uses attention_factor=12 (QK^T and AV each counted in full)."""
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
        # no (B, T, vocab) logits: the output layer and the loss run in chunks of rows (see
        # LinearCrossEntropy), over the real vocabulary only (padded ids take no probability)
        cdt = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) \
            else x.dtype
        grad = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)
        loss = linear_cross_entropy(x.reshape(B * T, -1), w, targets.reshape(-1),
                                    self.config.vocab_size, chunk, cdt, grad)
        return None, loss

    def configure_optimizer(self, weight_decay, learning_rate, betas, device_type):
        # decay only the matrices (not LayerNorm gains/biases), as in GPT-2 / nanoGPT
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {'params': [p for p in params if p.dim() >= 2], 'weight_decay': weight_decay},
            {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0},
        ]
        # the fused kernel: the fast path on CUDA, and on CPU too (bf16 steps up to 10% faster than
        # the default foreach path, float32 steps as fast; measured with bench.py)
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas,
                                 fused=device_type in ('cuda', 'cpu'))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :self.config.vocab_size] / max(temperature, 1e-6)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float('inf')
            idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx
