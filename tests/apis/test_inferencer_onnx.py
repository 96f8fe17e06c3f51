"""TPRInferencer(backend='onnxruntime') and tools/retrieve.py --backend
onnxruntime on the ONNX export of tiny trained models: same features and
rankings as PyTorch, no model built, domains routed, the ONNX files'
digest in the gallery cache's identity.

Each test prints what it checked. In CI (``CI=true``) a missing
onnxruntime fails these tests instead of skipping them.
"""
import copy
import os
import os.path as osp

import numpy as np
import pytest
import test_inferencer
import torch
from test_inferencer import copy_images, load_tool

from mmtpr.apis import TPRInferencer
from mmtpr.registry import MODELS
from mmtpr.utils.errors import CheckpointError, ConfigError

if os.environ.get('CI') != 'true':
    pytest.importorskip('onnxruntime')

ATOL = 1e-4
trained = test_inferencer.trained  # the tiny trained model (a fixture)
DM2_PETL = [dict(type='MixtureOfAdapters', num_experts=4, top_k=2,
                 reduction=8, num_domains=2,
                 scales=dict(visual=1.0, text=1.0))]


def report(capsys, line):
    """Print to the terminal even while pytest captures output."""
    with capsys.disabled():
        print(f'\n[onnx] {line}', end='')


def export(config, checkpoint, out):
    load_tool('export').main([config, checkpoint, '--out', out, '--onnx'])
    return osp.join(out, 'config.py'), osp.join(out, 'model.pth')


@pytest.fixture(scope='module')
def exported(trained, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('onnx_export') / 'export')
    config, model = export(trained['config'], trained['checkpoint'], out)
    return dict(config=config, model=model, dir=out)


