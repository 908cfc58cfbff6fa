"""Building blocks: gene/value embedding and pre-norm transformer blocks (pure torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scdiva.data.vocab import PAD_ID


class GeneValueEmbedding(nn.Module):
    """Token embedding = gene identity embedding + embedding of the gene's expression value.

    The value is embedded with a *continuous* projection (a small MLP of the scalar
    ``log1p(normalised count)``) rather than by binning: it keeps the order and resolution of the
    values, needs no bin edges to choose per dataset, and behaves the same at any sequencing depth
    because values are already library-size normalised. Masked values (masked-expression
    pretraining) are replaced by a learned mask vector. There is no positional embedding: a
    cell is a *set* of genes, so the token order carries no information.
    """

    def __init__(self, n_tokens: int, d_model: int):
        super().__init__()
        self.gene = nn.Embedding(n_tokens, d_model, padding_idx=PAD_ID)
        self.value = nn.Sequential(nn.Linear(1, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.mask_value = nn.Parameter(torch.zeros(d_model))
        nn.init.normal_(self.gene.weight, std=0.02)
        with torch.no_grad():
            self.gene.weight[PAD_ID].zero_()

    def forward(self, gene_ids: torch.Tensor, values: torch.Tensor,
                value_mask: torch.Tensor | None = None) -> torch.Tensor:
        value_embedding = self.value(values.unsqueeze(-1))
        if value_mask is not None:
            value_embedding = torch.where(value_mask.unsqueeze(-1), self.mask_value.to(value_embedding.dtype),
                                          value_embedding)
        return self.gene(gene_ids) + value_embedding


class SelfAttention(nn.Module):
    """Multi-head self-attention over ``scaled_dot_product_attention`` with a padding mask."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        if _attends_by_matmul(x):
            y = _matmul_attention(q, k, v, padding_mask)
        else:
            # boolean attn_mask: True = may attend; padded keys are excluded for every query
            attn_mask = None if padding_mask is None else ~padding_mask[:, None, None, :]
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                               dropout_p=0.0)  # attention dropout off: it forces the slow math kernel
        return self.out(y.transpose(1, 2).reshape(b, length, d))


#: Longest token sequence that bf16 CPU inference attends with explicit matrix products (their scores take
#: length^2 memory per head): the tiny and small sizes' contexts. Longer ones, float32, training and
#: CUDA use ``scaled_dot_product_attention``.
MATMUL_ATTENTION_MAX_TOKENS = 256


def _attends_by_matmul(x: torch.Tensor) -> bool:
    """Whether to attend with explicit matrix products: bf16 inference on CPU over short sequences.

    There ``scaled_dot_product_attention`` runs a flash kernel tiled for long sequences: over the tiny
    model's 73 tokens then (290 cells, 2 heads, AMD EPYC, 1 thread) it took 10.9 ms per layer against 6.2 ms
    for ``baddbmm`` + softmax + ``bmm``, and the PBMC query's annotation went from 0.164 to 0.137 s per
    1,000 cells. In float32 the explicit products made it slower (0.228 to 0.269 s), and the fused
    kernel's backward pass is faster, so float32 inference and training keep it.
    """
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not torch.is_grad_enabled()
            and x.shape[1] <= MATMUL_ATTENTION_MAX_TOKENS)


def _matmul_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      padding_mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax attention of ``(batch, heads, length, head_dim)`` tensors; padded keys get no weight."""
    b, heads, length, head_dim = q.shape
    key_bias = torch.zeros(b, heads, 1, length, dtype=q.dtype, device=q.device)  # broadcast over the queries
    if padding_mask is not None:
        key_bias.masked_fill_(padding_mask[:, None, None, :], float("-inf"))
    scores = torch.baddbmm(key_bias.view(b * heads, 1, length), q.reshape(b * heads, length, head_dim),
                           k.reshape(b * heads, length, head_dim).transpose(1, 2), alpha=head_dim ** -0.5)
    # softmax in float32: more exact, and on CPU faster than in bf16 (3.1 against 4.6 ms with the bmm below)
    weights = torch.softmax(scores.float(), dim=-1).to(v.dtype)
    return torch.bmm(weights, v.reshape(b * heads, length, head_dim)).view(b, heads, length, head_dim)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + ffn(norm(x))`` (stable without warm tricks)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        # dropout on the residual branches only: on CPU drawing the mask costs as much as a matmul,
        # and a mask inside the (wider) feed-forward layer doubles that for little regularisation
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), padding_mask))
        return x + self.dropout(self.ffn(self.norm2(x)))
