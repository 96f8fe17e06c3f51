"""A CLIP residual block with slots for parallel PETL branches."""
from typing import Optional

import torch
import torch.nn as nn

from .attention import PETLAttention


class PETLBlock(nn.Module):
    """open_clip's ``ResidualAttentionBlock`` with PETL slots.

    It takes over the block's submodules under their own names (``ln_1``,
    ``attn``, ``ls_1``, ``ln_2``, ``mlp``, ``ls_2``: state-dict keys are
    unchanged) and writes the residual stream out::

        h1 = ln_1(x) [+ adapter_1(x)]
        x  = x + ls_1(attn(h1))
        h2 = ln_2(x) [+ adapter_2(x)]
        x  = x + ls_2(mlp(h2)) [+ branch_mlp(x)]

    ``adapter_1`` / ``adapter_2`` read the raw residual stream and are added
    to the LayerNorm outputs (UP-Person's L-Adapter); ``branch_mlp`` is a
    branch parallel to the MLP that reads the post-attention stream (e.g.
    DM-Adapter's mixture of adapters). All are None until a technique fills
    them; then the block computes exactly open_clip's block.
    """

    def __init__(self, ln_1: nn.Module, attn: PETLAttention, ls_1: nn.Module,
                 ln_2: nn.Module, mlp: nn.Module, ls_2: nn.Module) -> None:
        super().__init__()
        self.ln_1 = ln_1
        self.attn = attn
        self.ls_1 = ls_1
        self.ln_2 = ln_2
        self.mlp = mlp
        self.ls_2 = ls_2
        self.adapter_1: Optional[nn.Module] = None
        self.adapter_2: Optional[nn.Module] = None
        self.branch_mlp: Optional[nn.Module] = None

    @classmethod
    def from_open_clip(cls, block: nn.Module) -> 'PETLBlock':
        """Take over an open_clip ``ResidualAttentionBlock``."""
        if hasattr(block, 'ln_1_kv'):
            raise TypeError('cross-attention blocks are not supported')
        missing = [n for n in ('ln_1', 'attn', 'ls_1', 'ln_2', 'mlp', 'ls_2')
                   if not hasattr(block, n)]
        if missing or not isinstance(block.attn, nn.MultiheadAttention):
            raise TypeError(
                f'expected an open_clip ResidualAttentionBlock with an '
                f'nn.MultiheadAttention, got {type(block).__name__} '
                f'(missing {missing})')
        petl = cls(block.ln_1, PETLAttention(block.attn), block.ls_1,
                   block.ln_2, block.mlp, block.ls_2)
        return petl.train(block.training)

    def get_weight_dtype(self) -> torch.dtype:
        """The weights' dtype (open_clip's Transformer asks its first
        block for it to cast the inputs)."""
        fc = self.mlp.c_fc
        return getattr(fc, 'int8_original_dtype', fc.weight.dtype)

    @property
    def width(self) -> int:
        """Width d of the residual stream."""
        return self.attn.embed_dim

    def forward(self,
                q_x: torch.Tensor,
                k_x: Optional[torch.Tensor] = None,
                v_x: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Same signature as open_clip's block (self-attention only)."""
        if k_x is not None or v_x is not None:
            raise ValueError('PETLBlock supports self-attention only')
        x = q_x
        h = self.ln_1(x)
        if self.adapter_1 is not None:
            h = h + self.adapter_1(x)
        x = x + self.ls_1(self.attn(h, attn_mask=attn_mask))
        h = self.ln_2(x)
        if self.adapter_2 is not None:
            h = h + self.adapter_2(x)
        out = x + self.ls_2(self.mlp(h))
        if self.branch_mlp is not None:
            out = out + self.branch_mlp(x)
        return out
