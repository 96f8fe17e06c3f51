"""The demo's DM-Adapter training loop, idle and under a competing CPU load.

Runs the DM-Adapter stage of ``tools/demo.py``
(``configs/demo/dm_adapter_tiny_synth.py``: frozen tiny CLIP, mixture of
adapters beside every MLP, batch 64 of 128x48 images, the config's data
loader over a generated SynthPedes) for a few dozen iterations, once on an
idle machine and once while ``--load`` busy processes (started by this
script: one pure-Python spin loop each) compete for the CPU, for several
settings, each in its own process, in interleaved rounds::

    python benchmarks/load_collapse.py                 # before vs after
    python benchmarks/load_collapse.py --variants before masked threads \\
        after --load 8 --iters 20 --rounds 2

and prints the median s/iter idle and loaded, the slowdown, and the CPU
the run lost: the CPU seconds per second of the training process, idle
over loaded (measured; spinning OpenMP threads count as CPU they got, so
this flatters the settings that spin). A slowdown no larger than the CPU
lost is proportional. It also prints the slowdown a fair share alone
would explain on an otherwise idle machine: with ``L`` busy processes on
``C`` cores, a process computing on ``n`` threads gets ``n * C / (L + n)``
cores instead of ``min(n, C)``, so ``min(n, C) * (L + n) / (n * C)``.

Settings (``--variants``):

- ``before``: the grouped expert dispatch (one small matrix product per
  expert and a ``counts.tolist()`` host sync per layer), PyTorch's default
  threads (one per core) and the config's data-loader workers (1), OpenMP's
  default wait policy;
- ``masked``: as ``before`` with the masked dispatch (the new default);
- ``passive``: as ``before`` with ``OMP_WAIT_POLICY=PASSIVE`` alone;
- ``after``: the masked dispatch and mmtpr's CPU thread policy
  (:func:`mmtpr.utils.threads.cpu_thread_plan`: threads, workers,
  ``OMP_WAIT_POLICY=PASSIVE``), as the demo would run with the policy
  applied;
- ``t1w0p``, ``t2w0p``, ``t2w1``: masked, with 1 or 2 threads, 0 or 1
  workers, passive or not: the policy's parts one by one.

The competing load and the data are made by the script itself (the data
once, under ``--work-dir``); the CLIP is randomly initialised (the step
costs the same as with the pre-trained one).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'dm_adapter_tiny_synth.py')

# name: expert dispatch, and threads / workers / OpenMP wait policy: None
# keeps PyTorch's and the config's defaults, 'policy' takes mmtpr's
# (mmtpr.utils.threads), a number sets it.
VARIANTS = {
    'before': dict(dispatch='grouped', threads=None, workers=None,
                   passive=False),
    'masked': dict(dispatch='masked', threads=None, workers=None,
                   passive=False),
    'passive': dict(dispatch='grouped', threads=None, workers=None,
                    passive=True),
    'after': dict(dispatch='masked', threads='policy', workers='policy',
                  passive=True),
    # the policy's parts one by one: threads, workers, passive waiting
    't1w0p': dict(dispatch='masked', threads=1, workers=0, passive=True),
    't2w0p': dict(dispatch='masked', threads=2, workers=0, passive=True),
    't2w1': dict(dispatch='masked', threads=2, workers=1, passive=False),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS),
                        default=['before', 'after'])
    parser.add_argument('--load', type=int, default=8,
                        help='busy processes of the competing load '
                        '(default: %(default)s)')
    parser.add_argument('--iters', type=int, default=16,
                        help='timed iterations per run')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--rounds', type=int, default=1,
                        help='interleaved rounds (each runs every variant '
                        'idle and loaded)')
    parser.add_argument('--max-seconds', type=float, default=240.0,
                        help='stop a run after this long (the s/iter of '
                        'the iterations done so far is reported)')
    parser.add_argument('--work-dir', default='work_dirs/load_collapse')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _cfg(args, dispatch: str, num_workers=None):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.pretrained = None
    cfg.model.backbone.petl[0]['dispatch'] = dispatch
    data_root = osp.abspath(osp.join(args.work_dir, 'synth_pedes_lowres'))
    cfg.train_dataloader.dataset.data_root = data_root
    if num_workers is not None:
        cfg.train_dataloader.num_workers = num_workers
        if num_workers == 0:
            cfg.train_dataloader.persistent_workers = False
    cfg.work_dir = osp.join(args.work_dir, 'runs')
    cfg.log_level = 'WARNING'
    return cfg


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def child(args) -> dict:
    """One run in this process: median s/iter of the training loop."""
    import torch

    import mmtpr  # noqa: F401
    from mmtpr.registry import RUNNERS
    from mmtpr.utils.threads import configure_cpu_threads
    variant = VARIANTS[args.child]
    plan = configure_cpu_threads(_plan(variant))
    workers = plan.num_workers if variant['workers'] is not None else None
    if variant['threads'] is None:
        torch.set_num_threads(plan.cpus)  # PyTorch's default
    cfg = _cfg(args, variant['dispatch'], workers)
    runner = RUNNERS.build(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.model.train()
    times, cpu_rates = [], []
    start_all = time.perf_counter()
    done = 0
    while done < args.warmup + args.iters:
        loader = runner.build_dataloader(cfg.train_dataloader)
        start = time.perf_counter()
        cpu = _cpu_seconds()
        for batch in loader:
            runner.model.train_step(batch, runner.optim_wrapper)
            end, cpu_end = time.perf_counter(), _cpu_seconds()
            times.append(end - start)
            cpu_rates.append((cpu_end - cpu) / (end - start))
            start, cpu = end, cpu_end
            done += 1
            if (done >= args.warmup + args.iters
                    or end - start_all > args.max_seconds):
                break
        if time.perf_counter() - start_all > args.max_seconds:
            break
    # the warm-up iterations count only if the time ran out before the
    # timed ones
    if len(times) > args.warmup:
        times, cpu_rates = times[args.warmup:], cpu_rates[args.warmup:]
    return dict(variant=args.child, s_iter=statistics.median(times),
                cpu_rate=statistics.median(cpu_rates), iters=len(times),
                threads=torch.get_num_threads(),
                workers=cfg.train_dataloader.num_workers)


def _spin() -> None:  # the competing load: one busy core-hog
    while True:
        pass


def start_load(n: int):
    code = 'while True:\n    pass\n'
    return [subprocess.Popen([sys.executable, '-c', code]) for _ in range(n)]


def stop_load(procs) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()


def _plan(variant: dict):
    from mmtpr.utils.threads import ThreadPlan, cpu_thread_plan
    workers = variant['workers']
    plan = cpu_thread_plan(
        num_workers=None if workers in (None, 'policy') else workers)
    threads = variant['threads']
    if isinstance(threads, int):
        plan = ThreadPlan(plan.cpus, threads, plan.num_workers)
    return plan


def child_env(name: str) -> dict:
    """The environment of one variant's process: OpenMP's settings are
    read when torch is loaded."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS',
                        'OMP_WAIT_POLICY', 'MMTPR_NUM_THREADS',
                        'MMTPR_NUM_WORKERS')}
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (ROOT, env.get('PYTHONPATH')) if p)
    env.setdefault('HF_HUB_OFFLINE', '1')
    variant = VARIANTS[name]
    if variant['threads'] is not None:
        threads = str(_plan(variant).num_threads)
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if variant['passive']:
        env['OMP_WAIT_POLICY'] = 'PASSIVE'
    return env


