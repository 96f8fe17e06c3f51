"""Shared machinery of the PETL techniques: selecting blocks, converting
open_clip blocks to PETL blocks, freezing by module type."""
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .block import PETLBlock

TOWERS = ('visual', 'text')
Layers = Union[None, int, Sequence[int]]


class PETLModule(nn.Module):
    """Base class of every trainable PETL module.

    :func:`freeze_except_petl` un-freezes exactly the parameters of
    instances of this class, so freezing goes by module type, never by
    parameter names.

    It also declares the two channels through which a PETL module and the
    backbone exchange what a block's ``forward(x)`` cannot carry:

    - :meth:`set_context`: before a tower encodes a batch, the backbone
      hands every PETL module of that tower the batch's domain indices and
      its token mask (ignored by default; a domain-aware router uses them);
    - :attr:`aux_loss`: a module that computes an auxiliary loss (e.g. the
      load-balancing term of a mixture of adapters) stores it here in its
      forward; the backbone collects the values that are not None.
    """

    #: the auxiliary loss of the last forward, if the technique has one
    aux_loss: Optional[torch.Tensor] = None
    #: how many domains a domain-aware module knows (None: not domain-aware)
    num_domains: Optional[int] = None

    def set_context(self,
                    domains: Optional[torch.Tensor] = None,
                    token_mask: Optional[torch.Tensor] = None) -> None:
        """Receive the per-batch context of the next forward.

        Args:
            domains (Tensor, optional): (B,) domain index of each sample;
                None means domain 0 for all.
            token_mask (Tensor, optional): (B, N) bool, the tokens that are
                real (not padding after EOT); None in the visual tower.
        """


def _transformer(clip: nn.Module, tower: str) -> nn.Module:
    if tower == 'visual':
        return clip.visual.transformer
    if tower == 'text':
        return clip.transformer
    raise ValueError(f"unknown tower '{tower}'; expected one of {TOWERS}")


def resolve_layers(layers: Layers, num_blocks: int) -> List[int]:
    """The block indices that ``layers`` selects.

    One meaning for every technique: None selects all blocks; an int ``n``
    the first ``n`` blocks (indices ``0..n-1``, like the reference's
    ``depth_lora`` / ``depth_prefix``); a sequence explicit indices
    (negative ones count from the end).
    """
    if layers is None:
        return list(range(num_blocks))
    if isinstance(layers, bool):
        raise TypeError(f'layers must be None, an int or a list of ints, '
                        f'got {layers!r}')
    if isinstance(layers, int):
        if not 0 <= layers <= num_blocks:
            raise ValueError(f'layers={layers} selects the first {layers} '
                             f'blocks, but the tower has {num_blocks}')
        return list(range(layers))
    indices = []
    for i in layers:
        if not isinstance(i, int) or not -num_blocks <= i < num_blocks:
            raise ValueError(f'layer index {i!r} is out of range for a '
                             f'tower of {num_blocks} blocks')
        indices.append(i % num_blocks)
    if len(set(indices)) != len(indices):
        raise ValueError(f'layers {list(layers)} name a block twice')
    return sorted(indices)


def petl_blocks(clip: nn.Module, towers: Sequence[str] = TOWERS,
                layers: Layers = None
                ) -> Iterator[Tuple[str, int, PETLBlock]]:
    """Yield ``(tower, index, block)`` for the selected blocks, converting
    open_clip's residual blocks into :class:`PETLBlock` in place (once)."""
    if isinstance(towers, str):
        towers = (towers, )
    for tower in towers:
        blocks = _transformer(clip, tower).resblocks
        for index in resolve_layers(layers, len(blocks)):
            if not isinstance(blocks[index], PETLBlock):
                blocks[index] = PETLBlock.from_open_clip(blocks[index])
            yield tower, index, blocks[index]


def attach(parent: nn.Module, name: str, module: nn.Module,
           technique: str, where: str) -> None:
    """Register ``module`` as ``parent.<name>``, refusing to replace one."""
    if getattr(parent, name, None) is not None:
        raise ValueError(f'{technique} is already applied to {where}')
    setattr(parent, name, module)


def freeze_except_petl(model: nn.Module) -> None:
    """Freeze every parameter except those of :class:`PETLModule` s."""
    model.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, PETLModule):
            module.requires_grad_(True)
