"""MixtureOfAdapters: routing, the load-balancing term, grouped dispatch
against a dense reference, gradients, counts."""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_CLIP

from mmtpr.models.petl import MixtureOfAdapters
from mmtpr.registry import MODELS


def randomised(moa, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (moa.up_weight, moa.up_bias, moa.down_bias):
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return moa


def dense_reference(moa, x):
    """Every expert on every token, combined with masked weights."""
    u = moa.ln(x)
    logits = moa.gate_logits(u)
    top_index, weights = moa.route(logits)
    combine = torch.zeros_like(logits)
    combine.scatter_(-1, top_index, weights)
    h = F.relu(torch.einsum('bnd,ehd->bneh', u, moa.down_weight) +
               moa.down_bias)
    y = torch.einsum('bneh,edh->bned', h, moa.up_weight) + moa.up_bias
    return moa.scale * (combine[..., None] * y).sum(-2)


@pytest.mark.parametrize('experts, k', [(6, 2), (4, 1), (3, 3)])
@pytest.mark.parametrize('dispatch', ['masked', 'grouped'])
def test_dispatch_equals_dense_reference(experts, k, dispatch):
    torch.manual_seed(0)
    moa = randomised(MixtureOfAdapters(16, experts, k, reduction=4,
                                       scale=0.7, dispatch=dispatch))
    x = torch.randn(3, 11, 16, requires_grad=True)
    out = moa(x)
    assert torch.allclose(out, dense_reference(moa, x), atol=1e-5)
    # and the same gradients for every parameter and the input
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, *moa.parameters()], grad)
    want = torch.autograd.grad(dense_reference(moa, x),
                               [x, *moa.parameters()], grad)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-5)


def test_zero_output_at_init_and_init_values():
    torch.manual_seed(0)
    moa = MixtureOfAdapters(64, scale=4.0)
    assert torch.count_nonzero(moa(torch.randn(2, 5, 64))) == 0
    assert moa.alpha.item() == 0.5
    assert moa.input_gate.std().item() == pytest.approx(0.02, rel=0.1)
    assert moa.task_gate.std().item() == pytest.approx(0.02, rel=0.1)
    assert moa.domain_prompts.shape == (1, 64)
    assert moa.domain_prompts.std().item() == pytest.approx(1.0, rel=0.15)
    assert torch.equal(moa.ln.weight, torch.ones(64))
    assert moa.down_weight.abs().max() <= 1 / math.sqrt(64)


def hand_case():
    """2 tokens, 3 experts, top-2, logits set through the gates."""
    moa = MixtureOfAdapters(4, num_experts=3, top_k=2, reduction=2)
    with torch.no_grad():
        moa.alpha.fill_(0.0)  # logits = W_in u
        moa.ln.weight.fill_(1.0)
    return moa


def test_routing_and_balance_term_by_hand():
    moa = hand_case()
    logits = torch.tensor([[[2.0, 1.0, 0.0],     # -> experts 0, 1
                            [0.0, 3.0, 3.0]]])   # tie -> experts 1, 2
    top_index, weights = moa.route(logits)
    assert top_index.tolist() == [[[0, 1], [1, 2]]]
    e = math.exp(1.0)
    assert weights[0, 0].tolist() == pytest.approx([e / (e + 1),
                                                    1 / (e + 1)])
    assert weights[0, 1].tolist() == pytest.approx([0.5, 0.5])
    # a three-way tie at the boundary: the lower indices win
    top_index, _ = moa.route(torch.tensor([[[1.0, 1.0, 1.0]]]))
    assert top_index.tolist() == [[[0, 1]]]

    moa._balance(logits, moa.route(logits)[0])
    p = logits.softmax(-1)[0].mean(0)
    f = torch.tensor([1 / 2, 2 / 2, 1 / 2])  # fraction of tokens per expert
    assert moa.aux_loss.item() == pytest.approx((p * f).sum().item())
    assert moa.routing['fraction'].tolist() == pytest.approx(
        [0.25, 0.5, 0.25])
    # perfect balance gives k / E
    uniform = torch.zeros(1, 6, 3)
    moa._balance(uniform, torch.tensor([[[0, 1], [1, 2], [2, 0]] * 2]))
    assert moa.aux_loss.item() == pytest.approx(2 / 3)


def test_padding_can_be_left_out_of_the_balance_term():
    moa = hand_case()
    moa.count_padding = False
    logits = torch.tensor([[[2.0, 1.0, 0.0], [0.0, 3.0, 3.0]]])
    moa.set_context(token_mask=torch.tensor([[True, False]]))
    moa._balance(logits, moa.route(logits)[0])
    p = logits[0, 0].softmax(-1)
    f = torch.tensor([1.0, 1.0, 0.0])
    assert moa.aux_loss.item() == pytest.approx((p * f).sum().item())


def test_domain_prompts_shift_the_logits_per_sample():
    torch.manual_seed(0)
    moa = MixtureOfAdapters(8, num_experts=4, num_domains=3)
    u = torch.randn(2, 5, 8)
    moa.set_context(domains=torch.tensor([2, 0]))
    logits = moa.gate_logits(u)
    for b, dom in enumerate([2, 0]):
        expected = (1 - moa.alpha) * u[b] @ moa.input_gate.t() + \
            moa.alpha * moa.domain_prompts[dom] @ moa.task_gate.t()
        assert torch.allclose(logits[b], expected, atol=1e-6)
    # the backbone checks the range once per batch, for all its routers
    from mmtpr.models.backbones import OpenCLIPBackbone
    from mmtpr.utils.errors import ConfigError
    backbone = OpenCLIPBackbone(model_cfg=TINY_CLIP, image_size=(32, 16),
                                petl=[dict(type='MixtureOfAdapters',
                                           num_experts=4, num_domains=3)])
    assert backbone.num_domains == 3
    with pytest.raises(ConfigError, match='domain index 3 out of range'):
        backbone.encode_image(torch.randn(1, 3, 32, 16),
                              domains=torch.tensor([3]))