@pytest.fixture(scope='module')
def dm_exported(trained, tmp_path_factory):
    """A DM-Adapter with two domain prompts over the tiny CLIP, its
    mixtures moved off their init, exported."""
    root = tmp_path_factory.mktemp('dm_onnx')
    cfg = copy.deepcopy(trained['cfg'])
    cfg.model.backbone.update(freeze=True, petl=DM2_PETL)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn_like(param))
    checkpoint = str(root / 'dm.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), checkpoint)
    config = str(root / 'dm_config.py')
    cfg.dump(config)
    out = str(root / 'export')
    config, checkpoint = export(config, checkpoint, out)
    return dict(config=config, model=checkpoint, dir=out)


def inferencer(exp, tmp_path, backend, **kwargs):
    kwargs.setdefault('cache_dir', str(tmp_path / f'cache_{backend}'))
    return TPRInferencer(exp['config'], exp['model'], batch_size=5,
                         show_progress=False, backend=backend, **kwargs)


def test_onnx_search_ranks_as_pytorch(trained, exported, tmp_path, capsys):
    torch_inf = inferencer(exported, tmp_path, 'pytorch')
    ort_inf = inferencer(exported, tmp_path, 'onnxruntime', threads=1)
    assert ort_inf.model is None and ort_inf.encoder.backend == \
        'onnxruntime'
    paths = trained['images']
    captions = [info['caption'] for info in trained['infos']]
    image_diff = float((ort_inf.encode_images(paths)
                        - torch_inf.encode_images(paths)).abs().max())
    text_diff = float((ort_inf.encode_texts(captions)
                       - torch_inf.encode_texts(captions)).abs().max())
    assert image_diff <= ATOL and text_diff <= ATOL
    gallery_torch = torch_inf.dataset_gallery('train')
    gallery_ort = ort_inf.dataset_gallery('train')
    ranked_torch = torch_inf.search(captions, gallery_torch, topk=16)
    ranked_ort = ort_inf.search(captions, gallery_ort, topk=16)
    for a, b in zip(ranked_ort, ranked_torch):
        assert a['indices'] == b['indices'] and a['pids'] == b['pids']
        np.testing.assert_allclose(a['scores'], b['scores'], atol=ATOL)
    report(capsys, f'inferencer onnxruntime vs pytorch: {len(paths)} images'
           f' (max |diff| {image_diff:.1e}), {len(captions)} captions '
           f'({text_diff:.1e}), identical rankings of all 16 gallery images '
           'for every caption')


def test_onnx_backend_builds_no_model(exported, tmp_path, monkeypatch,
                                      capsys):
    """No CLIP weights, no checkpoint: the ONNX files and the config."""
    def no_model(*args, **kwargs):
        raise AssertionError('the onnxruntime backend built the model')

    from mmtpr.models.backbones import OpenCLIPBackbone
    monkeypatch.setattr(OpenCLIPBackbone, '__init__', no_model)
    ort_inf = TPRInferencer(
        exported['config'], None, backend='onnxruntime',
        onnx_dir=exported['dir'], show_progress=False, cache_dir='',
        cfg_options={'model.backbone.pretrained': '/nonexistent/clip.pt'})
    feats = ort_inf.encode_texts(['a man in a red shirt'])
    assert feats.shape == (1, 32)
    with pytest.raises(ConfigError, match='runs on the CPU'):
        TPRInferencer(exported['config'], exported['model'],
                      backend='onnxruntime', device='cuda')
    with pytest.raises(ConfigError, match="'pytorch' or 'onnxruntime'"):
        TPRInferencer(exported['config'], exported['model'], backend='trt')
    report(capsys, 'onnxruntime backend: no model built, no checkpoint or '
           'CLIP weights read')


def test_gallery_cache_identity_includes_the_onnx_digest(
        trained, exported, tmp_path, capsys):
    torch_inf = inferencer(exported, tmp_path, 'pytorch')
    ort_inf = inferencer(exported, tmp_path, 'onnxruntime')
    assert ort_inf.model_id != torch_inf.model_id
    assert inferencer(exported, tmp_path, 'onnxruntime').model_id == \
        ort_inf.model_id
    folder = copy_images(trained, tmp_path / 'gallery', count=4)
    saved = ort_inf.load_gallery(folder)
    path = str(tmp_path / 'ort_gallery.pth')
    saved.save(path)
    with pytest.raises(ValueError, match='computed by another model'):
        torch_inf.load_gallery(path)
    # a graph that is not the one onnx.json describes is refused
    onnx_dir = tmp_path / 'tampered'
    onnx_dir.mkdir()
    for name in os.listdir(exported['dir']):
        data = open(osp.join(exported['dir'], name), 'rb').read()
        if name == 'text_encoder.onnx':
            data = data[:-1] + bytes([data[-1] ^ 1])
        (onnx_dir / name).write_bytes(data)
    with pytest.raises(CheckpointError, match='another SHA-256'):
        TPRInferencer(exported['config'], None, backend='onnxruntime',
                      onnx_dir=str(onnx_dir))
    report(capsys, 'gallery cache: onnxruntime and pytorch features are '
           'kept apart; a changed ONNX file is refused')


def test_onnx_routes_by_domain(trained, dm_exported, tmp_path, capsys):
    torch_inf = inferencer(dm_exported, tmp_path, 'pytorch')
    ort_inf = inferencer(dm_exported, tmp_path, 'onnxruntime')
    assert ort_inf.encoder.num_domains == 2
    paths = trained['images'][:6]
    captions = [info['caption'] for info in trained['infos'][:6]]
    feats = {}
    for domain in (0, 1):
        for name, inf in (('torch', torch_inf), ('ort', ort_inf)):
            feats[name, domain] = (inf.encode_images(paths, domain=domain),
                                   inf.encode_texts(captions,
                                                    domain=domain))
        for a, b in zip(feats['ort', domain], feats['torch', domain]):
            assert float((a - b).abs().max()) <= ATOL
    gap = float((feats['ort', 0][0] - feats['ort', 1][0]).abs().max())
    assert gap > 1e-3  # the domain input is used
    for inf in (torch_inf, ort_inf):
        with pytest.raises(ConfigError, match='domain index 2 out of range'):
            inf.encode_texts(captions, domain=2)
    report(capsys, 'DM-Adapter with 2 domains: onnxruntime equals pytorch '
           f'for domain 0 and 1 (features of the domains differ by '
           f'{gap:.2g}); domain 2 refused by both')


def test_retrieve_tool_with_onnxruntime(trained, exported, tmp_path,
                                        capsys):
    folder = copy_images(trained, tmp_path / 'gallery', count=8)
    retrieve = load_tool('retrieve')
    query = trained['infos'][2]['caption']
    common = ['--gallery', folder, '--query', query, '--topk', '5',
              '--cache-dir', str(tmp_path / 'cache')]
    by_torch = retrieve.main([exported['config'], exported['model']]
                             + common)
    by_ort = retrieve.main([exported['config'], '--backend', 'onnxruntime',
                            '--onnx-dir', exported['dir'], '--threads', '1']
                           + common)
    printed = capsys.readouterr().out
    assert by_ort[0]['paths'] == by_torch[0]['paths']
    np.testing.assert_allclose(by_ort[0]['scores'], by_torch[0]['scores'],
                               atol=ATOL)
    assert printed.count(f"   1  {by_ort[0]['scores'][0]:.4f}") >= 1
    # the checkpoint's folder is the default ONNX folder
    default = retrieve.main([exported['config'], exported['model'],
                             '--backend', 'onnxruntime'] + common)
    assert default[0]['paths'] == by_torch[0]['paths']
    with pytest.raises(SystemExit):
        retrieve.main([exported['config'], '--backend', 'onnxruntime']
                      + common)
    report(capsys, 'tools/retrieve.py --backend onnxruntime: the same top 5 '
           'as pytorch, with and without --onnx-dir')
