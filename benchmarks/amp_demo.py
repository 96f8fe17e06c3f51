"""Mixed precision on the embedded demo: metrics and step time vs float32.

Trains the DM-Adapter stage of ``tools/demo.py``
(``configs/demo/dm_adapter_tiny_synth.py``: a frozen tiny CLIP pre-trained
on SynthPedes, adapted to a low-resolution domain) with the same seed in
three ways, each in its own process, and prints the test metrics of the
best-validation checkpoint, the median training-step time and the peak
memory side by side::

    python benchmarks/amp_demo.py [--variants fp32 amp amp_frozen_bf16]

- ``fp32``: MMEngine's ``OptimWrapper``, everything in float32;
- ``amp``: mmtpr's ``AutocastOptimWrapper`` (``--amp``): float32 weights,
  bfloat16 autocast on the CPU (bfloat16 or float16 on CUDA);
- ``amp_frozen_bf16``: as ``amp``, with the frozen CLIP weights stored in
  bfloat16 (``model.backbone.frozen_dtype='bfloat16'``).

``--timing`` measures only the step time, more fairly on a noisy machine:
the three variants are built in one process and take turns (interleaved
rounds of training steps on the same batch), so noise hits them alike.

The pre-trained tiny CLIP is the demo's
(``work_dirs/demo/tiny_clip_pretrained.pth``); it is trained first (about 5
minutes, float32) if it is not there.
"""
import argparse
import importlib.util
import json
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'dm_adapter_tiny_synth.py')
PRETRAIN_CONFIG = osp.join(ROOT, 'configs', 'demo', 'clip_tiny_synth.py')
VARIANTS = ('fp32', 'amp', 'amp_frozen_bf16')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variants', nargs='+', choices=VARIANTS,
                        default=list(VARIANTS))
    parser.add_argument('--work-dir', default='work_dirs/amp_demo')
    parser.add_argument(
        '--pretrained', default='work_dirs/demo/tiny_clip_pretrained.pth',
        help='the tiny CLIP of the demo (trained first if missing)')
    parser.add_argument('--timing', action='store_true',
                        help='interleaved step timing only (no training '
                        'to the end, no metrics)')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--steps', type=int, default=5,
                        help='steps per variant per round (--timing)')
    parser.add_argument('--run-variant', choices=VARIANTS,
                        help=argparse.SUPPRESS)
    return parser.parse_args()


def pretrain(weights: str, work_dir: str) -> None:
    """Run the demo's pre-training stage and export its CLIP weights."""
    from mmengine.config import Config

    from mmtpr.registry import RUNNERS
    spec = importlib.util.spec_from_file_location(
        'demo', osp.join(ROOT, 'tools', 'demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    cfg = Config.fromfile(PRETRAIN_CONFIG)
    cfg.work_dir = osp.join(work_dir, 'pretrain')
    runner = RUNNERS.build(cfg)
    runner.train()
    demo.export_clip(demo.best_checkpoint(runner), weights)


def variant_cfg(name: str, args):
    """The demo's DM-Adapter config for one variant."""
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.pretrained = args.pretrained
    cfg.work_dir = osp.join(args.work_dir, name)
    cfg.default_hooks.logger.interval = 10
    if name != 'fp32':
        cfg.optim_wrapper.type = 'AutocastOptimWrapper'
    if name == 'amp_frozen_bf16':
        cfg.model.backbone.frozen_dtype = 'bfloat16'
    return cfg


def timing(args) -> None:
    """Interleaved step timing of the variants on one fixed batch."""
    import torch

    import mmtpr  # noqa: F401
    from mmtpr.registry import RUNNERS
    runners = {}
    for name in args.variants:
        runner = RUNNERS.build(variant_cfg(name, args))
        runner.optim_wrapper = runner.build_optim_wrapper(
            runner.optim_wrapper)
        runner.model.train()
        runners[name] = runner
    first = next(iter(runners.values()))
    batch = next(iter(first.build_dataloader(first.cfg.train_dataloader)))
    times = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, runner in runners.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                runner.model.train_step(batch, runner.optim_wrapper)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times[args.variants[0]][1:])
    print(f'\nDM-Adapter demo step, batch {len(batch["inputs"])}, '
          f'{args.rounds} interleaved rounds x {args.steps} steps, '
          f'{torch.get_num_threads()} threads')
    print(f"{'variant':<16} {'median s/step':>14} {'vs first':>9}")
    for name, values in times.items():
        median = statistics.median(values[1:])
        print(f'{name:<16} {median:14.4f} {median / base:8.2f}x')


def run_variant(name: str, args) -> dict:
    """Train and test one variant in this process; return its numbers."""
    import mmtpr  # noqa: F401
    from mmtpr.registry import RUNNERS
    runner = RUNNERS.build(variant_cfg(name, args))
    start = time.time()
    runner.train()
    train_seconds = time.time() - start
    times = list(runner.message_hub.get_scalar('train/time').data[0])
    best = runner.message_hub.get_info('best_ckpt')
    runner.load_checkpoint(best)
    metrics = runner.test()
    return dict(
        variant=name,
        step_s=statistics.median(times[5:] or times),
        train_s=train_seconds,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        metrics={k.split('/')[-1]: v for k, v in metrics.items()})


def main():
    args = parse_args()
    if args.run_variant:
        result = run_variant(args.run_variant, args)
        print('RESULT ' + json.dumps(result))
        return
    if not osp.isfile(args.pretrained):
        print(f'{args.pretrained} not found: pre-training the tiny CLIP')
        pretrain(args.pretrained, osp.dirname(args.pretrained) or '.')
    if args.timing:
        timing(args)
        return
    results = []
    for name in args.variants:
        cmd = [sys.executable, __file__, '--run-variant', name,
               '--work-dir', args.work_dir, '--pretrained', args.pretrained]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        lines = [ln for ln in out.stdout.splitlines()
                 if ln.startswith('RESULT ')]
        if out.returncode != 0 or not lines:
            sys.stderr.write(out.stdout[-3000:] + out.stderr[-3000:])
            raise SystemExit(f'variant {name} failed')
        results.append(json.loads(lines[-1][len('RESULT '):]))
        print(f'{name}: done in {results[-1]["train_s"]:.0f} s', flush=True)

    base = results[0]
    print(f'\nDM-Adapter stage of the demo, {len(results)} runs, same seed; '
          f"test split; step time = median of the runs' iterations")
    print(f"{'variant':<16} {'s/step':>7} {'vs ' + base['variant']:>9} "
          f"{'peak MB':>8} {'R1':>6} {'dR1':>6} {'R5':>6} {'mAP':>6} "
          f"{'mINP':>6}")
    for res in results:
        m = res['metrics']
        print(f"{res['variant']:<16} {res['step_s']:7.3f} "
              f"{res['step_s'] / base['step_s']:8.2f}x "
              f"{res['peak_rss_mb']:8.0f} {m['R1']:6.2f} "
              f"{m['R1'] - base['metrics']['R1']:+6.2f} {m['R5']:6.2f} "
              f"{m['mAP']:6.2f} {m['mINP']:6.2f}")


if __name__ == '__main__':
    main()
