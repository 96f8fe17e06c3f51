"""The embedded default job: train and evaluate on generated data, on a CPU.

``python tools/demo.py`` generates SynthPedes (if not there yet), trains the
tiny CLIP of ``configs/demo/clip_tiny_synth.py`` with the SDM loss, picks the
checkpoint with the best validation R@1, evaluates it on the held-out test
identities, prints R@1/R@5/R@10/mAP/mINP next to chance, and prints the
``tools/test.py`` command that reproduces those numbers from the saved
checkpoint.
"""
import argparse
import os.path as osp
import time

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmtpr  # noqa: F401  (registries, checkpoint-loading fix)

DEFAULT_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'demo',
    'clip_tiny_synth.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='config of the demo (default: %(default)s)')
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='logs and checkpoints (default: %(default)s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. train_cfg.max_epochs=5')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir
    runner = Runner.from_cfg(cfg)

    start = time.time()
    runner.train()
    train_time = time.time() - start

    best = runner.message_hub.get_info('best_ckpt')
    if best is None:
        best = osp.join(runner.work_dir, f'epoch_{runner.epoch}.pth')
    runner.load_checkpoint(best)
    start = time.time()
    metrics = runner.test()
    test_time = time.time() - start

    meta = runner.test_dataloader.dataset.metainfo
    chance = 100.0 / meta['num_pids']  # images per id / gallery size
    print('\n' + '=' * 64)
    print(f'SynthPedes test split: {meta["num_captions"]} text queries, '
          f'{meta["num_images"]} gallery images, {meta["num_pids"]} '
          'unseen identities')
    print(f'checkpoint (best validation R@1): {best}')
    print(' '.join(f'{k.split("/")[-1]}={v:.2f}' for k, v in metrics.items()))
    r1 = metrics['tpr/R1']
    print(f'chance R@1 = {chance:.2f}; R@1 is {r1 / chance:.1f}x chance')
    print(f'training {train_time:.0f} s, test {test_time:.0f} s')
    print('reproduce: python tools/test.py '
          f'{osp.relpath(args.config)} {osp.relpath(best)}')
    print('=' * 64)


if __name__ == '__main__':
    main()
