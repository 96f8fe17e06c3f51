"""Shared fixtures: tiny open_clip configs and tiny datasets on disk."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from mmengine.registry import init_default_scope  # noqa: E402

import mmtpr  # noqa: E402,F401

init_default_scope('mmtpr')

# A tiny open_clip CLIP: builds in milliseconds, no download.
TINY_CLIP = dict(
    embed_dim=32,
    vision_cfg=dict(layers=2, width=64, head_width=32, patch_size=16,
                    mlp_ratio=2.0),
    text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=2,
                  layers=2, mlp_ratio=2.0),
)


def write_cuhk_like(root, records, image_size=(48, 24), make_images=True,
                    ann_name='reid_raw.json'):
    """Write ``records`` as ``root/ann_name`` plus a random image for each
    record's ``file_path``; returns ``root``."""
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    if make_images:
        for rec in records:
            path = rec.get('file_path') or rec.get('img_path')
            full = osp.join(root, 'imgs', path)
            os.makedirs(osp.dirname(full), exist_ok=True)
            pixels = rng.integers(0, 255, (*image_size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(full)
    with open(osp.join(root, ann_name), 'w') as f:
        json.dump(records, f)
    return str(root)


def cuhk_records():
    """3 train persons (ids 5, 2, 9), 2 test persons, 1 val person."""
    recs = []
    layout = [('train', 5, 2), ('train', 2, 1), ('train', 9, 2),
              ('test', 11, 2), ('test', 12, 1), ('val', 20, 1)]
    for split, pid, n_images in layout:
        for k in range(n_images):
            recs.append(dict(
                split=split, id=pid,
                file_path=f'cam_a/{pid:04d}_{k}.jpg',
                captions=[f'person {pid} image {k} caption a',
                          f'person {pid} image {k} caption b'],
                processed_tokens=[]))
    return recs


@pytest.fixture
def cuhk_root(tmp_path):
    return write_cuhk_like(tmp_path / 'CUHK-PEDES', cuhk_records())


DEMO_CONFIG = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                          'configs', 'demo', 'clip_tiny_synth.py')


def tiny_cfg(work_dir, data_root, max_epochs=2, **extra):
    """The demo config shrunk to seconds: a 1-layer CLIP on a tiny
    SynthPedes."""
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_CONFIG)
    synth = dict(data_root=data_root, num_ids=[12, 4, 4], images_per_id=2,
                 image_size=[64, 32], seed=3)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.update(synth)
        loader.update(batch_size=8, num_workers=0, persistent_workers=False)
    cfg.model.backbone.model_cfg = dict(
        embed_dim=32,
        vision_cfg=dict(layers=1, width=32, head_width=16, patch_size=16),
        text_cfg=dict(context_length=cfg.context_length, vocab_size=49408,
                      width=32, heads=2, layers=1))
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = 1
    # the schedule length does not follow max_epochs (MMEngine keeps a
    # resumed scheduler's saved `end`; see docs/checkpoints.md)
    cfg.param_scheduler[0].total_steps = 2
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=5)
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = osp.basename(str(work_dir))
    cfg.merge_from_dict(extra)
    return cfg


def build_runner(cfg):
    """The runner a config names (mmtpr's TPRRunner for mmtpr's configs),
    as the tools build it."""
    from mmtpr.registry import RUNNERS
    return RUNNERS.build(cfg)


def pytest_terminal_summary(terminalreporter):
    """Show what the tests of the optional parts (search page in Chromium,
    ONNX Runtime, TensorBoard) checked: the lines of their output that
    start with 'checked', even under -q."""
    lines = []
    for report in terminalreporter.stats.get('passed', []):
        for line in (report.capstdout or '').splitlines():
            if line.startswith('checked'):
                lines.append(f'{report.nodeid.split("::")[-1]}: {line}')
    if lines:
        terminalreporter.section('what the optional-part tests checked')
        for line in lines:
            terminalreporter.write_line(line)


def load_tool(name):
    """The module of ``tools/<name>.py`` (e.g. 'train', 'analysis/curves')."""
    import importlib.util
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        name.replace('/', '_'), osp.join(root, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
