"""The load-balancing loss of sparse mixtures of experts (DM-Adapter)."""
from typing import Sequence

import torch
import torch.nn as nn

from mmtpr.registry import MODELS


@MODELS.register_module()
class LoadBalanceLoss(nn.Module):
    """Weighted sum of the per-layer load-balancing terms.

    Each :class:`MixtureOfAdapters` layer yields ``sum_e P_e * f_e``
    (docs/methods.md §2.2); this loss is ``loss_weight * sum over
    layers``. With E experts and top-k routing every layer's term is k / E
    at perfect balance, so DM-Adapter's 24 layers (k=2, E=6, weight 0.5)
    have a floor of 4.0. :class:`LoadBalanceLossHook` may schedule
    ``loss_weight``.

    Args:
        loss_weight (float): Defaults to 0.5 (the reference's).
        loss_name (str): key in the loss dict. Defaults to 'loss_lb'.

    Example:
        >>> aux_loss = dict(type='LoadBalanceLoss', loss_weight=0.5)
    """

    def __init__(self, loss_weight: float = 0.5,
                 loss_name: str = 'loss_lb') -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.loss_name = loss_name

    def forward(self, terms: Sequence[torch.Tensor]) -> torch.Tensor:
        """List of scalar per-layer terms -> the weighted sum."""
        return self.loss_weight * torch.stack(list(terms)).sum()
