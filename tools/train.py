"""Train a model: ``python tools/train.py CONFIG [--work-dir DIR] ...``."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmtpr  # noqa: F401  (registries, checkpoint-loading fix)
from mmtpr.utils import setup_dist


def parse_args():
    parser = argparse.ArgumentParser(description='Train an mmtpr model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision training: float32 master weights, '
        'autocast to bfloat16 on the CPU and on CUDA devices that support '
        'it, else float16 with dynamic loss scaling')
    parser.add_argument(
        '--amp-dtype', choices=['auto', 'bfloat16', 'float16'],
        help='the autocast dtype of --amp (default: auto)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. train_cfg.max_epochs=10')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args) -> Config:
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp_dtype is not None and not args.amp:
        raise SystemExit('--amp-dtype needs --amp')
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        else:
            # mmtpr's AmpOptimWrapper (default_scope 'mmtpr'): CPU and CUDA
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        if args.amp_dtype is not None:
            cfg.optim_wrapper.dtype = args.amp_dtype
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main():
    args = parse_args()
    cfg = build_cfg(args)
    setup_dist(cfg)  # gloo and no device_ids where there is no CUDA
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
