"""GPU check: training throughput, memory and MFU of frozen CLIP, UP-Person
and DM-Adapter at ViT-B/16 384x128, then the distributed, test and resume
paths, on one CUDA device; one Markdown table, non-zero exit on a failure.

::

    bash benchmarks/gpu_check.sh                       # on a CUDA machine
    GPU_CHECK_ITERS=100 GPU_CHECK_BATCH=64 bash benchmarks/gpu_check.sh
    python benchmarks/gpu_check.py --dry-run           # CPU smoke, seconds

Stages (``--stages``; each one's failure is a row of the table and makes
the exit status 1; a missing CUDA device skips everything, exit 0):

- ``throughput``: for each method (``frozen``: frozen CLIP whose
  positional embeddings are trained, so backward runs through both
  towers; ``up_person``; ``dm_adapter``) and precision (``bf16``:
  bfloat16 autocast; ``fp16``: float16 autocast with dynamic loss scaling,
  both through mmtpr's AutocastOptimWrapper), ``--iters`` training steps
  (forward of both towers, SDM loss, backward, AdamW) at ``--batch``
  on random full-size data made on the device (no files): images/s, peak
  GPU memory and model FLOPs utilisation. Model FLOPs per step = 2 x the
  forward FLOPs that ``tools/analysis/flops.py`` counts for the batch
  (backward through frozen weights computes input gradients only: about
  one forward), over the device's dense bf16 peak (``--peak-tflops``, else
  :data:`PEAK_BF16_TFLOPS` by device name);
- ``dist``: ``tools/dist_train.sh`` with 1 process (torchrun; NCCL on
  CUDA) on a tiny generated SynthPedes, DM-Adapter on a tiny CLIP;
- ``test``: ``tools/test.py --amp`` on that run's checkpoint;
- ``resume``: ``pytest tests/test_resume.py tests/engine/test_amp.py``
  (exact resume after SIGKILL, and the CUDA float16 step, on the device).

``GPU_CHECK_ITERS``, ``GPU_CHECK_WARMUP``, ``GPU_CHECK_BATCH`` and
``GPU_CHECK_PEAK_TFLOPS`` set the defaults of the flags of the same name.
"""
import argparse
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Dense (no sparsity) bfloat16 tensor peak, TFLOP/s, by a part of the name
# torch.cuda.get_device_name() returns; the first match wins.
PEAK_BF16_TFLOPS = (
    ('H100 PCIe', 756.0),
    ('H100 NVL', 835.0),
    ('H100', 989.0),  # SXM
    ('H200', 989.0),
    ('H800', 989.0),
    ('A100', 312.0),
    ('A800', 312.0),
)
METHODS = {
    'frozen': None,
    'up_person': [dict(type='ScaledPrefix', length=10, sp_init=100.0),
                  dict(type='KVLoRA', rank=32),
                  dict(type='LNAdapter', reduction=8)],
    'dm_adapter': [dict(type='MixtureOfAdapters', num_experts=6, top_k=2,
                        reduction=8)],
}
TINY_CLIP = dict(
    embed_dim=64,
    vision_cfg=dict(layers=2, width=64, head_width=32, patch_size=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=2,
                  layers=2))
STAGES = ('throughput', 'dist', 'test', 'resume')
HEADER = ('| check | precision | batch | iters | images/s | peak GPU GiB | '
          'TFLOP/s | MFU | seconds | status |')


