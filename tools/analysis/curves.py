"""Print the training curves that TensorBoard shows, as a table.

``python tools/analysis/curves.py WORK_DIR [--tags loss tpr/R1 ...]``

Reads the event file that ``tools/train.py --tensorboard`` wrote under
``WORK_DIR/<timestamp>/vis_data/`` (the newest run's) and prints one row per
scalar: points, first, minimum, maximum and last value, and the step of the
last point. For a server without a browser, or to paste numbers into a
report; ``tensorboard --logdir WORK_DIR`` draws the same curves.
"""
import argparse
import glob
import os.path as osp

from mmtpr.utils.cli import add_debug_flag, run_tool
from mmtpr.utils.errors import ConfigError, MissingFileError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Print the TensorBoard scalars of a training run')
    parser.add_argument('work_dir', help='the work dir of a run trained '
                        'with --tensorboard')
    parser.add_argument('--tags', nargs='+',
                        help='only these scalars (default: all)')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def event_file(work_dir: str) -> str:
    """The newest run's event file under ``work_dir``."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                      'events.out.tfevents.*')))
    if not files:
        raise MissingFileError(
            f"no TensorBoard event file under '{work_dir}' "
            '(<timestamp>/vis_data/events.out.tfevents.*): train with '
            'tools/train.py --tensorboard')
    return files[-1]


def read_scalars(path: str) -> dict:
    """tag -> [(step, value), ...] of the event file ``path``."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import (
            EventAccumulator,
        )
    except ImportError:
        raise ConfigError('reading event files needs the tensorboard '
                          'package: pip install -e ".[tensorboard]"') from None
    events = EventAccumulator(path, size_guidance={'scalars': 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in sorted(events.Tags()['scalars'])}


def table(scalars: dict) -> str:
    lines = ['| scalar | points | first | min | max | last | last step |',
             '|---|---:|---:|---:|---:|---:|---:|']
    for tag, points in scalars.items():
        values = [v for _, v in points]
        lines.append(f'| {tag} | {len(points)} | {values[0]:.4g} | '
                     f'{min(values):.4g} | {max(values):.4g} | '
                     f'{values[-1]:.4g} | {points[-1][0]} |')
    return '\n'.join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    path = event_file(args.work_dir)
    scalars = read_scalars(path)
    if args.tags:
        missing = [t for t in args.tags if t not in scalars]
        if missing:
            raise ConfigError(f'{path} has no scalar {missing}; it has '
                              f'{sorted(scalars)}')
        scalars = {t: scalars[t] for t in args.tags}
    print(f'{path}:')
    print(table(scalars))
    return scalars


if __name__ == '__main__':
    run_tool(main)
