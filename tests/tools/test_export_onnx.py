"""tools/export.py --onnx: both encoders as ONNX graphs whose features on
ONNX Runtime equal PyTorch's (frozen CLIP, UP-Person, DM-Adapter with two
domains; tiny models and ViT-B/16 at 384x128), dynamic batch, and the
refusal to write graphs that fail the check.

Each test prints what it checked. In CI (``CI=true``) a missing
onnxruntime fails these tests instead of skipping them.
"""
import copy
import json
import os
import os.path as osp
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from test_export import DM_PETL, MODEL_CFG, UP_PETL, Trained, load_tool

from mmtpr.apis.export import onnx as onnx_export
from mmtpr.models.petl import KVLoRA, MixtureOfAdapters
from mmtpr.registry import MODELS
from mmtpr.utils.errors import CheckpointError, ConfigError

if os.environ.get('CI') == 'true':
    import onnxruntime as ort
else:
    ort = pytest.importorskip('onnxruntime')

ATOL = 1e-4
DM2_PETL = [dict(DM_PETL[0], num_domains=2)]
KINDS = {'frozen': [], 'up_person': UP_PETL, 'dm_adapter': DM2_PETL}
ONNX_FILES = ('image_encoder.onnx', 'text_encoder.onnx', 'onnx.json')


def report(capsys, line):
    """Print to the terminal even while pytest captures output."""
    with capsys.disabled():
        print(f'\n[onnx] {line}', end='')


@pytest.fixture(scope='module')
def tool():
    return load_tool('export')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    return {kind: Trained(str(tmp_path_factory.mktemp(kind)), petl,
                          seed=i) for i, (kind, petl) in
            enumerate(KINDS.items())}


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options,
                                providers=['CPUExecutionProvider'])


def ort_features(out, tower, inputs, domains=None):
    sess = session(osp.join(out, f'{tower}_encoder.onnx'))
    feed = {sess.get_inputs()[0].name: inputs.numpy()}
    if domains is not None:
        feed['domains'] = domains.numpy()
    return torch.from_numpy(sess.run(['features'], feed)[0])


def onnx_inputs():
    gen = torch.Generator().manual_seed(7)
    images = torch.randn(3, 3, 128, 48, generator=gen)
    texts = torch.zeros(3, 77, dtype=torch.long)  # the demo's context
    for i, n in enumerate((3, 17, 40)):
        texts[i, 0] = 49406
        texts[i, 1:1 + n] = torch.randint(1, 49000, (n, ), generator=gen)
        texts[i, 1 + n] = 49407
    return images, texts, torch.tensor([1, 0, 1])


@pytest.mark.parametrize('kind', list(KINDS))
def test_onnx_runtime_equals_the_trained_model(tool, trained, kind,
                                               tmp_path, capsys):
    model = trained[kind]
    checkpoint = model.full_ckpt if kind == 'frozen' else model.petl_ckpt
    out = str(tmp_path / 'export')
    meta = tool.main([model.config, checkpoint, '--out', out, '--onnx'])
    assert 'onnx verified with ONNX Runtime at batch 1 and 3' in \
        capsys.readouterr().out
    assert sorted(f for f in os.listdir(out) if not f.endswith(
        ('.pth', '.py'))) == sorted(ONNX_FILES)
    domains = kind == 'dm_adapter'
    info = json.load(open(osp.join(out, 'onnx.json')))
    assert info['num_domains'] == (2 if domains else 1)
    assert info['files']['image']['inputs'] == ['images'] + (
        ['domains'] if domains else [])
    assert meta['onnx']['verified']['atol'] == ATOL
    if kind == 'up_person':
        assert meta['merged']['KVLoRA']['modules'] == 4

    images, texts, doms = onnx_inputs()
    worst = {}
    for num in (1, 3):  # dynamic batch; against the unmerged trained model
        with torch.no_grad():
            expected = model.model.extract_feat(
                images[:num], texts[:num], doms[:num] if domains else None,
                doms[:num] if domains else None)
        for tower, x, ref in (('image', images, expected[0]),
                              ('text', texts, expected[1])):
            got = ort_features(out, tower, x[:num],
                               doms[:num] if domains else None)
            diff = float((got - ref).abs().max())
            assert got.shape == ref.shape and diff <= ATOL, (tower, num)
            worst[tower] = max(worst.get(tower, 0.0), diff)
    report(capsys, f'{kind} (tiny, {meta["kept"] or "no PETL"}): ONNX '
           f'Runtime vs the trained PyTorch model at batch 1 and 3: max '
           f"|diff| image {worst['image']:.1e}, text {worst['text']:.1e} "
           f'<= {ATOL:g}')


def test_domains_route_the_exported_mixture(tool, trained, tmp_path,
                                            capsys):
    """The domain input matters and matches PyTorch for each domain."""
    model = trained['dm_adapter']
    out = str(tmp_path / 'export')
    tool.main([model.config, model.full_ckpt, '--out', out, '--onnx'])
    images, texts, _ = onnx_inputs()
    per_domain = []
    for domain in (0, 1):
        doms = torch.full((3, ), domain)
        got = ort_features(out, 'image', images, doms)
        with torch.no_grad():
            ref = model.model.backbone.encode_image(images, doms)
        assert float((got - ref).abs().max()) <= ATOL
        per_domain.append(got)
    gap = float((per_domain[0] - per_domain[1]).abs().max())
    assert gap > 1e-3
    report(capsys, f'dm_adapter domains 0 and 1 each equal PyTorch; the '
           f'features of the two domains differ by {gap:.2g}')