def _env(name: str, default):
    value = os.environ.get(name)
    return type(default)(value) if value not in (None, '') else default


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    parser.add_argument('--dry-run', action='store_true',
                        help='CPU smoke run: tiny model, 2 iterations of '
                        'batch 2, no resume stage')
    parser.add_argument('--iters', type=int,
                        default=_env('GPU_CHECK_ITERS', 200))
    parser.add_argument('--warmup', type=int,
                        default=_env('GPU_CHECK_WARMUP', 10))
    parser.add_argument('--batch', type=int,
                        default=_env('GPU_CHECK_BATCH', 128))
    parser.add_argument('--peak-tflops', type=float,
                        default=_env('GPU_CHECK_PEAK_TFLOPS', 0.0),
                        help='dense bf16 peak of the device (default: '
                        'from the device name)')
    parser.add_argument('--model', choices=['vitb16', 'tiny'],
                        default='vitb16')
    parser.add_argument('--methods', nargs='+', choices=list(METHODS),
                        default=list(METHODS))
    parser.add_argument('--precisions', nargs='+', choices=['bf16', 'fp16'],
                        default=['bf16', 'fp16'])
    parser.add_argument('--stages', nargs='+', choices=STAGES,
                        default=list(STAGES))
    parser.add_argument('--work-dir', default=None,
                        help='where the generated data and runs go '
                        '(default: a temporary folder)')
    parser.add_argument('--out', help='also write the table to this file')
    parser.add_argument('--timeout', type=int, default=600,
                        help='seconds each subprocess stage may take')
    args = parser.parse_args(argv)
    if args.dry_run:
        args.device, args.model = 'cpu', 'tiny'
        args.iters, args.warmup, args.batch = 2, 1, 2
        args.stages = [s for s in args.stages if s != 'resume']
    return args


def peak_tflops(device_name: str, override: float = 0.0):
    """The dense bf16 peak of ``device_name`` in TFLOP/s (``override``
    when positive), or None when the table does not know it."""
    if override and override > 0:
        return float(override)
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def row(check, precision='', batch='', iters='', images_s=None,
        mem_gib=None, tflops=None, mfu=None, seconds=None,
        status='ok') -> dict:
    """One line of the report."""
    return dict(check=check, precision=precision, batch=batch, iters=iters,
                images_s=images_s, mem_gib=mem_gib, tflops=tflops, mfu=mfu,
                seconds=seconds, status=status)


def format_table(rows) -> str:
    """The rows as one Markdown table."""
    def num(value, fmt):
        return '-' if value is None else format(value, fmt)
    lines = [HEADER, '|---|---|---:|---:|---:|---:|---:|---:|---:|---|']
    for r in rows:
        mfu = '-' if r['mfu'] is None else f"{100 * r['mfu']:.1f} %"
        lines.append(
            f"| {r['check']} | {r['precision']} | {r['batch']} | "
            f"{r['iters']} | {num(r['images_s'], '.1f')} | "
            f"{num(r['mem_gib'], '.2f')} | {num(r['tflops'], '.1f')} | "
            f"{mfu} | {num(r['seconds'], '.1f')} | {r['status']} |")
    return '\n'.join(lines)


