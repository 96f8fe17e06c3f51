"""The head that turns paired features into the SDM loss."""
import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmtpr.registry import MODELS
from mmtpr.utils.dist import all_gather_with_grad, is_multiprocess


@MODELS.register_module()
class SDMHead(nn.Module):
    """L2-normalises paired features and computes the SDM loss.

    IRRA and both PETL papers fix the temperature at 0.02 (logit scale 50,
    a plain tensor that is never learned, docs/methods.md §0.3); that is the
    default here. With ``learnable_scale=True`` the scale is learned in log
    space as in CLIP, starting at ``1 / temperature`` and clamped at 100.

    **Global batch.** In a run of N processes (DDP) with B_r pairs on rank
    r, the image features, text features and person ids of all ranks are
    gathered (:func:`mmtpr.utils.all_gather_with_grad`), and every rank
    computes the same loss L over the whole global batch of G = sum_r B_r
    pairs, as IRRA's in-batch SDM defines it for one process with batch G;
    that global value is also what is returned and logged.

    Why the parameter gradients are exactly those of one process with the
    whole batch: let x_r be rank r's (normalised) features, computed from
    the parameters theta on rank r only. The autograd all_gather sends, in
    backward, slice r of every rank k's gradient dL/dX to rank r and SUMS
    them; all ranks compute the same L, so rank r receives
    ``N * dL/dx_r`` and its local gradient is
    ``g_r = N * dL/dx_r * dx_r/dtheta``. MMDistributedDataParallel then
    AVERAGES over ranks::

        (1/N) sum_r g_r = sum_r dL/dx_r * dx_r/dtheta = dL/dtheta

    the gradient of one process that sees all G pairs. The factor N of the
    gather cancels DDP's 1/N, so nothing is rescaled by hand. A parameter
    used after the gather (the learnable logit scale) gets the full dL/ds
    on every rank, and the average of N equal values is dL/ds again. The
    argument never uses B_r, so it holds for unequal per-rank batches too
    (e.g. a sampler with ``round_up=False``); only losses computed on the
    local batch (``gather=False``, or e.g. the load-balancing loss) become
    the mean of the per-rank losses, which weights ranks equally whatever
    their size.

    Args:
        loss (dict, optional): config of the loss module. None means
            ``dict(type='SDMLoss')``. Defaults to None.
        temperature (float): initial (or fixed) temperature. Defaults to 0.02.
        learnable_scale (bool): learn the logit scale. Defaults to False.
        gather (bool, optional): compute the loss over the global batch of
            all ranks. None (or True) gathers whenever torch.distributed is
            initialised with more than one process (a single process has
            nothing to gather); False keeps IRRA's per-GPU (local batch)
            loss. Defaults to None.

    Example:
        >>> head = dict(type='SDMHead', temperature=0.02, gather=None,
        ...             loss=dict(type='SDMLoss', loss_weight=1.0))
    """

    def __init__(self,
                 loss: Optional[dict] = None,
                 temperature: float = 0.02,
                 learnable_scale: bool = False,
                 gather: Optional[bool] = None) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.loss_module = MODELS.build(loss or dict(type='SDMLoss'))
        if gather is not None and not isinstance(gather, bool):
            raise TypeError(f'gather must be None, True or False, got '
                            f'{gather!r}')
        self.learnable_scale = learnable_scale
        self.gather = gather
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

    def gathers(self) -> bool:
        """Whether :meth:`loss` gathers the batches of all ranks now."""
        if self.gather is None or self.gather:
            return is_multiprocess()
        return False

    def loss(self, image_feats: torch.Tensor, text_feats: torch.Tensor,
             pids: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(B, D), (B, D), (B,) -> ``{'loss_sdm': loss}``.

        Features are cast to fp32 before normalising, as IRRA does. When
        gathering, the (B_r, D) features of this rank become the (G, D)
        features of the global batch, and the loss is L over all G pairs.
        """
        image_feats = F.normalize(image_feats.float(), dim=-1)
        text_feats = F.normalize(text_feats.float(), dim=-1)
        if self.gathers():
            image_feats = all_gather_with_grad(image_feats)
            text_feats = all_gather_with_grad(text_feats)
            pids = all_gather_with_grad(pids)
        loss = self.loss_module(image_feats, text_feats, pids,
                                self.logit_scale.float())
        return {'loss_sdm': loss}
