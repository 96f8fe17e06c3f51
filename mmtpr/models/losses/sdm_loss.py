"""Similarity Distribution Matching (SDM) loss, IRRA (CVPR 2023)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmtpr.registry import MODELS


def sdm_loss(image_feats: torch.Tensor,
             text_feats: torch.Tensor,
             pids: torch.Tensor,
             logit_scale: torch.Tensor,
             eps: float = 1e-8) -> torch.Tensor:
    """SDM loss of a batch of aligned image-text pairs (docs/methods.md §0.5).

    With ``S_ij = cos(t_i, v_j)`` and targets ``q_ij = 1[y_i == y_j] /
    sum_k 1[y_i == y_k]`` (uniform over same-person pairs, diagonal
    included)::

        p_t2i = softmax_j(scale * S_ij),  p_i2t = softmax_j(scale * S_ji)
        L = mean_i KL(p_i2t_i || q_i) + mean_i KL(p_t2i_i || q_i)

    The KL is taken as ``sum_j p (log p - log(q + eps))``: predicted against
    target, the two directions summed (not averaged), as in IRRA.

    Args:
        image_feats (Tensor): (B, D) L2-normalised image features.
        text_feats (Tensor): (B, D) L2-normalised text features; row i is
            the caption of image i.
        pids (Tensor): (B,) person ids.
        logit_scale (Tensor): scalar, the inverse temperature (50 for
            tau = 0.02).
        eps (float): added to the targets inside the log. Defaults to 1e-8.

    Returns:
        Tensor: scalar loss.
    """
    if image_feats.shape != text_feats.shape or image_feats.dim() != 2:
        raise ValueError('image_feats and text_feats must both be (B, D), got '
                         f'{tuple(image_feats.shape)} and '
                         f'{tuple(text_feats.shape)}')
    if pids.shape != image_feats.shape[:1]:
        raise ValueError(f'pids must be ({image_feats.shape[0]},), got '
                         f'{tuple(pids.shape)}')
    pids = pids.reshape(-1, 1)
    labels = (pids == pids.t()).to(image_feats.dtype)
    target = labels / labels.sum(dim=1, keepdim=True)
    log_target = torch.log(target + eps)

    t2i_logits = logit_scale * text_feats @ image_feats.t()
    i2t_logits = t2i_logits.t()

    def kl(logits: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1)
        return (log_p.exp() * (log_p - log_target)).sum(dim=1).mean()

    return kl(i2t_logits) + kl(t2i_logits)


@MODELS.register_module()
class SDMLoss(nn.Module):
    """Similarity Distribution Matching loss (IRRA, CVPR 2023).

    See :func:`sdm_loss` for the formula.

    Args:
        eps (float): added to the targets inside the log. Defaults to 1e-8.
        loss_weight (float): multiplier of the loss. Defaults to 1.0.

    Example:
        >>> loss = dict(type='SDMLoss', eps=1e-8, loss_weight=1.0)
    """

    def __init__(self, eps: float = 1e-8, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self, image_feats: torch.Tensor, text_feats: torch.Tensor,
                pids: torch.Tensor,
                logit_scale: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D), (B,), scalar -> scalar weighted loss."""
        return self.loss_weight * sdm_loss(image_feats, text_feats, pids,
                                           logit_scale, self.eps)
