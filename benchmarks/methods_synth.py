"""The methods side by side on SynthPedes: one command, one table.

``python benchmarks/methods_synth.py [--quick]``

1. pre-trains the demo's tiny CLIP once on the source domain
   (``configs/demo/clip_tiny_synth.py``; cached in the work dir);
2. on each target domain (A: captions 'terse', camera 'cctv'; B:
   'detailed', 'streetlight'; other identities than pre-training), for each
   row (frozen CLIP, full fine-tuning, projections only, UP-Person and each
   of its parts, DM-Adapter and two ablations), picks the learning rate
   with the best validation R@1 over the same grid for every row (seed 0),
   then trains it with each seed and evaluates the best-validation
   checkpoint on the test split;
3. trains DM-Adapter on A and B together, with one shared domain prompt and
   with one prompt per domain, and tests it on each domain;
4. prints a Markdown table (mean +- std over the seeds) and writes it with
   every run to ``<work-dir>/methods_synth.json``.

Every run is a subprocess of its own (its peak RSS is its own), with the
same threads, epochs and data; ``--jobs`` runs that many at a time (the
default, 2 runs of 1 thread on a 2-core machine, finishes the full table
in about an hour). A finished run keeps its ``record.json`` and is not run
again (delete the work dir to start over). ``--quick`` runs one seed, one
learning rate, three rows and one small domain: a smoke run for CI.
"""
import argparse
import concurrent.futures
import json
import os
import os.path as osp
import re
import resource
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(ROOT, 'configs', 'demo')
UP = [dict(type='ScaledPrefix', length=10, sp_init=100.0),
      dict(type='KVLoRA', rank=8), dict(type='LNAdapter', reduction=8)]
MOA = dict(type='MixtureOfAdapters', num_experts=6, top_k=2, reduction=8,
           scales=dict(visual=1.0, text=1.0))