def _load_flops_tool():
    spec = importlib.util.spec_from_file_location(
        'mmtpr_flops_tool', osp.join(ROOT, 'tools', 'analysis', 'flops.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_cfg(args, method: str) -> dict:
    """The retriever config of one method at the checked size."""
    if args.model == 'tiny':
        backbone = dict(model_cfg=TINY_CLIP, image_size=(64, 32))
    else:
        backbone = dict(model_name='ViT-B-16', image_size=(384, 128))
    return dict(
        type='TPRRetriever',
        backbone=dict(type='OpenCLIPBackbone', pretrained=None, freeze=True,
                      petl=METHODS[method], **backbone),
        head=dict(type='SDMHead', temperature=0.02),
        aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5)
        if method == 'dm_adapter' else None)


def forward_flops(cfg: dict) -> float:
    """Forward FLOPs of one image plus one caption (tools/analysis/flops.py,
    counted on the meta device or the CPU)."""
    flops, _ = _load_flops_tool().measure(cfg, batch_size=1)
    return flops['image'] + flops['text']


def synthetic_batch(model, batch: int, device):
    """Random normalised images and captions, made on ``device``."""
    import torch
    height, width = model.backbone.image_size
    length = model.backbone.context_length
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(batch, 3, height, width, device=device,
                         generator=gen)
    texts = torch.randint(1, 49405, (batch, length), device=device,
                          generator=gen)
    texts[:, 0], texts[:, min(30, length - 1)] = 49406, 49407
    texts[:, min(31, length):] = 0
    pids = torch.arange(batch, device=device) // 2
    return images, texts, pids


def build_for_training(cfg: dict, method: str, precision: str, device):
    """The model on ``device`` and its AutocastOptimWrapper."""
    import torch

    from mmtpr.engine import AutocastOptimWrapper
    from mmtpr.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(cfg).to(device).train()
    if method == 'frozen':  # backward through both frozen towers
        clip = model.backbone.clip
        clip.positional_embedding.requires_grad_(True)
        clip.visual.positional_embedding.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    wrapper = AutocastOptimWrapper(
        dtype='bfloat16' if precision == 'bf16' else 'float16',
        optimizer=torch.optim.AdamW(params, lr=1e-5))
    # the wrapper autocasts on MMEngine's device; --device cpu on a CUDA
    # machine runs the model on the CPU
    wrapper.device_type = torch.device(device).type
    return model, wrapper


def train_steps(model, wrapper, data, steps: int) -> None:
    """``steps`` training steps on one batch."""
    images, texts, pids = data
    for _ in range(steps):
        with wrapper.optim_context(model):
            image_feats, text_feats = model.extract_feat(images, texts)
            loss = model.head.loss(image_feats, text_feats, pids)['loss_sdm']
            if model.aux_loss is not None:
                loss = loss + model.aux_loss(model.backbone.aux_losses())
        wrapper.update_params(loss)


def throughput(args, method: str, precision: str, peak) -> dict:
    """Time ``--iters`` steps of one method and precision."""
    import torch
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    name = f'train {method}'
    if precision == 'fp16' and not cuda:
        return row(name, precision, status='skipped (CPU autocast is '
                   'bfloat16 only)')
    cfg = model_cfg(args, method)
    model, wrapper = build_for_training(cfg, method, precision, device)
    data = synthetic_batch(model, args.batch, device)
    train_steps(model, wrapper, data, args.warmup)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    train_steps(model, wrapper, data, args.iters)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    images_s = args.batch * args.iters / seconds
    mem = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    tflops = 2 * forward_flops(cfg) * images_s / 1e12
    mfu = tflops / peak if peak else None
    del model, wrapper, data
    if cuda:
        torch.cuda.empty_cache()
    return row(name, precision, args.batch, args.iters, images_s, mem,
               tflops, mfu, seconds)


def run_throughput(args, rows) -> None:
    import torch
    device_name = torch.cuda.get_device_name(0) if args.device == 'cuda' \
        else 'cpu'
    peak = peak_tflops(device_name, args.peak_tflops)
    print(f'device: {device_name}; dense bf16 peak: '
          f"{peak if peak else 'unknown (give --peak-tflops)'} TFLOP/s; "
          f'torch {torch.__version__}', flush=True)
    for method in args.methods:
        for precision in args.precisions:
            try:
                rows.append(throughput(args, method, precision, peak))
            except Exception as err:  # a row, not the end of the check
                traceback.print_exc()
                rows.append(row(f'train {method}', precision, args.batch,
                                status=f'FAILED: {_short(err)}'))
                if args.device == 'cuda':
                    torch.cuda.empty_cache()
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)


def _short(err: BaseException) -> str:
    text = f'{type(err).__name__}: {err}'.replace('|', '/').splitlines()
    return text[0][:120] if text else type(err).__name__


