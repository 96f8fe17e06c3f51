"""Checkpoint sizes of UP-Person and DM-Adapter on CLIP ViT-B/16: full vs
PETL-only (``PETLCheckpointHook(petl_only=True)``).

Builds each method's model from its config with ``pretrained=None``
(random init on the CPU: sizes do not depend on the values), gives the
optimizer (built from the config, as the runner does) its state with one
step on zero gradients, and serialises checkpoints the way MMEngine does
(``torch.save`` of ``meta``, ``state_dict``, ``optimizer``, ...)::

    python benchmarks/checkpoint_size.py [--methods up_person dm_adapter]

Prints, per method, the state dict (parameters, MB) full and PETL-only,
the checkpoint file size with the optimizer state, the time to serialise
each, and the one-off costs of the PETL-only path (the frozen-weight
fingerprint, computed once per run and once per load) and of the CRC check
that mmtpr's loader runs on every load. MB = 10^6 bytes. ``--tiny`` measures
the demo's tiny CLIP instead (a smoke run).
"""
import argparse
import io
import os.path as osp
import tempfile
import time

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import save_checkpoint

from mmtpr.models.petl.checkpoint import (
    frozen_fingerprint,
    petl_state_dict_keys,
    select_state_dict,
    state_dict_size,
)
from mmtpr.registry import MODELS
from mmtpr.utils.checkpoint import load_checkpoint_file

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = {
    'up_person': 'configs/up_person/clip_b16_cuhk.py',
    'dm_adapter': 'configs/dm_adapter/clip_b16_cuhk.py',
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--methods', nargs='+', choices=list(CONFIGS),
                        default=list(CONFIGS))
    parser.add_argument('--tiny', action='store_true',
                        help="the demo's tiny CLIP instead of ViT-B/16 (a "
                        'smoke run in seconds)')
    return parser.parse_args(argv)


def optimizer_state(model, cfg):
    """The optimizer's state dict after one step on zero gradients."""
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    for param in model.parameters():
        if param.requires_grad:
            param.grad = torch.zeros_like(param)
    optim_wrapper.step()
    return optim_wrapper.state_dict()


def serialised(checkpoint):
    """(bytes, seconds) of ``torch.save`` into memory."""
    start = time.perf_counter()
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getbuffer().nbytes, time.perf_counter() - start


def measure(method, tiny=False):
    cfg = Config.fromfile(osp.join(ROOT, CONFIGS[method]))
    cfg.model.backbone.pretrained = None
    if tiny:
        demo = Config.fromfile(osp.join(ROOT, 'configs', 'demo',
                                        'clip_tiny_synth.py'))
        cfg.model.backbone.model_cfg = demo.model.backbone.model_cfg
        cfg.model.backbone.image_size = demo.model.backbone.image_size
    model = MODELS.build(cfg.model)
    state_dict = model.state_dict()
    keys = petl_state_dict_keys(model)
    petl = select_state_dict(state_dict, keys)
    optimizer = optimizer_state(model, cfg)
    start = time.perf_counter()
    fingerprint = frozen_fingerprint(model, keys)
    fingerprint_s = time.perf_counter() - start

    rows = []
    for kind, weights in (('full', state_dict), ('PETL-only', petl)):
        numel, nbytes = state_dict_size(weights)
        meta = dict(epoch=1, iter=1)
        if kind == 'PETL-only':
            meta.update(petl_only=True, petl_keys=keys,
                        frozen_fingerprint=fingerprint)
        file_bytes, save_s = serialised(
            dict(meta=meta, state_dict=weights, optimizer=optimizer))
        rows.append((kind, len(weights), numel, nbytes, file_bytes, save_s))

    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'full.pth')
        save_checkpoint(dict(state_dict=state_dict), path)
        start = time.perf_counter()
        torch.load(path, map_location='cpu', weights_only=True)
        plain_s = time.perf_counter() - start
        start = time.perf_counter()
        load_checkpoint_file(path)
        checked_s = time.perf_counter() - start

    model_name = 'tiny CLIP' if tiny else 'ViT-B/16'
    print(f'\n{method} ({CONFIGS[method]}, {model_name}, pretrained=None)')
    print(f'{"":10} {"tensors":>8} {"parameters":>13} {"state_dict":>11} '
          f'{"file+optim":>11} {"save":>7}')
    for kind, tensors, numel, nbytes, file_bytes, save_s in rows:
        print(f'{kind:10} {tensors:>8,} {numel:>13,} '
              f'{nbytes / 1e6:>8.1f} MB {file_bytes / 1e6:>8.1f} MB '
              f'{save_s:>6.2f}s')
    full, petl_row = rows
    print(f'PETL-only / full: state_dict {petl_row[3] / full[3]:.1%}, file '
          f'{petl_row[4] / full[4]:.1%}; frozen fingerprint '
          f'{fingerprint_s:.2f}s; loading the full state_dict: torch.load '
          f'{plain_s:.2f}s, with the CRC check {checked_s:.2f}s')


def main(argv=None):
    args = parse_args(argv)
    init_default_scope('mmtpr')
    torch.manual_seed(0)
    for method in args.methods:
        measure(method, args.tiny)


if __name__ == '__main__':
    main()
