"""Training-step time and peak memory of PETL methods on full CLIP ViT-B/16.

Runs each variant in its own process (so its peak RSS is its own), in
interleaved rounds (so machine noise hits every variant alike), and prints
the medians side by side with the ratio to the frozen-CLIP baseline::

    python benchmarks/petl_train_step.py --variants frozen up_person
    python benchmarks/petl_train_step.py --variants up_person dm_adapter \
        --precisions fp32 amp amp_frozen_bf16   # mixed precision on the CPU
    python benchmarks/petl_train_step.py --variants frozen up_person \
        --checkpointing off on --batch-size 32 --steps 1  # memory vs time

Variants (ViT-B/16 at 384x128, random weights: no download needed):

- ``frozen``: frozen CLIP, the step of a method that trains nothing inside
  the towers: forward of both towers, SDM loss, backward through both
  towers down to their (trainable) positional embeddings, optimizer step.
  That is the irreducible cost of back-propagating through frozen CLIP,
  which every PETL method with modules in every block pays. Its blocks
  are open_clip's (``attention='open_clip'``: ``nn.MultiheadAttention``).
- ``frozen_inference``: the forward pass alone (no graph), for reference.
- ``frozen_petl_blocks``: as ``frozen``, with CLIP's blocks converted to
  mmtpr's PETLBlock / PETLAttention but no technique attached: isolates the
  cost of the attention implementation from that of the techniques.
- ``up_person``: S-Prefix (P=10) + KV-LoRA (r=32) + L-Adapter (8), all
  blocks of both towers; only those are trained.
- ``dm_adapter``: mixture of 6 adapters (top-2, reduction 8) with the
  domain-aware router beside every MLP of both towers, SDM + 0.5 x
  load-balancing loss; only those are trained.

``--checkpointing off on`` runs every variant also with activation
checkpointing of every block of both towers
(``OpenCLIPBackbone(grad_checkpointing=True)``, shown as ``+ckpt``): the
blocks' activations are recomputed in the backward pass instead of kept.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = {
    'frozen': None,
    'frozen_inference': None,
    'frozen_petl_blocks': None,
    'up_person': [
        dict(type='ScaledPrefix', length=10, sp_init=100.0),
        dict(type='KVLoRA', rank=32),
        dict(type='LNAdapter', reduction=8),
    ],
    'dm_adapter': [
        dict(type='MixtureOfAdapters', num_experts=6, top_k=2,
             reduction=8),
    ],
}


PRECISIONS = ('fp32', 'amp', 'amp_frozen_bf16')


def _build_model(name: str, precision: str, checkpointing: bool):
    """The retriever of one variant (random weights)."""
    import torch

    from mmtpr.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type='TPRRetriever',
             backbone=dict(type='OpenCLIPBackbone', model_name='ViT-B-16',
                           image_size=(384, 128), freeze=True,
                           petl=VARIANTS[name],
                           frozen_dtype='bfloat16'
                           if precision == 'amp_frozen_bf16' else None,
                           attention='open_clip' if name == 'frozen'
                           else 'sdpa',
                           grad_checkpointing=checkpointing),
             head=dict(type='SDMHead', temperature=0.02),
             aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5)
             if name == 'dm_adapter' else None))
    clip = model.backbone.clip  # 'sdpa': every block is a PETLBlock
    if name in ('frozen', 'frozen_petl_blocks'):
        # the inputs of both transformers become trainable, so backward
        # runs through every frozen block (without weight gradients)
        clip.positional_embedding.requires_grad_(True)
        clip.visual.positional_embedding.requires_grad_(True)
    return model


def run_variant(name: str, batch_size: int, steps: int, warmup: int,
                threads: int, precision: str = 'fp32',
                checkpointing: bool = False) -> dict:
    """Measure one variant in this process; returns a dict of numbers.

    ``precision``: 'fp32'; 'amp' (bfloat16 autocast around the forward
    pass and the loss, float32 weights: what ``--amp`` does on the CPU); or
    'amp_frozen_bf16' (as 'amp', with the frozen CLIP weights stored in
    bfloat16: ``frozen_dtype='bfloat16'``).
    """
    import contextlib

    import torch

    import mmtpr  # noqa: F401
    torch.set_num_threads(threads)
    model = _build_model(name, precision, checkpointing)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4, eps=1e-3) \
        if params else None
    images = torch.randn(batch_size, 3, 384, 128)
    texts = torch.randint(1, 49405, (batch_size, 77))
    texts[:, 0], texts[:, 30] = 49406, 49407
    texts[:, 31:] = 0
    pids = torch.arange(batch_size) // 2
    rss_before = _peak_rss_mb()

    def autocast():
        if precision == 'fp32':
            return contextlib.nullcontext()
        return torch.autocast('cpu', dtype=torch.bfloat16)

    def step():
        if name == 'frozen_inference':
            with torch.no_grad(), autocast():
                model.extract_feat(images, texts)
            return
        with autocast():
            image_feats, text_feats = model.extract_feat(images, texts)
            loss = model.head.loss(image_feats, text_feats, pids)['loss_sdm']
            if model.aux_loss is not None:
                loss = loss + model.aux_loss(model.backbone.aux_losses())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    label = name if precision == 'fp32' else f'{name}+{precision}'
    return dict(
        variant=label + ('+ckpt' if checkpointing else ''),
        step_s=statistics.median(times),
        peak_rss_mb=_peak_rss_mb(),
        model_rss_mb=rss_before,
        trainable=sum(p.numel() for p in params))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def report(results: dict, args) -> None:
    """The medians, next to the frozen-CLIP baseline when it ran."""
    base = results.get('frozen')
    base_time = statistics.median(r['step_s'] for r in base) if base \
        else None
    base_mem = statistics.median(r['peak_rss_mb'] for r in base) if base \
        else None
    print(f'\nCLIP ViT-B/16 384x128, batch {args.batch_size}, '
          f'{args.threads} threads, median of {args.rounds} processes x '
          f'{args.steps} steps')
    print(f'{"variant":<30}{"trainable":>12}{"s/step":>10}{"vs frozen":>11}'
          f'{"peak RSS MB":>13}{"vs frozen":>11}')
    for name, rows in results.items():
        t = statistics.median(r['step_s'] for r in rows)
        m = statistics.median(r['peak_rss_mb'] for r in rows)
        rel_t = f'{t / base_time:.2f}x' if base_time else '-'
        rel_m = f'{m / base_mem:.2f}x' if base_mem else '-'
        print(f'{name:<30}{rows[0]["trainable"]:>12,}{t:>10.2f}{rel_t:>11}'
              f'{m:>13.0f}{rel_m:>11}')



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variants', nargs='+',
                        default=['frozen', 'up_person', 'dm_adapter'],
                        choices=list(VARIANTS))
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--steps', type=int, default=3,
                        help='measured steps per process')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--rounds', type=int, default=2,
                        help='interleaved processes per variant')
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument(
        '--precisions', nargs='+', default=['fp32'], choices=PRECISIONS,
        help='run every variant in each of these precisions (amp: bfloat16 '
        'autocast; amp_frozen_bf16: also frozen weights in bfloat16)')
    parser.add_argument(
        '--checkpointing', nargs='+', default=['off'], choices=('off', 'on'),
        help='run every variant without and/or with activation '
        'checkpointing of the blocks')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--child-checkpointing', action='store_true',
                        help=argparse.SUPPRESS)
    parser.add_argument('--child-precision', default='fp32',
                        help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_variant(args.child, args.batch_size, args.steps,
                                     args.warmup, args.threads,
                                     args.child_precision,
                                     args.child_checkpointing)))
        return

    runs = [(name, precision, ckpt) for name in args.variants
            for precision in args.precisions
            for ckpt in args.checkpointing]
    results = {}
    for round_ in range(args.rounds):
        for name, precision, ckpt in runs:
            cmd = [sys.executable, __file__, '--child', name,
                   '--batch-size', str(args.batch_size), '--steps',
                   str(args.steps), '--warmup', str(args.warmup),
                   '--threads', str(args.threads), '--child-precision',
                   precision] + (['--child-checkpointing']
                                 if ckpt == 'on' else [])
            out = subprocess.run(cmd, capture_output=True, text=True,
                                 check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            name = res['variant']
            results.setdefault(name, []).append(res)
            print(f'round {round_ + 1} {name}: {res["step_s"]:.2f} s/step, '
                  f'peak RSS {res["peak_rss_mb"]:.0f} MB', flush=True)

    report(results, args)


if __name__ == '__main__':
    main()