def run_child(args, name: str) -> dict:
    cmd = [sys.executable, __file__, '--child', name, '--iters',
           str(args.iters), '--warmup', str(args.warmup), '--max-seconds',
           str(args.max_seconds), '--work-dir', args.work_dir]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env=child_env(name), cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('{')]
    if out.returncode != 0 or not lines:
        sys.stderr.write(out.stdout[-2000:] + out.stderr[-3000:])
        raise SystemExit(f'variant {name} failed')
    return json.loads(lines[-1])


def prepare_data(args) -> None:
    """Generate the demo's low-resolution SynthPedes once."""
    from mmengine.registry import DefaultScope

    from mmtpr.registry import DATASETS
    cfg = _cfg(args, 'masked')
    with DefaultScope.overwrite_default_scope('mmtpr'):
        DATASETS.build(cfg.train_dataloader.dataset)


def fair_slowdown(threads: int, load: int, cpus: int) -> float:
    """How much longer ``threads`` busy threads take next to ``load`` busy
    processes on ``cpus`` cores, if the kernel shares the cores fairly."""
    busy = threads + load
    loaded = threads * min(1.0, cpus / busy)
    return min(threads, cpus) / loaded


def report(results: dict, args, cpus: int) -> None:
    print(f'\nDM-Adapter demo training loop (batch 64, 128x48, tiny CLIP), '
          f'{cpus} cores, load = {args.load} busy processes, median of '
          f'{args.rounds} round(s) x {args.iters} iterations')
    print('| setting | threads | workers | idle s/iter | loaded s/iter | '
          'slowdown | CPU lost (cpu/s idle / loaded) | slowdown / CPU lost '
          '| fair-share slowdown |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
    for name in args.variants:
        idle, loaded = results[(name, 'idle')], results[(name, 'loaded')]
        t_idle = statistics.median(r['s_iter'] for r in idle)
        t_load = statistics.median(r['s_iter'] for r in loaded)
        threads, workers = idle[0]['threads'], idle[0]['workers']
        slow = t_load / t_idle
        cpu_idle = statistics.median(r['cpu_rate'] for r in idle)
        cpu_load = statistics.median(r['cpu_rate'] for r in loaded)
        lost = cpu_idle / cpu_load if cpu_load > 0 else float('inf')
        fair = fair_slowdown(threads, args.load, cpus)
        print(f'| {name} | {threads} | {workers} | {t_idle:.3f} | '
              f'{t_load:.3f} | {slow:.2f}x | {lost:.2f}x '
              f'({cpu_idle:.2f} / {cpu_load:.2f}) | {slow / lost:.2f} | '
              f'{fair:.2f}x |')


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    sys.path.insert(0, ROOT)
    from mmtpr.utils.threads import available_cpus
    cpus = available_cpus()
    prepare_data(args)
    results = {}
    for round_ in range(args.rounds):
        for name in args.variants:
            for condition in ('idle', 'loaded'):
                procs = start_load(args.load) if condition == 'loaded' \
                    else []
                try:
                    time.sleep(0.5 if procs else 0)
                    res = run_child(args, name)
                finally:
                    stop_load(procs)
                results.setdefault((name, condition), []).append(res)
                print(f'round {round_ + 1} {name} {condition}: '
                      f'{res["s_iter"]:.3f} s/iter ({res["iters"]} iters, '
                      f'{res["threads"]} threads, {res["workers"]} workers,'
                      f' cpu/s {res["cpu_rate"]:.2f})', flush=True)
    report(results, args, cpus)


if __name__ == '__main__':
    main()
