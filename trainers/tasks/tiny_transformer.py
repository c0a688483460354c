"""A tiny decoder-only transformer learning to copy: the setting of loss spikes under Adam(W).

Pre-LayerNorm blocks of causal multi-head self-attention and a ReLU MLP, learned positional
embeddings, no dropout, all written from matmuls and softmax (no nn.MultiheadAttention) so that
a chunk of seeds trains as one model under torch.func.vmap. Trained with AdamW at a high learning
rate and no warm-up, such models show sudden loss spikes and divergence; clipping is the usual
remedy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from trainers.errors import ConfigError
from trainers.seeding import generator
from trainers.tasks.base import Task, TrialCost
from trainers.tasks.data import blocked_batches


@dataclass(frozen=True)
class TinyTransformerParams:
    seq_len: int = 16
    vocab: int = 16
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4
    init_std: float = 0.02
    final_norm: bool = True
    eval_size: int = 256

    def __post_init__(self) -> None:
        if not 2 <= self.seq_len <= 256:
            raise ConfigError("seq_len", f"must be in [2, 256], got {self.seq_len}")
        if not 2 <= self.vocab <= 4096:
            raise ConfigError("vocab", f"must be in [2, 4096], got {self.vocab}")
        if not 1 <= self.d_model <= 1024:
            raise ConfigError("d_model", f"must be in [1, 1024], got {self.d_model}")
        if not 1 <= self.n_layers <= 16:
            raise ConfigError("n_layers", f"must be in [1, 16], got {self.n_layers}")
        if not 1 <= self.n_heads <= self.d_model or self.d_model % self.n_heads != 0:
            raise ConfigError("n_heads", f"must divide d_model ({self.d_model}), got {self.n_heads}")
        if not 1 <= self.mlp_ratio <= 16:
            raise ConfigError("mlp_ratio", f"must be in [1, 16], got {self.mlp_ratio}")
        if not self.init_std > 0:
            raise ConfigError("init_std", f"must be > 0, got {self.init_std}")
        if not 1 <= self.eval_size <= 1_000_000:
            raise ConfigError("eval_size", f"must be in [1, 1000000], got {self.eval_size}")


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, T, d_model) -> (batch, T, d_model); position t sees positions <= t only."""
        B, T, D = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.reshape(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, dh)
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // H)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        scores = torch.where(causal, scores, torch.full((), float("-inf"), dtype=scores.dtype, device=x.device))
        out = torch.softmax(scores, dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    """x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, mlp_ratio * d_model)
        self.fc_out = nn.Linear(mlp_ratio * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc_out(torch.relu(self.fc(self.ln2(x))))


class TinyTransformer(nn.Module):
    """tokens (batch, T) long -> next-token logits (batch, T, n_tokens)."""

    def __init__(self, n_tokens: int, context: int, d_model: int, n_layers: int, n_heads: int,
                 mlp_ratio: int, final_norm: bool = True) -> None:
        super().__init__()
        self.tok = nn.Embedding(n_tokens, d_model)
        self.pos = nn.Parameter(torch.zeros(context, d_model))
        self.blocks = nn.ModuleList(Block(d_model, n_heads, mlp_ratio) for _ in range(n_layers))
        # Without the final LayerNorm the logits are unbounded: a bad step can blow the loss up.
        self.ln_f = nn.LayerNorm(d_model) if final_norm else nn.Identity()
        self.head = nn.Linear(d_model, n_tokens)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok(tokens) + self.pos[: tokens.shape[-1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class TinyTransformerTask(Task):
    """Tiny decoder-only transformer (pre-LN, causal attention) copying a random token sequence; token cross-entropy.

    Each example is `seq_len` tokens a drawn uniformly from `vocab` symbols, a separator (token
    `vocab`), then a again: the input is [a, SEP, a without its last token], shape (batch,
    2·seq_len) long, and the target is a, shape (batch, seq_len). The model predicts every next
    token; the loss is the mean cross-entropy of its predictions of the copy (the last seq_len
    positions: after a[:i] and SEP it must name a[i]); the first half is random and not scored.
    Copying needs attention to the token seq_len + 1 back, found with the learned positions.
    Weights N(0, init_std) (GPT-2 style; the residual output projections scaled by
    1/sqrt(2·n_layers)), biases zero, LayerNorms identity. `final_norm` false drops the LayerNorm
    before the output layer: the logits are then unbounded, and too large a step blows the loss up
    instead of leaving it stuck near chance. Chance scores ln(vocab) (2.77 for the default 16). The
    default convergence target, a cross-entropy of 0.05 per copied token on a fixed held-out batch,
    means the copy is essentially perfect (geometric-mean probability of the right token ≥ 0.95).
    """

    name = "tiny_transformer"
    Params = TinyTransformerParams
    default_target_loss = 0.05
    head_parameters = ("head",)

    def build_model(self, seed: int) -> nn.Module:
        p: TinyTransformerParams = self.params
        model = TinyTransformer(p.vocab + 1, 2 * p.seq_len, p.d_model, p.n_layers, p.n_heads, p.mlp_ratio,
                                p.final_norm)
        gen = generator(seed, "init")
        residual_std = p.init_std / math.sqrt(2 * p.n_layers)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
                    param.fill_(1.0)
                elif name.endswith("bias"):
                    param.zero_()
                else:
                    std = residual_std if name.endswith(("attn.proj.weight", "fc_out.weight")) else p.init_std
                    param.copy_(torch.randn(param.shape, generator=gen) * std)
        return model

    def cost(self, batch_size: int) -> TrialCost:
        """Embeddings, n_layers blocks (attention 4·d², MLP 2·mlp_ratio·d², LayerNorms) and the
        head; per example, each block's activations over the 2·seq_len positions (attention scores
        n_heads·positions² among them) and the logits."""
        p: TinyTransformerParams = self.params
        d, n, tokens = p.d_model, 2 * p.seq_len, p.vocab + 1
        block = 4 * d * d + 4 * d + 2 * p.mlp_ratio * d * d + (p.mlp_ratio + 1) * d + 4 * d
        parameters = tokens * d + n * d + p.n_layers * block + 2 * d + d * tokens + tokens
        per_example = p.n_layers * n * (d * (8 + 2 * p.mlp_ratio) + p.n_heads * n) + n * tokens
        return TrialCost(parameters=parameters, training=batch_size * per_example,
                         evaluation=p.eval_size * (n * (d + tokens) + p.n_heads * n * n))

    def _sample(self, gen: torch.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        p: TinyTransformerParams = self.params
        seq = torch.randint(0, p.vocab, (batch, p.seq_len), generator=gen)
        sep = torch.full((batch, 1), p.vocab, dtype=seq.dtype)
        return torch.cat([seq, sep, seq[:, :-1]], dim=1), seq

    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return blocked_batches(self._sample, generator(seed, "data"), batch_size, batch_dims=(0, 0))

    def eval_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._sample(generator(seed, "eval"), self.params.eval_size)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the last target.shape[-1] positions' logits against target."""
        n = target.shape[-1]
        logits = output[..., -n:, :]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
