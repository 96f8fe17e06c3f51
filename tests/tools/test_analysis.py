"""tools/analysis/count_params.py and flops.py: the ViT-B/16 method configs
(on the meta device) against methods.md, tiny models against hand counts."""
import importlib.util
import os.path as osp

import pytest
from conftest import TINY_CLIP
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
UP_CONFIG = osp.join(ROOT, 'configs', 'up_person', 'clip_b16_cuhk.py')
DM_CONFIG = osp.join(ROOT, 'configs', 'dm_adapter', 'clip_b16_cuhk.py')


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        f'mmtpr_{name}_tool', osp.join(ROOT, 'tools', 'analysis',
                                       f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def params():
    return load_tool('count_params')


@pytest.fixture(scope='module')
def flops():
    return load_tool('flops')


def tiny_config(petl, image_size=(64, 32), learnable_scale=True):
    return Config(dict(default_scope='mmtpr', model=dict(
        type='TPRRetriever',
        backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                      image_size=image_size, freeze=True, petl=petl),
        head=dict(type='SDMHead', temperature=0.07,
                  learnable_scale=learnable_scale))))


def per_tower(counts, component):
    """{tower: trainable + frozen} of a component."""
    return {t: sum(v) for t, v in counts[component].items()}


# ---------------------------------------------------------------------------
# count_params
# ---------------------------------------------------------------------------
# methods.md 1.6 / 2.6 and the frozen CLIP ViT-B/16 at 384x128 (193
# positions): vision 86,189,568, text 63,428,096, plus open_clip's
# logit_scale (1, frozen, never used: the SDM head owns the temperature).
CLIP_B16 = dict(visual=86_189_568, text=63_428_096, other=1)


def test_up_person_vit_b16_matches_methods_md(params, capsys):
    counts = params.main([UP_CONFIG])
    assert params.totals(counts) == dict(trainable=7_419_816,
                                         frozen=149_617_665,
                                         total=157_037_481)
    assert per_tower(counts, 'ScaledPrefix') == dict(
        visual=184_356, text=122_916, other=0)
    assert per_tower(counts, 'KVLoRA') == dict(
        visual=1_179_672, text=786_456, other=0)
    assert per_tower(counts, 'LNAdapter') == dict(
        visual=3_559_704, text=1_586_712, other=0)
    assert per_tower(counts, 'CLIP') == CLIP_B16
    assert all(v[1] == 0 for c in ('ScaledPrefix', 'KVLoRA', 'LNAdapter')
               for v in counts[c].values())  # all trainable
    assert all(v[0] == 0 for v in counts['CLIP'].values())  # all frozen
    assert per_tower(counts, 'head') == dict(visual=0, text=0, other=0)
    out = capsys.readouterr().out
    assert 'trainable: 7,419,816 of 157,037,481 (7.42 M of 157.04 M, ' \
        '4.72 %)' in out
    assert 'visual  4,923,732  86,189,568  91,113,300' in out


def test_dm_adapter_vit_b16_matches_methods_md(params, capsys):
    counts = params.main([DM_CONFIG])
    # methods.md 2.6: the live parameters (its 16.07 M adds 395,776 unused
    # ones of the reference code that this implementation does not create)
    assert params.totals(counts) == dict(trainable=15_669_528,
                                         frozen=149_617_665,
                                         total=165_287_193)
    assert per_tower(counts, 'MixtureOfAdapters') == dict(
        visual=10_817_292, text=4_852_236, other=0)
    assert per_tower(counts, 'CLIP') == CLIP_B16
    assert '(15.67 M of 165.29 M, 9.48 %)' in capsys.readouterr().out


def test_tiny_counts_by_hand(params):
    cfg = tiny_config([
        dict(type='ScaledPrefix', length=3),
        dict(type='KVLoRA', rank=4, towers=('text', )),
        dict(type='LNAdapter', reduction=8, layers=[1]),
    ])
    counts = params.count_parameters(params.build_model(cfg))
    d, layers, embed = 64, 2, 32
    assert per_tower(counts, 'ScaledPrefix') == dict(
        visual=layers * (2 * 3 * d + 3), text=layers * (2 * 3 * d + 3),
        other=0)
    assert per_tower(counts, 'KVLoRA') == dict(
        visual=0, text=layers * (4 * 4 * d + 2), other=0)
    hidden = d // 8  # one block, adapters beside ln_1 and ln_2
    adapter = 2 * (d * hidden + hidden + hidden * d + d + 1)
    assert per_tower(counts, 'LNAdapter') == dict(
        visual=adapter, text=adapter, other=0)
    # a block: 2 LayerNorms, in_proj, out_proj, MLP d -> 2d -> d
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + \
        (d * 2 * d + 2 * d) + (2 * d * d + d)
    visual = (3 * 16 * 16 * d + d + (1 + 4 * 2) * d + 2 * d  # conv, cls,
              + layers * block + 2 * d + d * embed)  # pos, ln_pre; ln_post
    text = 49408 * d + 77 * d + layers * block + 2 * d + d * embed
    assert counts['CLIP'] == dict(visual=[0, visual], text=[0, text],
                                  other=[0, 1])
    assert counts['head'] == dict(visual=[0, 0], text=[0, 0],
                                  other=[1, 0])  # the learnable scale
    trainable = 2 * layers * (2 * 3 * d + 3) + layers * (16 * d + 2) + \
        2 * adapter + 1
    assert params.totals(counts) == dict(
        trainable=trainable, frozen=visual + text + 1,
        total=trainable + visual + text + 1)


