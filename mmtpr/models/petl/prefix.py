"""S-Prefix of UP-Person: learnable key/value prefix tokens whose attention
is boosted by a learnable factor."""
from typing import Sequence, Tuple

import torch
import torch.nn as nn

from mmtpr.registry import PETL

from .utils import TOWERS, Layers, PETLModule, attach, petl_blocks


@PETL.register_module()
class ScaledPrefix(PETLModule):
    """Scaled prefix tokens of one attention layer (UP-Person's S-Prefix,
    docs/methods.md §1.2).

    P key tokens ``PK`` and P value tokens ``PV`` (each P x d, split into
    heads like any key/value) are inserted after token 0 of the already
    projected keys and values, scaled by learnable scalars ``c_K``, ``c_V``.
    The reference then multiplies the post-softmax attention on the P
    prefix columns by ``S_p`` without renormalising::

        out = sum_j A_j v_j + S_p * sum_p A_p (c_V PV_p)

    which is exactly attention over values whose prefix rows are
    ``S_p * c_V * PV``; that is what :meth:`forward` returns, so plain
    scaled-dot-product attention computes the paper's formula (and its
    gradients). Init: tokens U(0, 0.01), c_K = c_V = 1, S_p = 100, all
    learnable. Parameters per layer: ``2 * P * d + 3``. Not a no-op at init.

    Args:
        dim (int): width d of the attention.
        length (int): number of prefix tokens P. Defaults to 10.
        sp_init (float): initial S_p. Defaults to 100.

    Example:
        >>> backbone = dict(type='OpenCLIPBackbone', petl=[
        ...     dict(type='ScaledPrefix', length=10, sp_init=100.0)])
    """

    def __init__(self, dim: int, length: int = 10,
                 sp_init: float = 100.0) -> None:
        super().__init__()
        if length < 1:
            raise ValueError(f'prefix length must be >= 1, got {length}')
        self.dim = dim
        self.length = length
        self.prefix_k = nn.Parameter(torch.empty(length, dim).uniform_(
            0.0, 0.01))
        self.prefix_v = nn.Parameter(torch.empty(length, dim).uniform_(
            0.0, 0.01))
        self.scale_k = nn.Parameter(torch.tensor(1.0))
        self.scale_v = nn.Parameter(torch.tensor(1.0))
        self.sp = nn.Parameter(torch.tensor(float(sp_init)))

    def forward(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The (P, d) prefix keys and the (P, d) S_p-scaled prefix values."""
        return (self.scale_k * self.prefix_k,
                self.sp * self.scale_v * self.prefix_v)

    @classmethod
    def inject(cls, clip: nn.Module, length: int = 10,
              sp_init: float = 100.0, towers: Sequence[str] = TOWERS,
              layers: Layers = None) -> None:
        """Add a ScaledPrefix to the attention of every selected block."""
        for tower, index, block in petl_blocks(clip, towers, layers):
            attach(block.attn, 'prefix', cls(block.width, length, sp_init),
                   cls.__name__, f'{tower} block {index}')
