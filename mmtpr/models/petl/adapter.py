"""L-Adapter of UP-Person: bottleneck adapters parallel to the LayerNorms."""
import math
from typing import Sequence

import torch
import torch.nn as nn

from mmtpr.registry import PETL

from .utils import TOWERS, Layers, PETLModule, attach, petl_blocks


@PETL.register_module()
class LNAdapter(PETLModule):
    """An adapter parallel to a LayerNorm (UP-Person's L-Adapter,
    docs/methods.md §1.2)::

        h = LN(x) + s * up(relu(down(x)))

    It reads the raw residual stream x (not the normalised one) and its
    output is added to the LayerNorm's. ``down``: d -> d / reduction,
    ``up``: d / reduction -> d, both with biases; no dropout. Init: down
    Kaiming-uniform(a=sqrt 5) with zero bias, up weight and bias zero (an
    exact no-op at init), s = 1 learnable. ``inject`` puts one beside ln_1
    and one beside ln_2 of each selected block: ``2 * (2 * d * d / r + d / r
    + d) + 2`` parameters per block.

    Args:
        dim (int): width d.
        reduction (int): bottleneck reduction r. Defaults to 8.

    Example:
        >>> backbone = dict(type='OpenCLIPBackbone', petl=[
        ...     dict(type='LNAdapter', reduction=8)])
    """

    def __init__(self, dim: int, reduction: int = 8) -> None:
        super().__init__()
        if reduction < 1 or dim % reduction:
            raise ValueError(f'reduction must divide the width {dim}, got '
                             f'{reduction}')
        hidden = dim // reduction
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, dim)
        self.scale = nn.Parameter(torch.tensor(1.0))
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d) raw residual stream -> (..., d) added to LN(x)."""
        return self.scale * self.up(torch.relu(self.down(x)))

    @classmethod
    def inject(cls, clip: nn.Module, reduction: int = 8,
              towers: Sequence[str] = TOWERS, layers: Layers = None) -> None:
        """Put an LNAdapter beside ln_1 and ln_2 of every selected block."""
        for tower, index, block in petl_blocks(clip, towers, layers):
            where = f'{tower} block {index}'
            attach(block, 'adapter_1', cls(block.width, reduction),
                   cls.__name__, where)
            attach(block, 'adapter_2', cls(block.width, reduction),
                   cls.__name__, where)
