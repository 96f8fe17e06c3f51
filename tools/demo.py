"""The embedded default job: UP-Person and DM-Adapter on generated data.

``python tools/demo.py`` runs, in one go, on a CPU and without any download:

1. pre-training: a tiny CLIP is trained from scratch with SDM on a generated
   SynthPedes dataset (``configs/demo/clip_tiny_synth.py``); its CLIP
   weights are written to ``<work-dir>/tiny_clip_pretrained.pth``;
2. the frozen tiny CLIP, without adapters, is evaluated on the test split
   of a target domain (``configs/demo/_target.py``: other identities,
   described in another annotator style by another camera);
3. UP-Person and DM-Adapter (``configs/demo/up_person_tiny_synth.py``,
   ``dm_adapter_tiny_synth.py``) each freeze that CLIP, train their PETL
   modules on the target domain, keep the checkpoint with the best
   validation R@1 and are evaluated on the same test split;

then prints the three rows with their trainable parameters, and the
``tools/test.py`` commands that reproduce each method's row (with the
config each run wrote to its work dir). The intra-op thread count is fixed
(``--threads``, default 2): parallel reductions sum in an order that
depends on it, so fixing it makes the printed numbers the same on every
machine load. ``--quick`` shrinks the data and the epochs of every stage
(a smoke run in about a minute; its numbers mean nothing).
"""
import argparse
import os
import os.path as osp
import time

# OpenMP reads its wait policy when torch loads: waiting threads sleep
# instead of spinning, which keeps a loaded machine from slowing the demo
# down far beyond its share of the CPU (mmtpr.utils.threads)
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from mmtpr.apis.export import export_clip_weights  # noqa: E402
from mmtpr.registry import RUNNERS  # noqa: E402
from mmtpr.utils.cli import add_debug_flag, run_tool  # noqa: E402
from mmtpr.utils.config import load_config  # noqa: E402

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                   'configs', 'demo')
METHODS = (('UP-Person', 'up_person_tiny_synth.py'),
           ('DM-Adapter', 'dm_adapter_tiny_synth.py'))
KEYS = ('R1', 'R5', 'R10', 'mAP', 'mINP')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='logs and checkpoints (default: %(default)s)')
    parser.add_argument('--threads', type=int, default=2,
                        help='intra-op threads (default: %(default)s; fixed '
                        'so that the numbers do not depend on the machine)')
    parser.add_argument('--data-dir', default='data',
                        help='where the generated source and target data '
                        'go (default: %(default)s)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny data and 2 epochs per stage: a smoke run')
    parser.add_argument(
        '--amp', action='store_true',
        help='mixed precision in every training stage (bfloat16 autocast '
        'on the CPU)')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def best_checkpoint(runner) -> str:
    best = runner.message_hub.get_info('best_ckpt')
    return best or osp.join(runner.work_dir, f'epoch_{runner.epoch}.pth')


# --quick: persons (train, val, test) with 2 images each, epochs per stage
QUICK_IDS, QUICK_EPOCHS = (24, 8, 8), 2


def _cfg(name: str, args, work_dir: str, weights: str) -> Config:
    cfg = load_config(osp.join(CONFIGS, name))
    cfg.work_dir = osp.join(args.work_dir, work_dir)
    if name != 'clip_tiny_synth.py':
        cfg.model.backbone.pretrained = weights
    if args.amp:
        cfg.optim_wrapper.type = 'AutocastOptimWrapper'
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        dataset.data_root = osp.join(args.data_dir,
                                     osp.basename(dataset.data_root))
        if args.quick:
            dataset.update(num_ids=QUICK_IDS, images_per_id=2)
    if args.quick:
        cfg.train_cfg.max_epochs = QUICK_EPOCHS
        cfg.param_scheduler[0].total_steps = QUICK_EPOCHS
    return cfg


def pretrain(args, weights: str) -> None:
    runner = RUNNERS.build(_cfg('clip_tiny_synth.py', args, 'pretrain',
                                weights))
    runner.train()
    export_clip_weights(best_checkpoint(runner), weights)


def adapt(name: str, args, weights: str) -> dict:
    cfg = _cfg(name, args, name[:-len('_tiny_synth.py')], weights)
    runner = RUNNERS.build(cfg)
    runner.train()
    best = best_checkpoint(runner)
    runner.load_checkpoint(best)
    metrics = runner.test()
    params = list(runner.model.parameters())
    config = osp.join(cfg.work_dir, name)  # the config the runner dumped
    return dict(metrics=metrics, checkpoint=best, config=config,
                trainable=sum(p.numel() for p in params if p.requires_grad),
                total=sum(p.numel() for p in params))


def frozen(args, weights: str) -> dict:
    runner = RUNNERS.build(_cfg('_target.py', args, 'frozen', weights))
    metrics = runner.test()
    params = list(runner.model.parameters())
    return dict(metrics=metrics, trainable=0,
                total=sum(p.numel() for p in params),
                meta=runner.test_dataloader.dataset.metainfo)


def _row(name: str, result: dict, base: dict) -> str:
    metrics = {k.split('/')[-1]: v for k, v in result['metrics'].items()}
    share = 100.0 * result['trainable'] / result['total']
    gain = '' if result is base else '  ({:+.2f} R1, {:+.2f} mAP)'.format(
        metrics['R1'] - base['R1'], metrics['mAP'] - base['mAP'])
    return (f"{name:<12} {result['trainable']:>9,} ({share:4.1f} %)  "
            + '  '.join(f'{metrics[k]:6.2f}' for k in KEYS) + gain)


def report(args, base: dict, results: dict, timings: dict) -> None:
    meta = base['meta']
    base_metrics = {k.split('/')[-1]: v for k, v in base['metrics'].items()}
    lines = ['', '=' * 86,
             f"SynthPedes target domain (captions 'terse', camera 'cctv'): "
             f"{meta['num_captions']} text queries, {meta['num_images']} "
             f"gallery images, {meta['num_pids']} identities unseen in "
             'training',
             f"{'method':<12} {'trainable':>19}  " + '  '.join(
                 f'{k:>6}' for k in KEYS),
             _row('frozen CLIP', base, base)]
    base_row = dict(base, **{'R1': base_metrics['R1'],
                             'mAP': base_metrics['mAP']})
    for name, result in results.items():
        lines.append(_row(name, result, base_row))
    lines.append(f'chance R@1 = {100.0 / meta["num_pids"]:.2f}; intra-op '
                 f'threads: {args.threads}')
    lines.append('time: ' + ', '.join(f'{k} {v:.0f} s'
                                      for k, v in timings.items())
                 + f' (total {sum(timings.values()):.0f} s)')
    lines.append('reproduce each row from its checkpoint (with the config '
                 'the run wrote):')
    for result in results.values():
        lines.append(f'  OMP_NUM_THREADS={args.threads} python tools/test.py '
                     f"{osp.relpath(result['config'])} "
                     f"{osp.relpath(result['checkpoint'])}")
    lines.append('=' * 86)
    print('\n'.join(lines))


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    weights = osp.join(args.work_dir, 'tiny_clip_pretrained.pth')
    timings, results = {}, {}
    start = time.time()
    pretrain(args, weights)
    timings['pre-training'] = time.time() - start
    start = time.time()
    base = frozen(args, weights)
    timings['frozen test'] = time.time() - start
    for name, config in METHODS:
        start = time.time()
        results[name] = adapt(config, args, weights)
        timings[name] = time.time() - start
    report(args, base, results, timings)
    return dict(frozen=base, **results)


if __name__ == '__main__':
    run_tool(main)