class Route(nn.Module):
    def __init__(self, moa):
        super().__init__()
        self.moa = moa

    def forward(self, logits):
        return self.moa.route(logits)


def test_exported_top_k_breaks_ties_as_the_stable_sort(tmp_path, capsys):
    moa = MixtureOfAdapters(16, num_experts=6, top_k=2).eval()
    gen = torch.Generator().manual_seed(0)
    # logits from {0, 1, 2}: nearly every token has ties at the top-k edge
    logits = torch.randint(0, 3, (4, 50, 6), generator=gen).float()
    path = str(tmp_path / 'route.onnx')
    with onnx_export._tracing():
        torch.onnx.export(Route(moa), (logits, ), path, dynamo=False,
                          opset_version=onnx_export.OPSET,
                          input_names=['logits'],
                          output_names=['index', 'weights'])
    index, weights = session(path).run(None, {'logits': logits.numpy()})
    ref_index, ref_weights = moa.route(logits)
    assert np.array_equal(index, ref_index.numpy())
    np.testing.assert_allclose(weights, ref_weights.numpy(), atol=1e-6)
    ties = int((logits.sort(-1, descending=True).values[..., 1] ==
                logits.sort(-1, descending=True).values[..., 2]).sum())
    report(capsys, f'ONNX TopK == stable sort on 200 tokens ({ties} with a '
           'tie at the top-k edge)')


def test_a_graph_that_fails_the_check_is_not_written(tool, trained,
                                                     tmp_path, monkeypatch,
                                                     capsys):
    model = trained['dm_adapter']
    out = str(tmp_path / 'export')
    tool.main([model.config, model.full_ckpt, '--out', out, '--onnx'])
    assert set(ONNX_FILES) <= set(os.listdir(out))
    route = MixtureOfAdapters.route

    def lowest_while_exporting(self, logits):  # a bug in the exported graph
        if torch.onnx.is_in_onnx_export():
            return route(self, -logits)
        return route(self, logits)

    monkeypatch.setattr(MixtureOfAdapters, 'route', lowest_while_exporting)
    with pytest.raises(CheckpointError, match=r'(?s)ONNX Runtime gives '
                       r'other image features than PyTorch at batch 1: max '
                       r'\|diff\| .* > 0.0001.*No ONNX file was written'):
        tool.main([model.config, model.full_ckpt, '--out', out, '--onnx'])
    left = sorted(os.listdir(out))
    assert left == ['config.py', 'model.pth'], left  # no graph, no temp
    report(capsys, 'a graph routing to the lowest logits is refused; the '
           f'folder keeps only {left} (the verified PyTorch export)')


def test_half_precision_frozen_weights_are_refused(tmp_path):
    model = MODELS.build(dict(
        type='TPRRetriever', head=dict(type='SDMHead'),
        backbone=dict(type='OpenCLIPBackbone',
                      model_cfg=copy.deepcopy(MODEL_CFG), image_size=(128, 48),
            frozen_dtype='bfloat16')))
    with pytest.raises(ConfigError, match='ONNX export is float32'):
        onnx_export.write_onnx(model, str(tmp_path))
    assert not osp.exists(tmp_path / 'onnx.json')


VIT_PETL = {
    'frozen': [],
    'up_person': [dict(type='ScaledPrefix', length=10),
                  dict(type='KVLoRA', rank=32),
                  dict(type='LNAdapter', reduction=8)],
    'dm_adapter': [dict(type='MixtureOfAdapters', num_experts=6, top_k=2,
                        reduction=8, num_domains=2)],
}


def vit_b16(petl):
    """ViT-B/16 at 384x128 with random weights, its PETL parameters moved
    off their init (adapters and experts not a no-op), KV-LoRA merged."""
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='TPRRetriever', head=dict(type='SDMHead'),
        backbone=dict(type='OpenCLIPBackbone', model_name='ViT-B-16',
                      image_size=(384, 128), petl=petl))).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.02 * torch.randn_like(param))
    KVLoRA.merge(model)
    return model


def test_vit_b16_exports_equal_pytorch(tmp_path, capsys):
    """The three models at full size: export (checked at batch 1 and 3)
    and one more ONNX Runtime run at batch 2."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for kind, petl in VIT_PETL.items():
            start = time.perf_counter()
            model = vit_b16(petl)
            out = str(tmp_path / kind)
            meta = onnx_export.write_onnx(model, out, ATOL, threads=2)
            images, texts, domains = onnx_export.example_inputs(model, 2)
            domains = domains if kind == 'dm_adapter' else None
            diffs = []
            for tower, x in (('image', images), ('text', texts)):
                with torch.no_grad():
                    ref = onnx_export.TowerGraph(model.backbone, tower)(
                        x, domains)
                got = ort_features(out, tower, x, domains)
                diffs.append(float((got - ref).abs().max()))
                assert diffs[-1] <= ATOL, (kind, tower)
            size = sum(f['bytes'] for f in meta['files'].values()) / 2**20
            checked = meta['verified']
            report(capsys, f'{kind} ViT-B/16 384x128: export checked at '
                   f"batch 1, 3 (max |diff| image {checked['image']:.1e}, "
                   f"text {checked['text']:.1e}); batch 2 image "
                   f'{diffs[0]:.1e}, text {diffs[1]:.1e}; {size:.0f} MiB; '
                   f'{time.perf_counter() - start:.0f} s')
            del model, meta
    finally:
        torch.set_num_threads(threads)
