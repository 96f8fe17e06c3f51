"""The embedded default job: DM-Adapter on generated data, on a CPU.

``python tools/demo.py`` runs, in one go and without any download:

1. pre-training: a tiny CLIP is trained from scratch with SDM on a generated
   SynthPedes dataset (``configs/demo/clip_tiny_synth.py``); its CLIP
   weights are written to ``<work-dir>/tiny_clip_pretrained.pth``;
2. the frozen tiny CLIP, without adapters, is evaluated on the test split
   of another SynthPedes dataset (other identities);
3. DM-Adapter (``configs/demo/dm_adapter_tiny_synth.py``) freezes that CLIP
   and trains only the mixtures of adapters on the new identities, picks
   the checkpoint with the best validation R@1 and evaluates it on the same
   test split;

then prints both results side by side with chance, and the
``tools/test.py`` command that reproduces DM-Adapter's numbers.
"""
import argparse
import copy
import os.path as osp
import time

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner

from mmtpr.registry import RUNNERS
from mmtpr.utils.checkpoint import load_state_dict_file
from mmtpr.utils.config import load_config

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                   'configs', 'demo')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--pretrain-config', default=osp.join(CONFIGS, 'clip_tiny_synth.py'))
    parser.add_argument(
        '--config', default=osp.join(CONFIGS, 'dm_adapter_tiny_synth.py'))
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='logs and checkpoints (default: %(default)s)')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision in both training stages (bfloat16 autocast on '
        'the CPU; see benchmarks/amp_demo.py for a comparison)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override entries of the DM-Adapter config')
    return parser.parse_args()


def best_checkpoint(runner: Runner) -> str:
    best = runner.message_hub.get_info('best_ckpt')
    return best or osp.join(runner.work_dir, f'epoch_{runner.epoch}.pth')


def export_clip(checkpoint: str, out: str) -> None:
    """Write the CLIP weights of a retriever checkpoint as a plain
    open_clip state dict (what ``OpenCLIPBackbone(pretrained=...)`` reads).
    """
    state = load_state_dict_file(checkpoint)['state_dict']
    prefix = 'backbone.clip.'
    clip = {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix)}
    torch.save(clip, out)


def fmt(metrics: dict) -> str:
    return '  '.join(f'{k.split("/")[-1]}={v:6.2f}'
                     for k, v in metrics.items())


def main():
    args = parse_args()
    timings = {}

    # 1. pre-train the tiny CLIP on identities of its own
    start = time.time()
    pre_cfg = load_config(args.pretrain_config)
    pre_cfg.work_dir = osp.join(args.work_dir, 'pretrain')
    if args.amp:
        pre_cfg.optim_wrapper.type = 'AutocastOptimWrapper'
    pre_runner = RUNNERS.build(pre_cfg)
    pre_runner.train()
    weights = osp.join(args.work_dir, 'tiny_clip_pretrained.pth')
    export_clip(best_checkpoint(pre_runner), weights)
    timings['pre-training'] = time.time() - start

    cfg = load_config(args.config)
    if args.amp:
        cfg.optim_wrapper.type = 'AutocastOptimWrapper'
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.model.backbone.pretrained = weights

    # 2. the frozen tiny CLIP alone on the new identities
    start = time.time()
    frozen_cfg = copy.deepcopy(cfg)
    frozen_cfg.model.backbone.petl = []
    frozen_cfg.model.pop('aux_loss', None)
    frozen_cfg.work_dir = osp.join(args.work_dir, 'frozen')
    frozen = RUNNERS.build(frozen_cfg).test()
    timings['frozen test'] = time.time() - start

    # 3. DM-Adapter on the new identities
    start = time.time()
    cfg.work_dir = osp.join(args.work_dir, 'dm_adapter')
    runner = RUNNERS.build(cfg)
    runner.train()
    best = best_checkpoint(runner)
    runner.load_checkpoint(best)
    timings['DM-Adapter training'] = time.time() - start
    start = time.time()
    adapted = runner.test()
    timings['DM-Adapter test'] = time.time() - start

    meta = runner.test_dataloader.dataset.metainfo
    chance = 100.0 / meta['num_pids']  # images per id / gallery size
    trainable = sum(p.numel() for p in runner.model.parameters()
                    if p.requires_grad)
    total = sum(p.numel() for p in runner.model.parameters())
    print('\n' + '=' * 78)
    print(f'SynthPedes test split: {meta["num_captions"]} text queries, '
          f'{meta["num_images"]} gallery images, {meta["num_pids"]} '
          'identities unseen in training')
    print(f'frozen tiny CLIP    {fmt(frozen)}')
    print(f'+ DM-Adapter        {fmt(adapted)}')
    print(f'chance R@1 = {chance:.2f}; DM-Adapter R@1 = '
          f'{adapted["tpr/R1"] / chance:.1f}x chance, '
          f'{adapted["tpr/R1"] - frozen["tpr/R1"]:+.2f} over the frozen CLIP')
    print(f'DM-Adapter trains {trainable:,} of {total:,} parameters; '
          f'checkpoint (best validation R@1): {osp.relpath(best)}')
    print('time: ' + ', '.join(f'{k} {v:.0f} s' for k, v in timings.items())
          + f' (total {sum(timings.values()):.0f} s)')
    print('reproduce: python tools/test.py '
          f'{osp.relpath(args.config)} {osp.relpath(best)} --cfg-options '
          f'model.backbone.pretrained={osp.relpath(weights)}')
    print('=' * 78)


if __name__ == '__main__':
    main()
