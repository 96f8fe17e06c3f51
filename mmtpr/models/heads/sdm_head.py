"""The head that turns paired features into the SDM loss."""
import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmtpr.registry import MODELS


@MODELS.register_module()
class SDMHead(nn.Module):
    """L2-normalises paired features and computes the SDM loss.

    IRRA and both PETL papers fix the temperature at 0.02 (logit scale 50,
    a plain tensor that is never learned, methods.md 0.3); that is the
    default here. With ``learnable_scale=True`` the scale is learned in log
    space as in CLIP, starting at ``1 / temperature`` and clamped at 100.

    Args:
        loss (dict, optional): config of the loss module. None means
            ``dict(type='SDMLoss')``. Defaults to None.
        temperature (float): initial (or fixed) temperature. Defaults to 0.02.
        learnable_scale (bool): learn the logit scale. Defaults to False.

    Example:
        >>> head = dict(type='SDMHead', temperature=0.02,
        ...             loss=dict(type='SDMLoss', loss_weight=1.0))
    """

    def __init__(self,
                 loss: Optional[dict] = None,
                 temperature: float = 0.02,
                 learnable_scale: bool = False) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.loss_module = MODELS.build(loss or dict(type='SDMLoss'))
        self.learnable_scale = learnable_scale
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable_scale:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            # Not persistent: a fixed scale is config, not checkpoint state.
            self.register_buffer('log_logit_scale', log_scale,
                                 persistent=False)

    @property
    def logit_scale(self) -> torch.Tensor:
        """The inverse temperature (clamped at 100 when learned)."""
        return self.log_logit_scale.exp().clamp(max=100.0)

    def loss(self, image_feats: torch.Tensor, text_feats: torch.Tensor,
             pids: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(B, D), (B, D), (B,) -> ``{'loss_sdm': loss}``.

        Features are cast to fp32 before normalising, as IRRA does.
        """
        image_feats = F.normalize(image_feats.float(), dim=-1)
        text_feats = F.normalize(text_feats.float(), dim=-1)
        loss = self.loss_module(image_feats, text_feats, pids,
                                self.logit_scale.float())
        return {'loss_sdm': loss}
