"""Each technique's equations on small hand-built tensors, KV-LoRA merging,
layer selection and errors."""
import math

import pytest
import torch
import torch.nn as nn
from conftest import TINY_CLIP

from mmtpr.models.petl import (
    KVLoRA,
    LNAdapter,
    PETLAttention,
    PETLBlock,
    ScaledPrefix,
    resolve_layers,
)
from mmtpr.registry import MODELS


def mha(dim=8, heads=2, seed=0):
    torch.manual_seed(seed)
    attn = nn.MultiheadAttention(dim, heads, batch_first=True)
    nn.init.normal_(attn.in_proj_bias)
    nn.init.normal_(attn.out_proj.bias)
    return attn


def reference_attention(x, attn, mask=None, prefix=None, lora=None):
    """The reference's formula written out per head: prefix keys/values
    inserted after token 0, softmax, then the prefix columns of the
    attention multiplied by Sp (no renormalisation)."""
    d = attn.embed_dim
    h = attn.num_heads
    dh = d // h
    w, b = attn.in_proj_weight, attn.in_proj_bias
    wq, wk, wv = w[:d], w[d:2 * d], w[2 * d:]
    if lora is not None:
        wk = wk + lora.scale_k * lora.lora_b_k @ lora.lora_a_k
        wv = wv + lora.scale_v * lora.lora_b_v @ lora.lora_a_v
    q = x @ wq.t() + b[:d]
    k = x @ wk.t() + b[d:2 * d]
    v = x @ wv.t() + b[2 * d:]
    n = x.shape[1]
    p = 0
    if prefix is not None:
        pk = prefix.scale_k * prefix.prefix_k
        pv = prefix.scale_v * prefix.prefix_v
        p = pk.shape[0]
        bsz = x.shape[0]
        k = torch.cat([k[:, :1], pk.expand(bsz, -1, -1), k[:, 1:]], 1)
        v = torch.cat([v[:, :1], pv.expand(bsz, -1, -1), v[:, 1:]], 1)
    outs = []
    for head in range(h):
        sl = slice(head * dh, (head + 1) * dh)
        logits = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(dh)
        if mask is not None:
            full = torch.zeros(n, n + p)
            full[:, :1] = mask[:, :1]
            full[:, 1 + p:] = mask[:, 1:]
            logits = logits + full
        a = logits.softmax(-1)
        if prefix is not None:
            a = torch.cat([a[..., :1], a[..., 1:1 + p] * prefix.sp,
                           a[..., 1 + p:]], -1)
        outs.append(a @ v[..., sl])
    return torch.cat(outs, -1) @ attn.out_proj.weight.t() + \
        attn.out_proj.bias


def causal(n):
    return torch.full((n, n), float('-inf')).triu(1)


@pytest.mark.parametrize('mask', [None, 'causal'])
def test_prefix_attention_equals_the_post_softmax_formula(mask):
    attn = mha()
    petl = PETLAttention(attn)
    prefix = ScaledPrefix(8, length=3, sp_init=100.0)
    with torch.no_grad():  # a non-trivial state
        prefix.scale_k.fill_(1.7)
        prefix.scale_v.fill_(0.6)
        prefix.sp.fill_(7.0)
    petl.prefix = prefix
    x = torch.randn(2, 5, 8)
    m = causal(5) if mask else None
    expected = reference_attention(x, attn, m, prefix=prefix)
    got = petl(x, attn_mask=m)
    assert torch.allclose(got, expected, atol=1e-5)
    # and the gradients of Sp and the tokens agree too
    g1 = torch.autograd.grad(got.sum(), [prefix.sp, prefix.prefix_k])
    g2 = torch.autograd.grad(
        reference_attention(x, attn, m, prefix=prefix).sum(),
        [prefix.sp, prefix.prefix_k])
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_prefix_init_values():
    torch.manual_seed(0)
    prefix = ScaledPrefix(64, length=10)
    for tokens in (prefix.prefix_k, prefix.prefix_v):
        assert tokens.shape == (10, 64)
        assert 0.0 <= tokens.min() and tokens.max() <= 0.01
    assert prefix.sp.item() == 100.0
    assert prefix.scale_k.item() == prefix.scale_v.item() == 1.0


def test_plain_petl_attention_equals_nn_multihead_attention():
    attn = mha(16, 4)
    x = torch.randn(3, 7, 16)
    for m in (None, causal(7), causal(7) == float('-inf')):
        expected = attn(x, x, x, need_weights=False, attn_mask=m)[0]
        assert torch.allclose(PETLAttention(attn)(x, m), expected,
                              atol=1e-5)


