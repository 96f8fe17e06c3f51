"""Print the ids, images and captions of every split of a config's data.

``python tools/dataset_stats.py CONFIG [--check-images header|decode|none]
[--skip-bad-records]``

Builds the train, val and test datasets of the config (without loading
any image into memory; the images are checked as the datasets would check
them in training), prints one line per split and compares it with the
sizes published for the dataset (``PUBLISHED_SIZES`` of its class). A
difference is reported as a warning, and the exit status is 1 so that
scripts can stop on it; 0 when everything matches or nothing is published
(e.g. the synthetic dataset).
"""
import argparse
import copy
import logging
from typing import Optional, Tuple

from mmengine.config import ConfigDict, DictAction
from mmengine.logging import print_log

from mmtpr.registry import DATASETS
from mmtpr.utils.cli import add_debug_flag, run_tool
from mmtpr.utils.config import leaf_dataset_cfgs, load_config, set_data_root

LOADERS = (('train', 'train_dataloader'), ('val', 'val_dataloader'),
           ('test', 'test_dataloader'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Print ids / images / captions per split of the '
        'datasets of a config, and compare them with the published sizes')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--check-images', choices=['header', 'decode', 'none'],
        help="override the datasets' image check (default: the config's, "
        "else 'header')")
    parser.add_argument(
        '--skip-bad-records', action='store_true',
        help='skip and count bad records instead of failing on the first')
    parser.add_argument(
        '--data-root',
        help='data_root of every split (train, val and test) of the config')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def split_stats(dataset_cfg: ConfigDict, args) -> Tuple[object, dict]:
    """Build one dataset (no pipeline) and return it and its counts."""
    dataset_cfg = copy.deepcopy(dataset_cfg)
    dataset_cfg['pipeline'] = []
    if args.check_images is not None:
        dataset_cfg['check_images'] = args.check_images
    if args.skip_bad_records:
        dataset_cfg['skip_bad_records'] = True
    dataset = DATASETS.build(dataset_cfg)
    meta = dataset.metainfo
    return dataset, {
        key: meta[key]
        for key in ('num_pids', 'num_images', 'num_captions', 'num_skipped')
    }


def compare(dataset, split: str, stats: dict) -> Optional[str]:
    """A message if ``stats`` differ from the published sizes, else None."""
    published = getattr(dataset, 'PUBLISHED_SIZES', {}).get(split)
    if published is None:
        return None
    found = (stats['num_pids'], stats['num_images'], stats['num_captions'])
    if tuple(published) == found:
        return None
    names = ('ids', 'images', 'captions')
    diffs = ', '.join(f'{name} {got} (published {want})'
                      for name, got, want in zip(names, found, published)
                      if got != want)
    return (f'{type(dataset).__name__} {split}: {diffs}. Check data_root '
            "and the annotation file (a subset? another release?)")


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    if args.data_root is not None:
        set_data_root(cfg, args.data_root)

    header = (f"{'dataset':<12} {'split':<6} {'ids':>7} {'images':>8} "
              f"{'captions':>9} {'skipped':>8}  published (ids/images/"
              'captions)')
    rows, warnings = [header], []
    for split_name, loader_key in LOADERS:
        loader = cfg.get(loader_key)
        if not loader:
            rows.append(f"{'-':<12} {split_name:<6} no {loader_key} in the "
                        'config (e.g. ICFG-PEDES has no val split)')
            continue
        for dataset_cfg in leaf_dataset_cfgs(loader['dataset']):
            dataset, stats = split_stats(dataset_cfg, args)
            split = dataset.split
            published = getattr(dataset, 'PUBLISHED_SIZES', {}).get(split)
            published = ('/'.join(f'{n:,}' for n in published)
                         if published else 'none published')
            rows.append(
                f'{type(dataset).__name__:<12} {split:<6} '
                f"{stats['num_pids']:>7,} {stats['num_images']:>8,} "
                f"{stats['num_captions']:>9,} {stats['num_skipped']:>8,}  "
                f'{published}')
            problem = compare(dataset, split, stats)
            if problem is not None:
                warnings.append(problem)
    print('\n'.join(rows))
    for problem in warnings:
        print_log(f'differs from the published sizes: {problem}',
                  logger='current', level=logging.WARNING)
    return 1 if warnings else 0


if __name__ == '__main__':
    run_tool(main)
