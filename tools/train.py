"""Train a model: ``python tools/train.py CONFIG [--work-dir DIR] ...``."""
import argparse
import os

# OpenMP reads its wait policy when torch loads: waiting threads sleep
# instead of spinning (mmtpr.utils.threads; kept if the user set it)
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

from mmengine.config import Config, DictAction  # noqa: E402

from mmtpr.utils.cli import add_debug_flag, run_tool  # noqa: E402
from mmtpr.utils.config import (  # noqa: E402
    collect_in_work_dir,
    default_work_dir,
    load_config,
    set_data_root,
)
from mmtpr.utils.errors import ConfigError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an mmtpr model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/ plus the config path under '
                        'configs/, e.g. work_dirs/up_person/clip_b16_cuhk)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or without a value from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--data-root',
        help='data_root of every split (train, val and test) of the config')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision training: float32 master weights, '
        'autocast to bfloat16 on the CPU and on CUDA devices that support '
        'it, else float16 with dynamic loss scaling')
    parser.add_argument(
        '--amp-dtype', choices=['auto', 'bfloat16', 'float16'],
        help='the autocast dtype of --amp (default: auto)')
    parser.add_argument(
        '--tensorboard', action='store_true',
        help='also log to TensorBoard (event files under the work dir; '
        'needs `pip install tensorboard`)')
    parser.add_argument(
        '--monitor-test', action='store_true',
        help="also evaluate the TEST split after every epoch, as the papers' "
        'reference code did, and report its best epoch next to the '
        'validation-selected one (for comparing with published tables; '
        'never used for model selection)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. train_cfg.max_epochs=10')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _set_amp(cfg: Config, dtype) -> None:
    kind = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if kind in ('AutocastOptimWrapper', 'AmpOptimWrapper'):
        print(f'AMP is already enabled in the config ({kind}).')
    else:
        cfg.optim_wrapper.type = 'AutocastOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if dtype is not None:
        cfg.optim_wrapper.dtype = dtype


def build_cfg(args) -> Config:
    if args.amp_dtype is not None and not args.amp:
        raise ConfigError('--amp-dtype needs --amp')
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    if args.data_root is not None:
        set_data_root(cfg, args.data_root)
    if args.amp:
        _set_amp(cfg, args.amp_dtype)
    if args.monitor_test:
        hooks = list(cfg.get('custom_hooks') or [])
        hooks.append(dict(type='TestSplitMonitorHook'))
        cfg.custom_hooks = hooks
    if args.tensorboard:
        from mmtpr.visualization import add_tensorboard
        add_tensorboard(cfg)
    collect_in_work_dir(cfg)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    from mmtpr.apis import preflight
    from mmtpr.registry import RUNNERS
    from mmtpr.utils import setup_dist
    preflight(cfg, ('train_dataloader', 'val_dataloader'))
    setup_dist(cfg)  # gloo and no device_ids where there is no CUDA
    import torch
    if cfg.launcher == 'none' and not torch.cuda.is_available():
        from mmtpr.utils.threads import configure_cpu_threads
        configure_cpu_threads()
    runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    run_tool(main)
