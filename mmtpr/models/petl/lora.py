"""KV-LoRA of UP-Person: low-rank deltas on the key and value projections."""
import math
from typing import Sequence, Tuple

import torch
import torch.nn as nn

from mmtpr.registry import PETL

from .utils import TOWERS, Layers, PETLModule, attach, petl_blocks


@PETL.register_module()
class KVLoRA(PETLModule):
    """Low-rank updates of the key and value rows of CLIP's fused
    in-projection (UP-Person, docs/methods.md §1.2)::

        K = h (W_k + s_K B_K A_K)^T + b_k,   V = h (W_v + s_V B_V A_V)^T + b_v

    computed as ``W h + s B (A h)`` (the same values, without forming the
    d x d delta). No LoRA on the queries, the output projection or the MLP;
    no alpha/r scaling and no dropout, as in the reference. Init: A
    Kaiming-uniform(a=sqrt 5), B zero (so the layer starts as a no-op), the
    scalars s_K, s_V at 1 and learnable. Parameters per layer:
    ``4 * rank * d + 2``.

    Args:
        dim (int): width d of the attention.
        rank (int): Defaults to 32.

    Example:
        >>> backbone = dict(type='OpenCLIPBackbone', petl=[
        ...     dict(type='KVLoRA', rank=32, towers=('visual', 'text'),
        ...          layers=None)])
    """

    def __init__(self, dim: int, rank: int = 32) -> None:
        super().__init__()
        if not 0 < rank <= dim:
            raise ValueError(f'rank must be in [1, {dim}], got {rank}')
        self.dim = dim
        self.rank = rank
        self.lora_a_k = nn.Parameter(torch.empty(rank, dim))
        self.lora_b_k = nn.Parameter(torch.zeros(dim, rank))
        self.lora_a_v = nn.Parameter(torch.empty(rank, dim))
        self.lora_b_v = nn.Parameter(torch.zeros(dim, rank))
        self.scale_k = nn.Parameter(torch.tensor(1.0))
        self.scale_v = nn.Parameter(torch.tensor(1.0))
        nn.init.kaiming_uniform_(self.lora_a_k, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.lora_a_v, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, N, d) -> the key and value deltas, each (B, N, d)."""
        dk = (x @ self.lora_a_k.t()) @ self.lora_b_k.t()
        dv = (x @ self.lora_a_v.t()) @ self.lora_b_v.t()
        return self.scale_k * dk, self.scale_v * dv

    def delta_weight(self) -> torch.Tensor:
        """The (2d, d) update of the key and value rows of in_proj."""
        return torch.cat([self.scale_k * self.lora_b_k @ self.lora_a_k,
                          self.scale_v * self.lora_b_v @ self.lora_a_v])

    @classmethod
    def inject(cls, clip: nn.Module, rank: int = 32,
              towers: Sequence[str] = TOWERS, layers: Layers = None) -> None:
        """Add a KVLoRA to the attention of every selected block."""
        for tower, index, block in petl_blocks(clip, towers, layers):
            attach(block.attn, 'lora', cls(block.width, rank), cls.__name__,
                   f'{tower} block {index}')

    @staticmethod
    @torch.no_grad()
    def merge(model: nn.Module) -> int:
        """Fold every KVLoRA of ``model`` into its frozen in-projection.

        For deployment: the features stay the same (up to float rounding)
        and inference costs what plain CLIP costs. The LoRA modules are
        removed. Returns how many were merged.
        """
        from .attention import PETLAttention
        merged = 0
        for module in model.modules():
            if isinstance(module, PETLAttention) and module.lora is not None:
                d = module.embed_dim
                weight = module.in_proj_weight
                weight[d:] += module.lora.delta_weight().to(weight.dtype)
                module.lora = None
                merged += 1
        return merged
