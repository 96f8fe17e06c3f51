"""Activation checkpointing of the PETL blocks
(``OpenCLIPBackbone(grad_checkpointing=True)``): the same loss and the same
gradient for every trainable parameter as without, in float32."""
import pytest
import torch
from conftest import TINY_CLIP

from mmtpr.models.petl import PETLBlock
from mmtpr.registry import MODELS

UP_PERSON = [dict(type='ScaledPrefix', length=4), dict(type='KVLoRA', rank=4),
             dict(type='LNAdapter', reduction=8)]
DM_ADAPTER = [dict(type='MixtureOfAdapters', num_experts=4, top_k=2,
                   reduction=8)]


def build(petl, grad_checkpointing, freeze=True, aux=False):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='TPRRetriever',
        backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                      image_size=(64, 32), petl=petl, freeze=freeze,
                      grad_checkpointing=grad_checkpointing),
        head=dict(type='SDMHead'),
        aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5)
        if aux else None))


def step(model):
    """Loss and the gradients of every trainable parameter."""
    torch.manual_seed(1)
    images = torch.randn(4, 3, 64, 32)
    texts = torch.randint(1, 400, (4, 77))
    texts[:, 0], texts[:, 12], texts[:, 13:] = 49406, 49407, 0
    pids = torch.tensor([0, 0, 1, 1])
    model.train()
    feats = model.extract_feat(images, texts)
    loss = model.head.loss(*feats, pids)['loss_sdm']
    if model.aux_loss is not None:
        loss = loss + model.aux_loss(model.backbone.aux_losses())
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()
             if p.requires_grad}
    return loss.detach(), grads


@pytest.mark.parametrize('petl, freeze, aux', [
    (UP_PERSON, True, False), (DM_ADAPTER, True, True), (None, False, False)
], ids=['up_person', 'dm_adapter', 'full_finetune'])
def test_checkpointed_gradients_equal(petl, freeze, aux):
    plain = build(petl, False, freeze, aux)
    ckpt = build(petl, True, freeze, aux)
    ckpt.load_state_dict(plain.state_dict())
    for tower in (ckpt.backbone.clip.visual.transformer,
                  ckpt.backbone.clip.transformer):
        assert tower.grad_checkpointing
        assert all(isinstance(b, PETLBlock) for b in tower.resblocks)
    assert not plain.backbone.clip.transformer.grad_checkpointing
    loss_plain, grads_plain = step(plain)
    loss_ckpt, grads_ckpt = step(ckpt)
    assert grads_plain.keys() == grads_ckpt.keys() and grads_plain
    torch.testing.assert_close(loss_ckpt, loss_plain, rtol=0, atol=1e-6)
    for name, grad in grads_plain.items():
        assert grad is not None and grads_ckpt[name] is not None, name
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=0,
                                   atol=1e-6, msg=name)
    if aux:  # the routing statistics are those of the forward pass
        for a, b in zip(plain.backbone.aux_losses(),
                        ckpt.backbone.aux_losses()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_checkpointing_in_eval_changes_nothing():
    plain, ckpt = build(UP_PERSON, False), build(UP_PERSON, True)
    ckpt.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(plain.eval().backbone.encode_image(images),
                           ckpt.eval().backbone.encode_image(images))