# ---------------------------------------------------------------------------
# flops (FLOPs = 2 x multiply-adds)
# ---------------------------------------------------------------------------
def vit_flops(tokens, d, layers, mlp, patches=0, patch_in=0, embed=0,
              keys=None):
    """Matmul FLOPs of a CLIP tower on one input: (patch embedding) +
    blocks (in_proj, QK^T and AV, out_proj, MLP) + the final projection
    of one token."""
    keys = tokens if keys is None else keys
    block = (2 * tokens * d * 3 * d + 2 * 2 * tokens * keys * d
             + 2 * tokens * d * d + 2 * 2 * tokens * d * mlp)
    return 2 * patches * patch_in * d + layers * block + 2 * d * embed


def test_tiny_frozen_clip_matches_the_formula(flops):
    model = flops.build_model(tiny_config([]).model.to_dict(), 'meta')
    got = flops.count_flops(model, batch_size=1, device='meta')
    # 64x32 image: 4x2 patches of 3x16x16 + CLS = 9 tokens
    assert got['image'] == vit_flops(9, 64, 2, 128, patches=8,
                                     patch_in=3 * 16 * 16, embed=32)
    assert got['text'] == vit_flops(77, 64, 2, 128, embed=32)
    assert got['image'] == 2_011_648
    # batch 3 costs 3 times as much: the same per item
    assert flops.count_flops(model, batch_size=3, device='meta') == got


def test_each_up_person_technique_adds_its_matmuls(flops):
    cfg = tiny_config([dict(type='ScaledPrefix', length=3),
                       dict(type='KVLoRA', rank=4),
                       dict(type='LNAdapter', reduction=8)])
    rows = flops.analyse(cfg)
    assert [r['name'] for r in rows] == [
        'frozen CLIP', '+ ScaledPrefix', '+ KVLoRA', '+ LNAdapter']
    assert all(r['where'] == 'meta' for r in rows)
    d, layers, r, p, hidden = 64, 2, 4, 3, 8
    for key, n in (('image', 9), ('text', 77)):
        steps = [b[key] - a[key] for a, b in zip(rows, rows[1:])]
        assert steps == [
            layers * 2 * 2 * n * p * d,  # QK^T and AV over P more keys
            layers * 2 * (2 * n * d * r + 2 * n * r * d),  # K and V
            layers * 2 * (2 * n * d * hidden + 2 * n * hidden * d),
        ]
    # counted on the CPU (random weights) it is the same
    model = flops.build_model(cfg.model.to_dict(), 'cpu')
    cpu = flops.count_flops(model, batch_size=2, device='cpu')
    assert (cpu['image'], cpu['text']) == (rows[-1]['image'],
                                           rows[-1]['text'])


def test_mixture_of_adapters_counts_what_its_dispatch_computes(flops):
    """'masked' (the default) runs every expert on every token and weights
    the results (no data-dependent shapes: counted on the meta device);
    'grouped' runs the top-k experts of each token only (bincount has no
    meta kernel: counted on the CPU)."""
    d, layers, experts, k, hidden = 64, 2, 4, 2, 8
    moa = dict(type='MixtureOfAdapters', num_experts=experts, top_k=k,
               reduction=8)
    masked = flops.analyse(tiny_config([moa]), batch_size=2)
    grouped = flops.analyse(tiny_config([dict(moa, dispatch='grouped')]),
                            batch_size=2)
    assert masked[0]['where'] == masked[1]['where'] == 'meta'
    assert grouped[1]['where'] == ('cpu, random weights (aten::bincount '
                                   'has no meta kernel)')
    for key, n in (('image', 9), ('text', 77)):
        router = 2 * n * d * experts + 2 * d * experts  # tokens, prompt
        adapter = 2 * d * hidden + 2 * hidden * d  # per token and expert
        combine = 2 * n * d * experts  # the gate-weighted sum
        assert masked[1][key] - masked[0][key] == layers * (
            router + experts * n * adapter + combine)
        assert grouped[1][key] - grouped[0][key] == layers * (
            router + k * n * adapter)


def test_vit_b16_up_person_table(flops, capsys):
    rows = flops.main([UP_CONFIG])
    image = vit_flops(193, 768, 12, 3072, patches=192,
                      patch_in=3 * 16 * 16, embed=512)
    text = vit_flops(77, 512, 12, 2048, embed=512)
    assert (rows[0]['image'], rows[0]['text']) == (image, text)
    assert image == 34_385_203_200 and text == 5_959_540_736
    lora = rows[2]['image'] - rows[1]['image']
    assert lora == 12 * 2 * 4 * 193 * 768 * 32
    out = capsys.readouterr().out
    assert 'GFLOPs per image (384x128) and per caption (77 tokens)' in out
    assert 'frozen CLIP              34.385              5.960' in out
    assert '+ LNAdapter              36.278   +1.366     6.342   +0.242' \
        in out