def test_router_gets_gradients_from_experts_and_balance_loss():
    torch.manual_seed(0)
    moa = randomised(MixtureOfAdapters(16, 6, 2, reduction=4))
    x = torch.randn(2, 7, 16)
    moa(x).square().sum().backward(retain_graph=True)
    assert moa.input_gate.grad.abs().sum() > 0  # through the chosen weights
    assert moa.alpha.grad is not None
    moa.zero_grad()
    moa.aux_loss.backward()
    assert moa.input_gate.grad.abs().sum() > 0  # through P_e
    assert moa.up_weight.grad is None or \
        moa.up_weight.grad.abs().sum() == 0


def test_vit_b16_count_is_the_live_parameters_only():
    """methods.md 2.6: 15,669,528 (the reference's 16,065,304 includes
    395,776 unused parameters)."""
    from mmtpr.models.backbones import OpenCLIPBackbone
    with torch.device('meta'):
        model = OpenCLIPBackbone(
            'ViT-B-16', image_size=(384, 128),
            petl=[dict(type='MixtureOfAdapters', num_experts=6, top_k=2,
                       reduction=8)])
    trainable = sum(p.numel() for p in model.parameters()
                    if p.requires_grad)
    assert trainable == 15_669_528
    per_layer = {}
    for name, p in model.named_parameters():
        if p.requires_grad and '.0.branch_mlp' in name:
            tower = 'visual' if name.startswith('clip.visual') else 'text'
            per_layer[tower] = per_layer.get(tower, 0) + p.numel()
    assert per_layer == {'visual': 901_441, 'text': 404_353}
    scales = {m.scale for m in model.modules()
              if isinstance(m, MixtureOfAdapters)}
    assert scales == {0.1, 4.0}


def test_retriever_reports_loss_lb_next_to_loss_sdm():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='TPRRetriever',
        backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                      image_size=(64, 32),
                      petl=[dict(type='MixtureOfAdapters')]),
        head=dict(type='SDMHead'),
        aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5)))
    images = torch.randn(4, 3, 64, 32)
    texts = torch.zeros(4, 77, dtype=torch.long)
    texts[:, 0], texts[:, 1:4], texts[:, 4] = 49406, 320, 49407
    from mmengine.structures import BaseDataElement
    samples = [BaseDataElement(metainfo=dict(pid=i // 2)) for i in range(4)]
    losses = model(images, texts, [1] * 4, samples, mode='loss')
    assert set(losses) == {'loss_sdm', 'loss_lb'}
    terms = model.backbone.aux_losses()
    assert len(terms) == 4  # 2 visual + 2 text blocks
    assert losses['loss_lb'].item() == pytest.approx(
        0.5 * sum(t.item() for t in terms))


def test_two_domains_from_concatenated_datasets(tmp_path):
    """Each sample's dataset picks its domain prompt; ids do not collide."""
    from mmengine.dataset import pseudo_collate

    from mmtpr.registry import DATASETS
    pipeline = [dict(type='LoadPersonImage'),
                dict(type='Resize', scale=(32, 64), keep_ratio=False),
                dict(type='TokenizeCaption'), dict(type='PackTPRInputs')]
    synth = dict(type='SynthPedes', num_ids=(3, 1, 1), images_per_id=1,
                 image_size=(64, 32), generate=True, pipeline=pipeline)
    concat = DATASETS.build(dict(
        type='ConcatDataset',
        ignore_keys=['num_pids', 'num_images', 'num_captions'],
        datasets=[
            dict(synth, data_root=str(tmp_path / 'a'), seed=1, domain=0),
            dict(synth, data_root=str(tmp_path / 'b'), seed=2, domain=1,
                 pid_offset=3)]))
    samples = [concat[i] for i in range(len(concat))]
    pids = [s['data_samples'].pid for s in samples]
    domains = [s['data_samples'].domain for s in samples]
    assert domains == [0] * 6 + [1] * 6
    assert sorted(set(pids)) == list(range(6))

    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='TPRRetriever',
        backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                      image_size=(64, 32),
                      petl=[dict(type='MixtureOfAdapters', num_domains=2)]),
        head=dict(type='SDMHead'),
        aux_loss=dict(type='LoadBalanceLoss')))
    for m in model.modules():
        if isinstance(m, MixtureOfAdapters):
            randomised(m)
    data = model.data_preprocessor(pseudo_collate(samples), True)
    losses = model(**data, mode='loss')
    sum(losses.values()).backward()
    moa = model.backbone.clip.visual.transformer.resblocks[0].branch_mlp
    assert moa.domains.tolist() == domains
    grad = moa.domain_prompts.grad
    assert grad[0].abs().sum() > 0 and grad[1].abs().sum() > 0


def test_without_the_domain_term_the_router_reads_the_tokens_only():
    """The ablation alpha = 0: no task gate, prompts or alpha; logits are
    W_in u; the layer is not domain-aware."""
    torch.manual_seed(0)
    moa = MixtureOfAdapters(8, num_experts=4, domain_term=False)
    names = {n for n, _ in moa.named_parameters()}
    assert not names & {'task_gate', 'domain_prompts', 'alpha'}
    assert moa.num_domains is None
    u = torch.randn(2, 5, 8)
    assert torch.equal(moa.gate_logits(u), u @ moa.input_gate.t())
    full = MixtureOfAdapters(8, num_experts=4)
    assert sum(p.numel() for p in full.parameters()) - sum(
        p.numel() for p in moa.parameters()) == 4 * 8 + 8 + 1
