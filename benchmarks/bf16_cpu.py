"""float32 vs bfloat16 on the CPU: inference and training, ViT-B/16 and the
tiny demo model, interleaved in one process.

::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bf16_cpu.py
    python benchmarks/bf16_cpu.py --models tiny --rounds 5   # quick

Every variant is built once and timed in turn, round after round (one
untimed call first), so machine noise hits them alike; the table gives
the median seconds per call and the speed-up of bfloat16 over float32 of
the same model, task and attention. Variants:

- ``attention``: ``open_clip`` keeps open_clip's ``nn.MultiheadAttention``
  blocks (what every model without PETL ran before); ``sdpa`` converts them
  into mmtpr's PETLBlock (``OpenCLIPBackbone(attention='sdpa')``, the
  default now);
- ``precision``: ``fp32``; ``bf16`` (``torch.autocast('cpu', bfloat16)``,
  float32 weights: ``tools/test.py --amp``, ``tools/train.py --amp``);
  ``bf16+frozen`` (as ``bf16`` with ``frozen_dtype='bfloat16'``: the frozen
  weight matrices stored in bfloat16, so autocast does not cast them again
  at every call);
- tasks: ``infer`` encodes a batch of images and captions without a graph
  (test, inferencer, export); ``train`` is a training step (forward, SDM
  loss, backward, Adam) of UP-Person (ViT-B/16) or of the demo's stages
  (tiny: DM-Adapter on the frozen CLIP, and the pre-training of the whole
  CLIP).

ViT-B/16 runs at 384x128 with random weights (``--batch``, default 8);
the tiny model is the demo's (128 wide, 3 layers, 128x48, batch 64).
"""
import argparse
import contextlib
import statistics
import time

import torch

UP_PERSON = [dict(type='ScaledPrefix', length=10, sp_init=100.0),
             dict(type='KVLoRA', rank=32),
             dict(type='LNAdapter', reduction=8)]
DM_ADAPTER = [dict(type='MixtureOfAdapters', num_experts=6, top_k=2,
                   reduction=8, scales=dict(visual=1.0, text=1.0))]
TINY_CLIP = dict(
    embed_dim=128,
    vision_cfg=dict(layers=3, width=128, head_width=32, patch_size=16,
                    mlp_ratio=2.0),
    text_cfg=dict(context_length=64, vocab_size=49408, width=128, heads=4,
                  layers=3, mlp_ratio=2.0))
# model key: (backbone arguments, image size, context length, default batch)
MODELS = {
    'vitb16': (dict(model_name='ViT-B-16'), (384, 128), 77, 8),
    'tiny': (dict(model_cfg=TINY_CLIP), (128, 48), 64, 64),
}
# (model, task, petl, freeze) -> rows; each row is timed for every
# attention x precision below
TASKS = {
    'vitb16': [('infer', None, True), ('train', 'up_person', True)],
    'tiny': [('infer', None, True), ('train', 'dm_adapter', True),
             ('train', 'pretrain', False)],
}
PETL = {None: None, 'up_person': UP_PERSON, 'dm_adapter': DM_ADAPTER,
        'pretrain': None}
PRECISIONS = ('fp32', 'bf16', 'bf16+frozen')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', choices=list(MODELS),
                        default=list(MODELS))
    parser.add_argument('--batch', type=int,
                        help='ViT-B/16 batch (default 8; tiny: 64)')
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int,
                        default=torch.get_num_threads())
    return parser.parse_args(argv)


def build(model: str, petl_name, freeze: bool, attention: str,
          precision: str):
    from mmtpr.registry import MODELS as REGISTRY
    args, size, _, _ = MODELS[model]
    torch.manual_seed(0)
    frozen = 'bfloat16' if precision == 'bf16+frozen' else None
    retriever = REGISTRY.build(dict(
        type='TPRRetriever',
        backbone=dict(type='OpenCLIPBackbone', image_size=size,
                      freeze=freeze, petl=PETL[petl_name],
                      frozen_dtype=frozen, attention=attention, **args),
        head=dict(type='SDMHead', temperature=0.02),
        aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5)
        if petl_name == 'dm_adapter' else None))
    return retriever


def inputs(model: str, batch: int):
    _, (height, width), length, _ = MODELS[model]
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, height, width, generator=gen)
    texts = torch.randint(1, 49405, (batch, length), generator=gen)
    texts[:, 0], texts[:, 20] = 49406, 49407
    texts[:, 21:] = 0
    return images, texts, torch.arange(batch) // 2


def make_call(retriever, task: str, precision: str, data):
    """A function running one inference or one training step."""
    images, texts, pids = data

    def autocast():
        if precision == 'fp32':
            return contextlib.nullcontext()
        return torch.autocast('cpu', dtype=torch.bfloat16)

    if task == 'infer':
        retriever.eval()

        def infer():
            with torch.no_grad(), autocast():
                retriever.extract_feat(images, texts)
        return infer

    retriever.train()
    params = [p for p in retriever.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-5, eps=1e-3)

    def train():
        with autocast():
            feats = retriever.extract_feat(images, texts)
            loss = retriever.head.loss(*feats, pids)['loss_sdm']
            if retriever.aux_loss is not None:
                loss = loss + retriever.aux_loss(
                    retriever.backbone.aux_losses())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return train


def variants(args):
    """(key, call) for every variant; key = (model, task, petl,
    attention, precision)."""
    out = []
    for model in args.models:
        batch = args.batch if model == 'vitb16' and args.batch else \
            MODELS[model][3]
        data = inputs(model, batch)
        for task, petl_name, freeze in TASKS[model]:
            # PETL methods convert every block themselves: 'open_clip'
            # changes nothing there
            attentions = ('open_clip', 'sdpa') if petl_name in (
                None, 'pretrain') else ('sdpa', )
            for attention in attentions:
                for precision in PRECISIONS:
                    if precision == 'bf16+frozen' and not freeze:
                        continue
                    retriever = build(model, petl_name, freeze, attention,
                                      precision)
                    key = (model, task, petl_name or 'frozen CLIP'
                           if freeze else 'whole CLIP', attention,
                           precision, batch)
                    out.append((key, make_call(retriever, task, precision,
                                               data)))
    return out


def report(times: dict) -> None:
    print('\n| model | task | trains | attention | batch | precision | '
          's/call | vs fp32 (same attention) | bf16 speed-up |')
    print('|---|---|---|---|---:|---|---:|---:|---:|')
    for key, values in times.items():
        model, task, petl, attention, precision, batch = key
        median = statistics.median(values)
        base = statistics.median(times[key[:4] + ('fp32', batch)])
        print(f'| {model} | {task} | {petl} | {attention} | {batch} | '
              f'{precision} | {median:.3f} | {median / base:.2f}x | '
              f'{base / median:.2f}x |')


def main(argv=None) -> None:
    args = parse_args(argv)
    from mmengine.registry import DefaultScope

    import mmtpr  # noqa: F401
    torch.set_num_threads(args.threads)
    with DefaultScope.overwrite_default_scope('mmtpr'):
        runs = variants(args)
    print(f'{len(runs)} variants, {args.rounds} rounds, {args.threads} '
          f'threads, torch {torch.__version__}', flush=True)
    for _, call in runs:
        call()  # warm-up (and the one-time bf16 warning, if any)
    times = {key: [] for key, _ in runs}
    for round_ in range(args.rounds):
        for key, call in runs:
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
        print(f'round {round_ + 1} done', flush=True)
    report(times)


if __name__ == '__main__':
    main()
