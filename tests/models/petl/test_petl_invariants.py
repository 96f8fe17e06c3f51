"""The PETL invariant suite: every technique and combination, one table.

For each setup: no-op at init where claimed, only PETL parameters
trainable and receiving gradients, open_clip's state-dict keys kept,
strict state-dict round trip, closed-form parameter counts, one
optimisation step leaving frozen weights bit-identical.
"""
import copy

import pytest
import torch
from conftest import TINY_CLIP

from mmtpr.models.petl import PETLModule
from mmtpr.registry import MODELS

# TINY_CLIP: vision width 64 (2 layers), text width 64 (2 layers)
D_V, D_T, L_V, L_T = 64, 64, 2, 2


def lora_count(d, rank=4):
    return 4 * rank * d + 2


def prefix_count(d, length=3):
    return 2 * length * d + 3


def adapter_count(d, reduction=8):
    h = d // reduction
    return 2 * (d * h + h + h * d + d + 1)


def moa_count(d, experts=6, reduction=8, domains=1):
    h = d // reduction
    return 2 * d + 2 * experts * d + domains * d + 1 + \
        experts * (2 * d * h + h + d)


LORA = dict(type='KVLoRA', rank=4)
MOA = dict(type='MixtureOfAdapters', num_experts=6, top_k=2, reduction=8)
PREFIX = dict(type='ScaledPrefix', length=3)
ADAPTER = dict(type='LNAdapter', reduction=8)

# (name, petl list, no-op at init?, expected trainable count)
SETUPS = [
    ('lora', [LORA], True, L_V * lora_count(D_V) + L_T * lora_count(D_T)),
    ('adapter', [ADAPTER], True,
     L_V * adapter_count(D_V) + L_T * adapter_count(D_T)),
    ('prefix', [PREFIX], False,
     L_V * prefix_count(D_V) + L_T * prefix_count(D_T)),
    ('lora+adapter', [LORA, ADAPTER], True,
     2 * (lora_count(64) + adapter_count(64)) * 2),
    ('up_person', [LORA, PREFIX, ADAPTER], False,
     2 * (lora_count(64) + prefix_count(64) + adapter_count(64)) * 2),
    ('up_person_reordered', [ADAPTER, PREFIX, LORA], False,
     2 * (lora_count(64) + prefix_count(64) + adapter_count(64)) * 2),
    ('moa', [MOA], True, L_V * moa_count(D_V) + L_T * moa_count(D_T)),
    ('moa_2_domains', [dict(MOA, num_domains=2)], True,
     4 * moa_count(64, domains=2)),
    ('all_four', [MOA, LORA, PREFIX, ADAPTER], False,
     4 * (moa_count(64) + lora_count(64) + prefix_count(64) +
          adapter_count(64))),
    ('visual_only_first_block', [dict(LORA, towers=('visual', ),
                                      layers=1)], True, lora_count(D_V)),
    ('text_last_block', [dict(ADAPTER, towers='text', layers=[-1])], True,
     adapter_count(D_T)),
]
IDS = [s[0] for s in SETUPS]


def backbone(petl=None, seed=0):
    torch.manual_seed(seed)
    return MODELS.build(
        dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
             image_size=(64, 32), petl=petl))


def inputs():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 64, 32, generator=g)
    texts = torch.zeros(3, 77, dtype=torch.long)
    texts[:, 0] = 49406
    texts[:, 1:6] = torch.randint(300, 3000, (3, 5), generator=g)
    texts[:, 6] = 49407
    return images, texts


@pytest.mark.parametrize('name, petl, noop, count', SETUPS, ids=IDS)
def test_noop_at_init(name, petl, noop, count):
    plain, model = backbone(), backbone(copy.deepcopy(petl))
    images, texts = inputs()
    with torch.no_grad():
        ref = plain(images, texts)
        out = model(images, texts)
    same = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ref, out))
    assert same == noop


@pytest.mark.parametrize('name, petl, noop, count', SETUPS, ids=IDS)
def test_only_petl_parameters_train_and_receive_gradients(
        name, petl, noop, count):
    model = backbone(copy.deepcopy(petl))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    petl_params = {
        f'{mname}.{pname}' if mname else pname
        for mname, module in model.named_modules()
        if isinstance(module, PETLModule)
        for pname, _ in module.named_parameters()
    }
    assert trainable == petl_params and trainable
    assert sum(p.numel() for p in model.parameters()
               if p.requires_grad) == count

    images, texts = inputs()
    image_feats, text_feats = model(images, texts)
    (image_feats.square().sum() + text_feats.square().sum()).backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, n
        else:
            assert p.grad is None, n
    # The zero-initialised up/B matrices get a non-zero gradient at once.
    for n, p in model.named_parameters():
        if n.endswith(('lora_b_k', 'lora_b_v', 'up.weight', 'prefix_v',
                       'up_weight')):
            assert p.grad.abs().sum() > 0, n


@pytest.mark.parametrize('name, petl, noop, count', SETUPS, ids=IDS)
def test_state_dict_keys_kept_and_strict_round_trip(name, petl, noop, count):
    plain = backbone().state_dict()
    model = backbone(copy.deepcopy(petl), seed=0)
    state = model.state_dict()
    assert set(plain) <= set(state)
    for key in plain:
        if 'positional' not in key:  # same seed, same CLIP weights
            assert torch.equal(plain[key], state[key]), key
    # no duplicated tensors (the reference's prefix appeared twice)
    pointers = [t.data_ptr() for t in state.values()]
    assert len(pointers) == len(set(pointers))

    other = backbone(copy.deepcopy(petl), seed=123)
    other.load_state_dict(state, strict=True)
    images, texts = inputs()
    with torch.no_grad():
        for a, b in zip(model(images, texts), other(images, texts)):
            assert torch.equal(a, b)


@pytest.mark.parametrize('name, petl, noop, count', SETUPS, ids=IDS)
def test_one_step_changes_only_petl_parameters(name, petl, noop, count):
    model = backbone(copy.deepcopy(petl))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2)
    images, texts = inputs()
    image_feats, text_feats = model(images, texts)
    loss = -(torch.nn.functional.normalize(image_feats, dim=-1) *
             torch.nn.functional.normalize(text_feats, dim=-1)).sum()
    loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters()
               if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed and changed <= trainable
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, before[n]), n


def test_vit_b16_counts_on_meta_device():
    """methods.md 1.6: r=32, P=10, reduction 8, all 12 layers of both
    towers."""
    from mmtpr.models.backbones import OpenCLIPBackbone

    def count(petl):
        with torch.device('meta'):
            model = OpenCLIPBackbone('ViT-B-16', image_size=(384, 128),
                                     petl=petl)
        trainable = sum(p.numel() for p in model.parameters()
                        if p.requires_grad)
        frozen = sum(p.numel() for n, p in model.clip.named_parameters()
                     if not p.requires_grad and n != 'logit_scale')
        return trainable, frozen

    lora = dict(type='KVLoRA', rank=32)
    prefix = dict(type='ScaledPrefix', length=10)
    adapter = dict(type='LNAdapter', reduction=8)
    assert count([lora]) == (1_966_128, 149_617_664)
    assert count([prefix]) == (307_272, 149_617_664)
    assert count([adapter]) == (5_146_416, 149_617_664)
    assert count([lora, prefix, adapter]) == (7_419_816, 149_617_664)
