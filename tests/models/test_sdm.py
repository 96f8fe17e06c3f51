"""The SDM loss and head against hand computation (methods.md 0.5)."""
import math

import pytest
import torch

from mmtpr.models.losses import sdm_loss
from mmtpr.registry import MODELS


def hand_sdm(image, text, pids, scale, eps=1e-8):
    """Plain-Python SDM: KL(p || q) per row, both directions summed."""
    n = len(pids)

    def cos(a, b):
        return sum(x * y for x, y in zip(a, b)) / (
            math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y
                                                             for y in b)))

    def direction(sim):  # sim[i][j]
        total = 0.0
        for i in range(n):
            logits = [scale * sim[i][j] for j in range(n)]
            z = sum(math.exp(v) for v in logits)
            p = [math.exp(v) / z for v in logits]
            same = [1.0 if pids[i] == pids[j] else 0.0 for j in range(n)]
            q = [s / sum(same) for s in same]
            total += sum(p[j] * (math.log(p[j]) - math.log(q[j] + eps))
                         for j in range(n))
        return total / n

    t2i = [[cos(text[i], image[j]) for j in range(n)] for i in range(n)]
    i2t = [[cos(image[i], text[j]) for j in range(n)] for i in range(n)]
    return direction(i2t) + direction(t2i)


IMAGE = [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0],
         [0.0, 0.6, 0.8]]
TEXT = [[0.8, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.8, 0.6],
        [0.6, 0.0, 0.8]]
PIDS = [3, 3, 7, 1]


@pytest.mark.parametrize('scale', [1.0, 5.0, 50.0])
def test_sdm_matches_hand_computation(scale):
    expected = hand_sdm(IMAGE, TEXT, PIDS, scale)
    f64 = torch.float64
    normalize = torch.nn.functional.normalize
    image = normalize(torch.tensor(IMAGE, dtype=f64), dim=1)
    text = normalize(torch.tensor(TEXT, dtype=f64), dim=1)
    got = sdm_loss(image, text, torch.tensor(PIDS),
                   torch.tensor(scale, dtype=torch.float64))
    assert got.item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_head_normalises_uses_fixed_scale_50_and_names_the_loss():
    head = MODELS.build(dict(type='SDMHead'))
    assert head.logit_scale.item() == pytest.approx(50.0)
    assert not any(p.requires_grad for p in head.parameters())
    image = torch.tensor(IMAGE) * torch.tensor([[2.0], [0.5], [3.0], [1.0]])
    text = torch.tensor(TEXT) * 7.0
    out = head.loss(image, text, torch.tensor(PIDS))
    assert list(out) == ['loss_sdm']
    assert out['loss_sdm'].item() == pytest.approx(
        hand_sdm(IMAGE, TEXT, PIDS, 50.0), rel=1e-5)
    # a fixed scale is configuration, not checkpoint state
    assert 'log_logit_scale' not in head.state_dict()


def test_learnable_scale_gets_gradient_and_is_saved():
    head = MODELS.build(dict(type='SDMHead', temperature=0.05,
                             learnable_scale=True))
    assert head.logit_scale.item() == pytest.approx(20.0)
    loss = head.loss(torch.tensor(IMAGE), torch.tensor(TEXT),
                     torch.tensor(PIDS))['loss_sdm']
    loss.backward()
    assert head.log_logit_scale.grad is not None
    assert head.log_logit_scale.grad.abs().item() > 0
    assert 'log_logit_scale' in head.state_dict()


def test_loss_weight_and_perfect_alignment():
    loss = MODELS.build(dict(type='SDMLoss', loss_weight=0.5))
    feats = torch.eye(4)
    pids = torch.arange(4)
    full = sdm_loss(feats, feats, pids, torch.tensor(50.0))
    assert loss(feats, feats, pids, torch.tensor(50.0)).item() == \
        pytest.approx(0.5 * full.item())
    # Perfectly aligned distinct persons: p is nearly one-hot on the target.
    assert full.item() < 1e-6


def test_shape_errors():
    with pytest.raises(ValueError, match=r'must both be \(B, D\)'):
        sdm_loss(torch.zeros(3, 4), torch.zeros(2, 4), torch.arange(3),
                 torch.tensor(1.0))
    with pytest.raises(ValueError, match=r'pids must be \(3,\)'):
        sdm_loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.arange(2),
                 torch.tensor(1.0))
    with pytest.raises(ValueError, match='temperature must be > 0'):
        MODELS.build(dict(type='SDMHead', temperature=0.0))
