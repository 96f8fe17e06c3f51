"""Run every mmtpr load path on a hostile pickle, in a process started with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (see test_weights_only.py).

``python weights_only_probe.py SETUP.json``: SETUP names the config, a
good checkpoint, a gallery folder, a scratch folder, a tiny open_clip
config and, for each load path, the hostile file. Prints one JSON line:
load path -> what happened (the exception's type, whether it is an
MMTPRError, its message)."""
import json
import os
import os.path as osp
import sys
import traceback
import warnings

warnings.simplefilter('ignore')


def main(setup_file):
    with open(setup_file) as f:
        setup = json.load(f)
    evil = setup['evil']
    config, scratch = setup['config'], setup['scratch']

    import torch
    from mmengine.config import Config

    from mmtpr.apis import Gallery, TPRInferencer
    from mmtpr.apis.export import export_pytorch
    from mmtpr.models.backbones.open_clip_backbone import OpenCLIPBackbone
    from mmtpr.models.petl.checkpoint import load_petl_checkpoint
    from mmtpr.registry import MODELS, RUNNERS
    from mmtpr.utils.checkpoint import (
        load_checkpoint_file,
        load_state_dict_file,
    )

    def runner(**extra):
        cfg = Config.fromfile(config)
        cfg.work_dir = osp.join(scratch, f'work_{len(os.listdir(scratch))}')
        cfg.merge_from_dict(extra)
        return RUNNERS.build(cfg)

    def cached_gallery():
        inferencer = TPRInferencer(config, setup['checkpoint'],
                                   device='cpu', show_progress=False,
                                   cache_dir=osp.join(scratch, 'cache'))
        folder = setup['gallery']
        cache = inferencer._cache_path(f'folder:{osp.abspath(folder)}')
        os.makedirs(osp.dirname(cache), exist_ok=True)
        with open(evil['gallery cache'], 'rb') as src, \
                open(cache, 'wb') as dst:
            dst.write(src.read())
        gallery = inferencer.load_gallery(folder)
        return dict(images=len(gallery), cache_replaced=osp.isfile(cache))

    paths = {
        'torch.load (control)': lambda p: torch.load(p),
        'load_checkpoint_file': load_checkpoint_file,
        'load_state_dict_file': load_state_dict_file,
        'legacy format': load_checkpoint_file,
        'TPRRunner load_from': lambda p: runner(
            load_from=p).load_or_resume(),
        'TPRRunner resume': lambda p: runner(
            load_from=p, resume=True).load_or_resume(),
        'load_petl_checkpoint': lambda p: load_petl_checkpoint(
            MODELS.build(Config.fromfile(config).model), p),
        'Gallery.load': Gallery.load,
        'TPRInferencer': lambda p: TPRInferencer(
            config, p, device='cpu', cache_dir='', show_progress=False),
        'export_pytorch': lambda p: export_pytorch(
            config, p, osp.join(scratch, 'export')),
        'CLIP .pth weights': lambda p: OpenCLIPBackbone(
            model_cfg=setup['tiny_clip'], pretrained=p, image_size=(64, 32)),
        'gallery cache': lambda p: cached_gallery(),
    }
    results = {}
    for name, load in paths.items():
        try:
            value = load(evil[name])
            results[name] = dict(raised=None, value=value if isinstance(
                value, dict) and name == 'gallery cache' else None)
        except BaseException as err:  # noqa: B036 (report everything)
            from mmtpr.utils.errors import MMTPRError
            results[name] = dict(
                raised=type(err).__name__,
                mmtpr=isinstance(err, MMTPRError),
                message=str(err),
                traceback=traceback.format_exc()[-1500:])
    print(json.dumps(results))


if __name__ == '__main__':
    main(sys.argv[1])