# row -> (what trains, PETL techniques, extra MixtureOfAdapters options)
ROWS = {
    'frozen CLIP': dict(train=False),
    'full fine-tuning': dict(freeze=False),
    'projections only': dict(train_projections=True),
    'UP-Person': dict(petl=UP),
    '  S-Prefix only': dict(petl=UP[:1]),
    '  KV-LoRA only': dict(petl=UP[1:2]),
    '  L-Adapter only': dict(petl=UP[2:]),
    'DM-Adapter': dict(petl=[MOA], aux=True),
    '  no domain term (alpha=0)': dict(petl=[dict(MOA, domain_term=False)],
                                       aux=True),
    '  dense routing (top-k=E)': dict(petl=[dict(MOA, top_k=6)], aux=True),
}
MULTI = {
    'DM-Adapter on A+B, shared prompt': dict(num_domains=1),
    'DM-Adapter on A+B, prompt per domain': dict(num_domains=2),
}
DOMAINS = {
    'A': dict(caption_style='terse', camera='cctv', seed=0),
    'B': dict(caption_style='detailed', camera='streetlight', seed=2),
}
QUICK_ROWS = ('frozen CLIP', 'UP-Person', 'DM-Adapter')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir',
                        help='runs and the JSON (default: '
                        'work_dirs/methods_synth, with --quick '
                        'work_dirs/methods_synth_quick)')
    parser.add_argument('--data-dir',
                        help='generated data (default: data/methods_synth, '
                        'with --quick data/methods_synth_quick)')
    parser.add_argument('--quick', action='store_true',
                        help='one seed, one lr, three rows, domain A, '
                        'small data: a smoke run')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--lrs', type=float, nargs='+',
                        default=[3e-4, 1e-3, 3e-3],
                        help='the learning-rate grid of every row')
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1,
                        help='intra-op threads of each run')
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs at a time (default: %(default)s)')
    parser.add_argument('--run-one', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.lrs, args.epochs = [0], [3e-3], 2
    suffix = '_quick' if args.quick else ''
    args.work_dir = args.work_dir or f'work_dirs/methods_synth{suffix}'
    args.data_dir = args.data_dir or f'data/methods_synth{suffix}'
    return args


def sizes(args) -> dict:
    """Identities (train, val, test) of the pre-training and target data."""
    if args.quick:
        return dict(source=(60, 10, 10), target=(40, 10, 20))
    return dict(source=(400, 50, 50), target=(200, 50, 100))


def synth(args, name: str, **options) -> dict:
    ids = sizes(args)['source' if name == 'source' else 'target']
    return dict(type='SynthPedes', data_root=osp.join(args.data_dir, name),
                num_ids=ids, images_per_id=4, image_size=(192, 64),
                generate=True, **options)


# -- one run, in a subprocess -------------------------------------------------
def run_config(spec: dict):
    """The config of one run described by ``spec`` (a JSON dict)."""
    from mmtpr.utils.config import load_config
    row = _row(spec)
    cfg = load_config(osp.join(DEMO, '_target.py'))
    cfg.work_dir = spec['work_dir']
    cfg.randomness = dict(seed=spec['seed'], deterministic=False)
    backbone = cfg.model.backbone
    backbone['pretrained'] = spec['pretrained']
    backbone['freeze'] = row.get('freeze', True)  # Dict.freeze is a method
    backbone['train_projections'] = row.get('train_projections', False)
    petl = [dict(p) for p in row.get('petl', [])]
    if 'num_domains' in row:
        petl = [dict(MOA, num_domains=row['num_domains'])]
        row['aux'] = True
    backbone['petl'] = petl
    if row.get('aux'):
        cfg.model.aux_loss = dict(type='LoadBalanceLoss', loss_weight=0.5)
        cfg.optim_wrapper.paramwise_cfg = dict(custom_keys={
            'bias': dict(lr_mult=2.0, decay_mult=0.0)})
    cfg.optim_wrapper.optimizer.lr = spec['lr']
    cfg.train_cfg.max_epochs = spec['epochs']
    cfg.param_scheduler[0].total_steps = spec['epochs']
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset = _dataset(spec, split, row, loader.dataset.pipeline)
    return cfg


def _dataset(spec: dict, split: str, row: dict, pipeline: list) -> dict:
    targets = spec['datasets']
    if split == 'test' or len(targets) == 1:
        index = spec.get('test_index', 0) if split == 'test' else 0
        return dict(targets[index], split=split, pipeline=pipeline,
                    domain=min(index, row.get('num_domains', 1) - 1))
    offset = spec['val_offsets'] if split == 'val' else spec['offsets']
    return dict(type='ConcatDataset', datasets=[
        dict(t, split=split, pid_offset=offset[i], pipeline=pipeline,
             domain=min(i, row.get('num_domains', 1) - 1))
        for i, t in enumerate(targets)])


def _row(spec: dict) -> dict:
    """The settings of the row ``spec`` runs (a copy)."""
    return dict(ROWS.get(spec['row'], {}), **MULTI.get(spec['row'], {}))


def _trains(row: str) -> bool:
    return ROWS.get(row, {}).get('train', True)


def _test(spec: dict, checkpoint) -> list:
    """Test metrics of ``checkpoint`` on each test domain of ``spec``."""
    from mmtpr.registry import RUNNERS
    tests = []
    for index in range(len(spec['datasets']) if spec.get('test_all')
                       else 1):
        cfg = run_config(spec)
        cfg.test_dataloader.dataset = _dataset(
            dict(spec, test_index=index), 'test', _row(spec),
            cfg.test_dataloader.dataset.pipeline)
        cfg.work_dir = osp.join(spec['work_dir'], f'test{index}')
        cfg.load_from = checkpoint
        metrics = RUNNERS.build(cfg).test()
        tests.append({k.split('/')[-1]: v for k, v in metrics.items()})
    return tests


def run_one(spec: dict) -> dict:
    """Train (unless frozen) and test one run; returns its record."""
    import torch

    from mmtpr.models.petl.checkpoint import (
        petl_state_dict_keys,
        select_state_dict,
        state_dict_size,
    )
    from mmtpr.registry import RUNNERS
    torch.set_num_threads(spec['threads'])
    runner = RUNNERS.build(run_config(spec))
    start = time.time()
    best, val = None, None
    if _trains(spec['row']):
        runner.train()
        best = runner.message_hub.get_info('best_ckpt')
        val = runner.message_hub.get_info('best_score')
    seconds = time.time() - start
    model = runner.model
    params = list(model.parameters())
    keys = petl_state_dict_keys(model)
    _, nbytes = state_dict_size(select_state_dict(model.state_dict(), keys))
    return dict(spec=spec, tests=_test(spec, best), val_R1=val,
                train_seconds=seconds,
                peak_rss_mb=resource.getrusage(
                    resource.RUSAGE_SELF).ru_maxrss / 1024,
                trainable=sum(p.numel() for p in params if p.requires_grad)
                if _trains(spec['row']) else 0,
                total=sum(p.numel() for p in params),
                checkpoint_mb=nbytes / 1e6 if keys else 0.0)


def launch(spec: dict, args) -> dict:
    os.makedirs(spec['work_dir'], exist_ok=True)
    out = osp.join(spec['work_dir'], 'record.json')
    if osp.isfile(out):  # finished before: reuse (delete to rerun)
        with open(out) as f:
            return json.load(f)
    spec_file = osp.join(spec['work_dir'], 'spec.json')
    with open(spec_file, 'w') as f:
        json.dump(spec, f)
    log = open(osp.join(spec['work_dir'], 'run.log'), 'w')
    proc = subprocess.run([sys.executable, osp.abspath(__file__),
                           '--run-one', spec_file], stdout=log,
                          stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode:
        raise RuntimeError(f"run {spec['work_dir']} failed; see its run.log")
    with open(out) as f:
        return json.load(f)


# -- the whole benchmark ------------------------------------------------------
def prepare_data(args, domains) -> None:
    """Generate every target split once, here, before runs in parallel
    read them."""
    import mmtpr.datasets  # noqa: F401  (registers SynthPedes)
    from mmtpr.registry import DATASETS
    for name in domains:
        for split in ('train', 'val', 'test'):
            DATASETS.build(dict(synth(args, f'target_{name}',
                                      **DOMAINS[name]),
                                split=split, pipeline=[]))


def pretrain(args) -> str:
    """The source-domain tiny CLIP's weights file (trained once; reused
    while the settings are the same)."""
    from mmtpr.apis.export import export_clip_weights
    from mmtpr.registry import RUNNERS
    from mmtpr.utils.config import load_config
    work = osp.join(args.work_dir, 'pretrain')
    weights = osp.join(work, 'tiny_clip_pretrained.pth')
    settings = dict(source=synth(args, 'source', seed=1),
                    epochs=6 if not args.quick else 2)
    stamp = osp.join(work, 'settings.json')
    if osp.isfile(weights) and osp.isfile(stamp) and json.load(
            open(stamp)) == json.loads(json.dumps(settings)):
        return weights
    cfg = load_config(osp.join(DEMO, 'clip_tiny_synth.py'))
    cfg.work_dir = work
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset = dict(settings['source'], split=split,
                              pipeline=loader.dataset.pipeline)
    cfg.train_cfg.max_epochs = settings['epochs']
    cfg.param_scheduler[0].total_steps = settings['epochs']
    runner = RUNNERS.build(cfg)
    runner.train()
    export_clip_weights(runner.message_hub.get_info('best_ckpt'), weights)
    with open(stamp, 'w') as f:
        json.dump(settings, f)
    return weights


def _spec(args, row, domains, lr, seed, weights) -> dict:
    ids = sizes(args)['target']
    name = re.sub(r'[^a-z0-9]+', '_', row.strip().lower()).strip('_')
    return dict(row=row, lr=lr, seed=seed, epochs=args.epochs,
                threads=args.threads, pretrained=weights,
                datasets=[synth(args, f'target_{d}', **DOMAINS[d])
                          for d in domains],
                offsets=[0, ids[0]], val_offsets=[0, ids[1]],
                test_all=len(domains) > 1,
                work_dir=osp.join(args.work_dir, ''.join(domains), name,
                                  f'lr{lr:g}_seed{seed}'))


def _parallel(specs: list, args) -> list:
    """Run ``specs`` (``args.jobs`` at a time); their records, in order."""
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        return list(pool.map(lambda spec: launch(spec, args), specs))


def tune_and_run(args, cases: list, weights) -> list:
    """For each (row, domains) case: pick the lr by validation R@1 on the
    first seed, then run the other seeds at that lr."""
    grid_specs = [(case, lr) for case in cases
                  for lr in (args.lrs if _trains(case[0]) else args.lrs[:1])]
    grid_records = _parallel([_spec(args, row, domains, lr, args.seeds[0],
                                    weights)
                              for (row, domains), lr in grid_specs], args)
    grids = {}
    for (case, lr), record in zip(grid_specs, grid_records):
        grids.setdefault(case, {})[lr] = record
    best = {case: max(grid, key=lambda lr: (grid[lr]['val_R1'] or 0, -lr))
            for case, grid in grids.items()}
    seed_specs = [(case, seed) for case in cases for seed in args.seeds[1:]
                  if _trains(case[0])]
    seed_records = _parallel([_spec(args, case[0], case[1], best[case],
                                    seed, weights)
                              for case, seed in seed_specs], args)
    results = []
    for case in cases:
        row, domains = case
        trains = _trains(row)
        runs = [grids[case][best[case]]] + [
            record for (other, _), record in zip(seed_specs, seed_records)
            if other == case]
        results.append(dict(
            row=row, domains=domains, lr=best[case] if trains else None,
            grid={f'{lr:g}': rec['val_R1'] for lr, rec in
                  grids[case].items()}, runs=runs))
    return results


def _mean_std(values) -> str:
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def table(results: list) -> str:
    lines = ['| domain | row | trainable | R1 | R5 | mAP | mINP | lr | '
             'train s | peak RSS MB | ckpt MB |',
             '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for res in results:
        runs = res['runs']
        first = runs[0]
        for index, domain in enumerate(res['domains']
                                       if len(res['domains']) > 1
                                       else res['domains'][:1]):
            metric = {k: [run['tests'][index][k] for run in res['runs']]
                      for k in ('R1', 'R5', 'mAP', 'mINP')}
            share = 100.0 * first['trainable'] / first['total']
            lines.append(
                f"| {domain} | {res['row'].strip()} | "
                f"{first['trainable']:,} ({share:.2f} %) | "
                + ' | '.join(_mean_std(metric[k]) for k in metric)
                + f" | {res['lr'] if res['lr'] else '-'} | "
                f'{statistics.mean(r["train_seconds"] for r in runs):.0f}'
                f" | {max(r['peak_rss_mb'] for r in runs):.0f} | "
                f"{first['checkpoint_mb']:.2f} |")
    return '\n'.join(lines)


def loading_cost(args) -> str:
    """Decoding and resizing one image with Pillow vs OpenCV (the paper
    configs use Pillow, as the reference code)."""
    import glob

    from mmtpr.registry import TRANSFORMS
    paths = sorted(glob.glob(osp.join(args.data_dir, 'target_A', 'imgs',
                                      'test', '*.jpg')))[:200]
    timing = {}
    for backend in ('cv2', 'pillow'):
        steps = [TRANSFORMS.build(dict(type='LoadPersonImage',
                                       imdecode_backend=backend)),
                 TRANSFORMS.build(dict(type='Resize', scale=(128, 384),
                                       keep_ratio=False, backend=backend,
                                       interpolation='bilinear'))]
        start = time.perf_counter()
        for path in paths:
            results = dict(img_path=path)
            for step in steps:
                results = step(results)
        timing[backend] = 1e3 * (time.perf_counter() - start) / len(paths)
    return (f"data loading (decode + resize to 384x128, {len(paths)} "
            f"images): Pillow {timing['pillow']:.2f} ms/image, OpenCV "
            f"{timing['cv2']:.2f} ms/image "
            f"({timing['pillow'] / timing['cv2']:.2f}x)")


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    if args.run_one:
        with open(args.run_one) as f:
            spec = json.load(f)
        record = run_one(spec)
        with open(osp.join(spec['work_dir'], 'record.json'), 'w') as f:
            json.dump(record, f)
        return
    start = time.time()
    weights = pretrain(args)
    rows = QUICK_ROWS if args.quick else tuple(ROWS)
    domains = ('A', ) if args.quick else tuple(DOMAINS)
    prepare_data(args, domains)
    cases = [(row, (d, )) for d in domains for row in rows]
    if not args.quick:
        cases += [(row, ('A', 'B')) for row in MULTI]
    results = tune_and_run(args, cases, weights)
    text = table(results)
    extra = loading_cost(args)
    elapsed = time.time() - start
    print(text)
    print(extra)
    print(f'lr grid {args.lrs} (best on the val split, seed '
          f'{args.seeds[0]}), seeds {args.seeds}, {args.epochs} epochs, '
          f'{args.threads} thread(s) per run, {args.jobs} run(s) at a time; '
          f'total {elapsed:.0f} s')
    with open(osp.join(args.work_dir, 'methods_synth.json'), 'w') as f:
        json.dump(dict(args=vars(args), results=results, table=text,
                       loading=extra, seconds=elapsed), f, indent=1)
    return results


if __name__ == '__main__':
    main()
