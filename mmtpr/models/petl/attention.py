"""Self-attention that owns CLIP's projection weights and has slots for
PETL techniques (KV-LoRA deltas, scaled prefix tokens)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class PETLAttention(nn.Module):
    """Multi-head self-attention built from an ``nn.MultiheadAttention``.

    It takes over the MHA's own parameters (``in_proj_weight``,
    ``in_proj_bias``, ``out_proj``: the state-dict keys do not change),
    computes q, k, v with ``F.linear``, lets the attached techniques modify
    them, and calls ``F.scaled_dot_product_attention``. With no technique
    attached the output equals the MHA's. (Wrapping the MHA's ``out_proj``
    would not work: ``nn.MultiheadAttention`` passes its weights to the
    functional kernel and never calls ``out_proj.forward``.)

    Slots, None until a technique fills them:

    - ``lora``: a module mapping x (B, N, d) to the deltas (dk, dv) added to
      the keys and values (:class:`KVLoRA`).
    - ``prefix``: a module returning (P, d) key and value tokens inserted
      after token 0 (:class:`ScaledPrefix`); their values already carry the
      post-softmax factor (see ScaledPrefix).

    Args:
        mha (nn.MultiheadAttention): the attention to take over.
    """

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.in_proj_weight is None:
            raise TypeError('PETLAttention needs a self-attention MHA with '
                            'a fused in_proj_weight')
        if mha.bias_k is not None or mha.add_zero_attn:
            raise TypeError('PETLAttention does not support bias_k/bias_v '
                            'or add_zero_attn')
        self.embed_dim = mha.embed_dim
        self.num_heads = mha.num_heads
        self.head_dim = mha.embed_dim // mha.num_heads
        self.batch_first = mha.batch_first
        self.dropout = mha.dropout
        self.in_proj_weight = mha.in_proj_weight
        self.in_proj_bias = mha.in_proj_bias
        self.out_proj = mha.out_proj
        self.lora: Optional[nn.Module] = None
        self.prefix: Optional[nn.Module] = None

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    @staticmethod
    def _additive_mask(mask: Optional[torch.Tensor],
                       dtype: torch.dtype) -> Optional[torch.Tensor]:
        # nn.MultiheadAttention's boolean masks mean "True = not allowed";
        # SDPA's mean the opposite, so convert to an additive float mask.
        if mask is None or mask.dtype != torch.bool:
            return None if mask is None else mask.to(dtype)
        return torch.zeros(mask.shape, dtype=dtype,
                           device=mask.device).masked_fill(
                               mask, float('-inf'))

    def forward(self, x: torch.Tensor,
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, N, d) (or (N, B, d) if not batch_first) -> same shape."""
        if not self.batch_first:
            x = x.transpose(0, 1)
        q, k, v = F.linear(x, self.in_proj_weight,
                           self.in_proj_bias).chunk(3, dim=-1)
        if self.lora is not None:
            dk, dv = self.lora(x)
            k, v = k + dk, v + dv
        mask = self._additive_mask(attn_mask, q.dtype)
        if self.prefix is not None:
            prefix_k, prefix_v = self.prefix()
            b = x.shape[0]
            prefix_k = prefix_k.to(k.dtype).expand(b, -1, -1)
            prefix_v = prefix_v.to(v.dtype).expand(b, -1, -1)
            # inserted after token 0 (CLS / SOT), as in the reference
            k = torch.cat([k[:, :1], prefix_k, k[:, 1:]], dim=1)
            v = torch.cat([v[:, :1], prefix_v, v[:, 1:]], dim=1)
            if mask is not None:
                # every token sees every prefix token; the rest of the
                # mask (e.g. causal in the text tower) is unchanged
                visible = mask.new_zeros(*mask.shape[:-1],
                                         prefix_k.shape[1])
                mask = torch.cat([mask[..., :1], visible, mask[..., 1:]],
                                 dim=-1)
        out = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v), attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        out = self.out_proj(out)
        return out if self.batch_first else out.transpose(0, 1)