def tiny_run_config(args, work_dir: str) -> str:
    """Write the config of the dist / test stages: DM-Adapter on a tiny
    CLIP, a tiny generated SynthPedes, one epoch."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'demo',
                                   'dm_adapter_tiny_synth.py'))
    # the demo's tokenizer pads to 77 tokens, as TINY_CLIP's text tower
    cfg.model.backbone.update(pretrained=None, model_cfg=TINY_CLIP)
    synth = dict(data_root=osp.join(work_dir, 'synth'), num_ids=[16, 4, 4],
                 images_per_id=2, image_size=[64, 32], seed=3)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.update(synth)
        loader.update(batch_size=8, num_workers=0, persistent_workers=False)
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    cfg.param_scheduler[0].total_steps = 2  # > the 1-epoch warm-up
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.update(interval=1, save_best=None)
    path = osp.join(work_dir, 'tiny_dm_adapter.py')
    cfg.dump(path)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def child_env(args) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (ROOT, env.get('PYTHONPATH')) if p)
    env.update(HF_HUB_OFFLINE='1', PORT=str(_free_port()),
               PYTHONUNBUFFERED='1')
    if args.device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''  # the CPU paths, even on a GPU box
    return env


def run_command(check: str, cmd, args, log: str, expect=None) -> dict:
    """Run ``cmd`` in the repository; a row with its status and time
    (output in ``log``; its tail is printed on failure)."""
    start = time.perf_counter()
    try:
        with open(log, 'w') as out:
            proc = subprocess.run(cmd, cwd=ROOT, env=child_env(args),
                                  stdout=out, stderr=subprocess.STDOUT,
                                  timeout=args.timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = f'timed out after {args.timeout} s'
    seconds = time.perf_counter() - start
    with open(log, errors='replace') as f:
        text = f.read()
    missing = expect and not expect(text)
    if code == 0 and not missing:
        return row(check, seconds=seconds)
    sys.stdout.write(f'--- {check}: last lines of {log}\n{text[-3000:]}\n')
    reason = f'exit {code}' if code != 0 else 'expected output missing'
    return row(check, seconds=seconds, status=f'FAILED: {reason} ({log})')


def run_tool_stages(args, work_dir: str, rows) -> None:
    """The dist, test and resume stages (subprocesses)."""
    backend = 'nccl' if args.device == 'cuda' else 'gloo'
    config = tiny_run_config(args, work_dir)
    run_dir = osp.join(work_dir, 'dist_run')
    checkpoint = osp.join(run_dir, 'epoch_1.pth')
    if 'dist' in args.stages:
        rows.append(run_command(
            f'tools/dist_train.sh, 1 process, {backend}',
            ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), config, '1',
             '--work-dir', run_dir], args, osp.join(work_dir, 'dist.log'),
            expect=lambda _: osp.isfile(checkpoint)))
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    if 'test' in args.stages:
        if not osp.isfile(checkpoint):
            rows.append(run_command(
                'tools/train.py (checkpoint for test.py)',
                [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config,
                 '--work-dir', run_dir], args,
                osp.join(work_dir, 'train.log'),
                expect=lambda _: osp.isfile(checkpoint)))
        rows.append(run_command(
            'tools/test.py --amp',
            [sys.executable, osp.join(ROOT, 'tools', 'test.py'), config,
             checkpoint, '--amp', '--work-dir',
             osp.join(work_dir, 'test_run')], args,
            osp.join(work_dir, 'test.log'),
            expect=lambda text: 'R1:' in text))
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    if 'resume' in args.stages:
        rows.append(run_command(
            'resume test + CUDA AMP tests (pytest)',
            [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
             'tests/test_resume.py', 'tests/engine/test_amp.py'], args,
            osp.join(work_dir, 'resume.log'),
            expect=lambda text: ' passed' in text and ' failed' not in text))
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('GPU check SKIPPED: no CUDA device (torch '
              f'{torch.__version__}: torch.cuda.is_available() is False). '
              'A CPU smoke run: python benchmarks/gpu_check.py --dry-run')
        return 0
    from mmengine.registry import DefaultScope

    import mmtpr  # noqa: F401
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='gpu_check_')
    os.makedirs(work_dir, exist_ok=True)
    rows, start = [], time.time()
    with DefaultScope.overwrite_default_scope('mmtpr'):
        if 'throughput' in args.stages:
            run_throughput(args, rows)
        if args.device == 'cuda':
            torch.cuda.empty_cache()
        if set(args.stages) - {'throughput'}:
            try:
                run_tool_stages(args, work_dir, rows)
            except Exception as err:
                traceback.print_exc()
                rows.append(row('tool stages', status=f'FAILED: '
                                f'{_short(err)}'))
    size = '384x128 ViT-B/16' if args.model == 'vitb16' else 'tiny CLIP'
    title = (f'GPU check on {args.device} ({size}, synthetic data), '
             f'{time.time() - start:.0f} s; work dir {work_dir}')
    table = format_table(rows)
    print(f'\n{title}\n\n{table}')
    if args.out:
        with open(args.out, 'w') as f:
            f.write(f'{title}\n\n{table}\n')
    failed = [r['check'] for r in rows if r['status'].startswith('FAILED')]
    if failed:
        print(f'\nFAILED: {", ".join(failed)}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
