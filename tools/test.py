"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``.

Cross-dataset evaluation: ``--dataset icfg`` (or ``cuhk``, ``rstp``, or the
path of any config file with a ``test_dataloader``) evaluates on that
dataset's test split, with the model's own test pipeline (image size and
context length belong to the model). ``--out results.pkl`` (or ``.json``)
also writes the per-query results (see docs/evaluation_output.md), and
``--i2t`` adds the image-to-text metrics. The checkpoint must fit the
config (keys, shapes and the model it records); ``--non-strict`` loads
what fits.
"""
import argparse
import copy
import os
import os.path as osp

from mmengine.config import DictAction

from mmtpr.utils.cli import add_debug_flag, run_tool
from mmtpr.utils.config import (
    collect_in_work_dir,
    default_work_dir,
    load_config,
    set_data_root,
    update_tpr_metrics,
)
from mmtpr.utils.errors import ConfigError
from mmtpr.utils.fileio import check_regular_file

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# --dataset NAME -> the dataset config whose test_dataloader is used.
DATASETS = {
    'cuhk': 'configs/_base_/datasets/cuhk_pedes.py',
    'icfg': 'configs/_base_/datasets/icfg_pedes.py',
    'rstp': 'configs/_base_/datasets/rstpreid.py',
}
# Arguments of the test dataset that stay those of the main config.
KEPT_DATASET_KEYS = ('pipeline', )
OUT_EXTENSIONS = ('.pkl', '.pickle', '.json')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Evaluate an mmtpr checkpoint on the test split')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the test logs go '
                        '(default: as tools/train.py)')
    parser.add_argument(
        '--dataset', metavar='NAME_OR_FILE',
        help='evaluate on another dataset: one of '
        f'{", ".join(DATASETS)} or a config file with a test_dataloader, '
        "whose test dataset replaces the config's (its test pipeline is "
        'kept)')
    parser.add_argument('--data-root', help='data_root of the test dataset')
    parser.add_argument('--split', choices=['val', 'test'],
                        help='split of the test dataset')
    parser.add_argument(
        '--out', metavar='FILE',
        help='also write the per-query results (top-k, AP, INP, ...) to '
        'FILE, .pkl or .json (see docs/evaluation_output.md)')
    parser.add_argument(
        '--show-dir', metavar='DIR',
        help='write pictures of a sample of test queries (the caption '
        'above its top-10 images, correct person framed green, others '
        "red) into DIR; they also go to the config's vis backends")
    parser.add_argument('--show-num', type=int, default=20,
                        help='how many queries --show-dir draws (evenly '
                        'spaced over the split; default: %(default)s)')
    parser.add_argument('--i2t', action='store_true',
                        help='also report image-to-text metrics')
    parser.add_argument('--amp', action='store_true',
                        help='evaluate under bfloat16 autocast')
    parser.add_argument(
        '--non-strict', action='store_true',
        help='load a checkpoint that does not fit the config (what fits is '
        'loaded; the rest keeps the config\'s weights)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'test_dataloader.dataset.data_root=data/ICFG-PEDES')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.dataset is not None:
        args.dataset = resolve_dataset(args.dataset, parser)
    if args.out is not None:
        check_out_file(args.out, parser)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def check_out_file(out: str, parser) -> None:
    """Refuse an --out that cannot be written, before any work."""
    if osp.splitext(out)[1].lower() not in OUT_EXTENSIONS:
        parser.error(f'--out must end with one of {OUT_EXTENSIONS}, got '
                     f"'{out}'")
    if osp.isdir(out):
        parser.error(f"--out '{out}' is a directory; give a file name")
    parent = osp.dirname(osp.abspath(out))
    while not osp.exists(parent):
        parent = osp.dirname(parent)
    if not osp.isdir(parent) or not os.access(parent, os.W_OK):
        parser.error(f"--out '{out}' cannot be written ('{parent}' is not a "
                     'writable directory)')


def resolve_dataset(name_or_file, parser):
    """The config file that ``--dataset`` names; exits with a message
    listing the valid names if there is none."""
    if name_or_file in DATASETS:
        path = osp.join(REPO_ROOT, DATASETS[name_or_file])
        if not osp.isfile(path):
            parser.error(f"--dataset {name_or_file}: '{path}' not found")
        return path
    if osp.isfile(name_or_file):
        return name_or_file
    if name_or_file.endswith('.py') or os.sep in name_or_file:
        parser.error(f"--dataset: config file '{name_or_file}' not found")
    parser.error(f"--dataset: unknown dataset '{name_or_file}'; valid names "
                 f'are {", ".join(DATASETS)}, or give the path of a config '
                 'file with a test_dataloader')


def replace_test_dataset(cfg, dataset_file):
    """Replace the test dataset of ``cfg`` by that of ``dataset_file``.

    Everything that describes the data (``type``, ``data_root``, ``split``,
    ``ann_file`` and the dataset's own arguments) comes from
    ``dataset_file``'s ``test_dataloader.dataset``; the test ``pipeline``
    stays that of ``cfg``, which belongs to the model.
    """
    other = load_config(dataset_file)
    loader = other.get('test_dataloader')
    if not loader or not loader.get('dataset'):
        raise ConfigError(f"--dataset: '{dataset_file}' has no "
                          'test_dataloader.dataset')
    dataset = copy.deepcopy(loader['dataset'].to_dict())
    if 'type' not in dataset:
        raise ConfigError(f"--dataset: the test dataset of '{dataset_file}'"
                          ' has no type')
    main = cfg.test_dataloader.dataset
    for key in KEPT_DATASET_KEYS:
        dataset.pop(key, None)
        if key in main:
            dataset[key] = main[key]
    cfg.test_dataloader.dataset = dataset


def build_config(args):
    """The config to test with, from the command-line arguments."""
    cfg = load_config(args.config, args.cfg_options)
    if args.dataset is not None:
        replace_test_dataset(cfg, args.dataset)
    if args.data_root is not None:
        set_data_root(cfg, args.data_root, ('test_dataloader', ))
    if args.split is not None:
        cfg.test_dataloader.dataset.split = args.split
    metric_args = {}
    if args.out is None and args.show_dir is not None:
        # the pictures are drawn from the per-query results
        args.out = osp.join(args.show_dir, 'results.pkl')
    if args.out is not None:
        metric_args['out_file'] = args.out
    if args.i2t:
        metric_args['directions'] = ('t2i', 'i2t')
    if metric_args:
        # A copy, so that a val_evaluator it was assigned from is unchanged.
        cfg.test_evaluator = copy.deepcopy(cfg.test_evaluator)
        if update_tpr_metrics(cfg.test_evaluator, **metric_args) == 0:
            raise ConfigError('--out and --i2t need a TPRMetric in '
                              f'test_evaluator, got {cfg.test_evaluator}')
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)
    cfg.load_from = args.checkpoint
    cfg.load_strict = not args.non_strict
    cfg.resume = False
    collect_in_work_dir(cfg)
    return cfg


def describe_dataset(dataset):
    """One line naming the test dataset."""
    parts = [str(dataset.get('type'))]
    for key in ('split', 'data_root', 'ann_file'):
        if dataset.get(key) is not None:
            parts.append(f'{key}={dataset[key]}')
    return ' '.join(parts)


def main(argv=None):
    args = parse_args(argv)
    check_regular_file(args.checkpoint, 'checkpoint')
    cfg = build_config(args)
    from mmengine.dist import is_main_process
    from mmengine.fileio import load

    from mmtpr.apis import preflight
    from mmtpr.registry import RUNNERS
    from mmtpr.utils import setup_dist
    preflight(cfg, ('test_dataloader', ))
    setup_dist(cfg)  # gloo and no device_ids where there is no CUDA
    runner = RUNNERS.build(cfg)
    runner.logger.info('Evaluating on '
                       f'{describe_dataset(cfg.test_dataloader.dataset)}')
    metrics = runner.test()
    if is_main_process():  # every rank has the metrics: print them once
        if args.out is not None:
            print(f'Per-query results written to {osp.abspath(args.out)}')
        print(' '.join(f'{k}: {v:.2f}' for k, v in metrics.items()))
        if args.show_dir is not None:
            written = runner.visualizer.draw_test_results(
                load(args.out), args.show_dir, args.show_num)
            print(f'{len(written)} pictures written to {args.show_dir}')
    return metrics


if __name__ == '__main__':
    run_tool(main)
