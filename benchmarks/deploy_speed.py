"""Inference throughput of a deployed UP-Person model: PyTorch eager (as
trained, KV-LoRA separate), PyTorch with KV-LoRA merged, and ONNX Runtime
(the graphs of ``tools/export.py --onnx``, KV-LoRA merged)::

    python benchmarks/deploy_speed.py              # ViT-B/16 at 384x128
    python benchmarks/deploy_speed.py --quick      # tiny model, smoke run
    python benchmarks/deploy_speed.py --model dm_adapter

Images/s (encoder of normalised 384x128 images) and captions/s (text
encoder, 77 tokens), at batch 1 and 16, with 2 threads
(``torch.set_num_threads`` and ONNX Runtime's ``intra_op_num_threads``).
Random weights (no download); the PETL parameters are moved off their
init so that every technique computes something.

Each variant lives in its own worker process (its thread pool never
competes with another's), and the workers are driven round by round,
each measurement in turn, in a rotating order: machine noise hits every
variant alike. Round 0 is a warm-up; the table gives the median
throughput of the other rounds and the ratio to PyTorch eager.
"""
import argparse
import datetime
import math
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import tempfile
import time

VARIANTS = ('pytorch_eager', 'pytorch_merged', 'onnxruntime')
LABELS = {'pytorch_eager': 'PyTorch eager (as trained)',
          'pytorch_merged': 'PyTorch, KV-LoRA merged',
          'onnxruntime': 'ONNX Runtime (KV-LoRA merged)'}
PETL = {
    'up_person': [dict(type='ScaledPrefix', length=10),
                  dict(type='KVLoRA', rank=32),
                  dict(type='LNAdapter', reduction=8)],
    'dm_adapter': [dict(type='MixtureOfAdapters', num_experts=6, top_k=2,
                        reduction=8)],
}
TINY = dict(embed_dim=64,
            vision_cfg=dict(layers=2, width=128, head_width=32,
                            patch_size=16, mlp_ratio=2.0),
            text_cfg=dict(context_length=77, vocab_size=49408, width=128,
                          heads=4, layers=2, mlp_ratio=2.0))


def build(args):
    """The model of every variant: same seed, PETL moved off its init."""
    import torch

    import mmtpr  # noqa: F401
    from mmtpr.registry import MODELS
    torch.manual_seed(0)
    backbone = dict(type='OpenCLIPBackbone', image_size=(384, 128),
                    petl=PETL[args.model])
    if args.quick:
        backbone['model_cfg'] = TINY
    model = MODELS.build(dict(type='TPRRetriever', backbone=backbone,
                              head=dict(type='SDMHead'))).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.02 * torch.randn_like(param))
    return model


def encoders(variant, args):
    """``{'image': f, 'text': f}``: each maps a batch to features."""
    import numpy as np
    import torch

    from mmtpr.apis.export import onnx as onnx_export
    from mmtpr.models.petl import KVLoRA
    torch.set_num_threads(args.threads)
    model = build(args)
    if variant == 'pytorch_eager':
        backbone = model.backbone
        return {'image': backbone.encode_image, 'text': backbone.encode_text}
    KVLoRA.merge(model)
    if variant == 'pytorch_merged':
        backbone = model.backbone
        return {'image': backbone.encode_image, 'text': backbone.encode_text}
    folder = tempfile.mkdtemp(prefix='deploy_speed_')
    meta = onnx_export.write_onnx(model, folder, threads=args.threads)
    del model
    sessions = {t: onnx_export.ort_session(f"{folder}/{info['file']}",
                                           args.threads)
                for t, info in meta['files'].items()}
    shutil.rmtree(folder)  # the sessions hold the graphs

    def run(tower):
        name = onnx_export.INPUTS[tower]
        return lambda x: sessions[tower].run(
            ['features'], {name: np.ascontiguousarray(x.numpy())})[0]
    return {t: run(t) for t in sessions}