def test_kv_lora_delta_and_init():
    attn = mha()
    lora = KVLoRA(8, rank=2)
    assert torch.count_nonzero(lora.lora_b_k) == 0
    bound = 1 / math.sqrt(8)  # kaiming_uniform(a=sqrt 5) on fan_in 8
    assert lora.lora_a_k.abs().max() <= bound
    with torch.no_grad():
        nn.init.normal_(lora.lora_b_k)
        nn.init.normal_(lora.lora_b_v)
        lora.scale_k.fill_(0.5)
    petl = PETLAttention(attn)
    petl.lora = lora
    x = torch.randn(2, 5, 8)
    assert torch.allclose(petl(x), reference_attention(x, attn, lora=lora),
                          atol=1e-5)
    # queries untouched: only the K and V rows of the delta are non-zero
    assert lora.delta_weight().shape == (16, 8)


def test_ln_adapter_formula():
    adapter = LNAdapter(16, reduction=4)
    assert torch.count_nonzero(adapter(torch.randn(2, 16))) == 0
    with torch.no_grad():
        nn.init.normal_(adapter.up.weight)
        adapter.scale.fill_(2.0)
    x = torch.randn(2, 16)
    expected = 2.0 * (torch.relu(x @ adapter.down.weight.t() +
                                 adapter.down.bias) @ adapter.up.weight.t()
                      + adapter.up.bias)
    assert torch.allclose(adapter(x), expected, atol=1e-6)


def test_block_reads_raw_stream_into_both_layer_norms():
    torch.manual_seed(0)
    clip = MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                             image_size=(64, 32))).clip
    LNAdapter.inject(clip, reduction=8, towers='visual', layers=[0])
    block = clip.visual.transformer.resblocks[0]
    assert isinstance(block, PETLBlock)
    for adapter in (block.adapter_1, block.adapter_2):
        nn.init.normal_(adapter.up.weight)
    x = torch.randn(2, 9, 64)
    h1 = block.ln_1(x) + block.adapter_1(x)
    y = x + block.attn(h1)
    expected = y + block.mlp(block.ln_2(y) + block.adapter_2(y))
    assert torch.allclose(block(x), expected, atol=1e-5)


def test_merge_kv_lora_gives_the_same_features():
    torch.manual_seed(0)
    model = MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                              image_size=(64, 32),
                              petl=[dict(type='KVLoRA', rank=4),
                                    dict(type='LNAdapter')]))
    for module in model.modules():
        if isinstance(module, KVLoRA):
            nn.init.normal_(module.lora_b_k, std=0.05)
            nn.init.normal_(module.lora_b_v, std=0.05)
    images = torch.randn(2, 3, 64, 32)
    texts = torch.zeros(2, 77, dtype=torch.long)
    texts[:, 0], texts[:, 1:4], texts[:, 4] = 49406, 500, 49407
    with torch.no_grad():
        before = model(images, texts)
        assert KVLoRA.merge(model) == 4
        after = model(images, texts)
    assert not any(isinstance(m, KVLoRA) for m in model.modules())
    assert any(isinstance(m, LNAdapter) for m in model.modules())
    for a, b in zip(before, after):
        assert torch.allclose(a, b, atol=1e-5)


def test_layers_have_one_meaning():
    assert resolve_layers(None, 4) == [0, 1, 2, 3]
    assert resolve_layers(2, 4) == [0, 1]
    assert resolve_layers([3, -4], 4) == [0, 3]
    with pytest.raises(ValueError, match='out of range'):
        resolve_layers([4], 4)
    with pytest.raises(ValueError, match='the tower has 4'):
        resolve_layers(5, 4)
    with pytest.raises(ValueError, match='twice'):
        resolve_layers([1, -3], 4)


def test_errors_for_double_injection_and_unknown_technique():
    cfg = dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
               image_size=(64, 32))
    with pytest.raises(ValueError,
                       match='KVLoRA is already applied to visual block 0'):
        MODELS.build(dict(cfg, petl=[dict(type='KVLoRA'),
                                     dict(type='KVLoRA')]))
    with pytest.raises(ValueError, match="unknown PETL technique 'LoRA'"):
        MODELS.build(dict(cfg, petl=[dict(type='LoRA')]))
    with pytest.raises(ValueError, match="unknown tower 'vision'"):
        MODELS.build(dict(cfg, petl=[dict(type='KVLoRA',
                                          towers=('vision', ))]))