def inputs(size):
    import torch
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(size, 3, 384, 128, generator=gen)
    texts = torch.zeros(size, 77, dtype=torch.long)
    texts[:, 0] = 49406
    texts[:, 1:31] = torch.randint(1, 49405, (size, 30), generator=gen)
    texts[:, 31] = 49407
    return {'image': images, 'text': texts}


def worker(variant, args, conn):
    """Build the variant, then time what the driver asks for."""
    import torch
    funcs = encoders(variant, args)
    data = inputs(max(args.batch_sizes))
    conn.send('ready')
    while True:
        job = conn.recv()
        if job is None:
            return
        tower, batch, reps = job
        x = data[tower][:batch]
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(reps):
                funcs[tower](x)
            conn.send(time.perf_counter() - start)


def repetitions(tower, batch, quick):
    """Calls per measurement: about a second or more of work each."""
    if quick:
        return 2
    per_call = {'image': 0.4, 'text': 0.06}[tower] * batch
    return max(1, math.ceil(1.0 / per_call))


def measure(args):
    ctx = mp.get_context('spawn')
    workers = {}
    for variant in VARIANTS:  # built one after the other: peak memory
        ours, theirs = ctx.Pipe()
        process = ctx.Process(target=worker, args=(variant, args, theirs))
        process.start()
        if ours.recv() != 'ready':
            raise RuntimeError(f'{variant} failed to start')
        workers[variant] = (process, ours)
    jobs = [(t, b) for t in ('image', 'text') for b in args.batch_sizes]
    results = {(v, t, b): [] for v in VARIANTS for t, b in jobs}
    for round_index in range(args.rounds + 1):
        order = VARIANTS[round_index % 3:] + VARIANTS[:round_index % 3]
        for tower, batch in jobs:
            reps = repetitions(tower, batch, args.quick)
            for variant in order:
                time.sleep(0.2)  # let the last worker's threads go idle
                workers[variant][1].send((tower, batch, reps))
                seconds = workers[variant][1].recv()
                if round_index:  # round 0 warms up
                    results[variant, tower, batch].append(
                        batch * reps / seconds)
    for process, conn in workers.values():
        conn.send(None)
        process.join()
    return {k: statistics.median(v) for k, v in results.items()}


def table(speeds, args) -> str:
    columns = [(t, b) for t in ('image', 'text') for b in args.batch_sizes]
    head = ['variant'] + [f"{'images' if t == 'image' else 'captions'}/s, "
                          f'batch {b}' for t, b in columns]
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' + '---:|' * len(columns)]
    for variant in VARIANTS:
        cells = [LABELS[variant]]
        for tower, batch in columns:
            value = speeds[variant, tower, batch]
            ratio = value / speeds['pytorch_eager', tower, batch]
            cells.append(f'{value:.2f} ({ratio:.2f}x)')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', choices=sorted(PETL), default='up_person')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--batch-sizes', type=int, nargs='+',
                        default=[1, 16])
    parser.add_argument('--quick', action='store_true',
                        help='a tiny CLIP, 2 rounds, batch 1 and 2: checks '
                        'that the benchmark runs')
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.batch_sizes = 2, [1, 2]
    start, load = time.time(), os.getloadavg()[0]
    speeds = measure(args)
    import onnxruntime
    import torch
    model = 'tiny CLIP (--quick)' if args.quick else 'ViT-B/16 at 384x128'
    print(f'{args.model}, {model}, {args.threads} threads, median of '
          f'{args.rounds} interleaved rounds (after a warm-up round); '
          f'{platform.processor() or platform.machine()}, torch '
          f'{torch.__version__}, onnxruntime {onnxruntime.__version__}, '
          f'{datetime.date.today()}, {time.time() - start:.0f} s; load '
          f'average {load:.1f} before, {os.getloadavg()[0]:.1f} after on '
          f'{os.cpu_count()} cores\n')
    print(table(speeds, args))


if __name__ == '__main__':
    main()
