"""Shared pieces of the 2-process (gloo, CPU) tests: free ports, spawning,
a tiny PETL retriever and a fixed global batch."""
import os
import os.path as osp
import shutil
import socket
import subprocess

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import TINY_CLIP
from mmengine.structures import BaseDataElement

from mmtpr.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))

# The fixed global batch: 8 pairs, every person id but 3 on both halves of
# every split used below ((4, 4) and (3, 5)).
GLOBAL_PIDS = [0, 1, 2, 0, 1, 3, 2, 0]
PETL = [dict(type='KVLoRA', rank=4), dict(type='LNAdapter', reduction=8)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def spawn(fn, world_size: int, *args) -> None:
    """Run ``fn(rank, world_size, port, *args)`` in ``world_size``
    processes joined in a gloo process group."""
    mp.spawn(_entry, args=(fn, world_size, free_port(), args),
             nprocs=world_size, join=True)


def _entry(rank, fn, world_size, port, args):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def build_retriever(gather=None, petl=PETL, seed=0, aux_loss=None,
                    **backbone):
    """A frozen tiny CLIP with PETL modules perturbed away from their
    no-op init (so every PETL parameter gets a non-zero gradient) and a
    learnable logit scale."""
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='TPRRetriever',
        backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                      image_size=(64, 32), freeze=True, petl=petl,
                      **backbone),
        head=dict(type='SDMHead', learnable_scale=True, gather=gather),
        aux_loss=aux_loss))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.requires_grad and p.dim() > 0:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def global_batch(pids=GLOBAL_PIDS, seed=0):
    """Normalised images (G, 3, 64, 32), tokens (G, 77), data samples."""
    g = torch.Generator().manual_seed(seed)
    n = len(pids)
    images = torch.randn(n, 3, 64, 32, generator=g)
    texts = torch.zeros(n, 77, dtype=torch.long)
    texts[:, 0] = 49406
    for i in range(n):
        length = 3 + i % 4
        texts[i, 1:1 + length] = torch.randint(300, 2000, (length, ),
                                               generator=g)
        texts[i, 1 + length] = 49407
    samples = [BaseDataElement(metainfo=dict(pid=p)) for p in pids]
    return images, texts, samples


def rows(batch, start, stop):
    images, texts, samples = batch
    return images[start:stop], texts[start:stop], samples[start:stop]


def loss_and_grads(model, batch):
    """One forward in 'loss' mode and backward; the parsed loss and the
    gradients of the trainable parameters."""
    images, texts, samples = batch
    losses = model(images=images, texts=texts, data_samples=samples,
                   mode='loss')
    module = getattr(model, 'module', model)
    loss, log_vars = module.parse_losses(losses)
    loss.backward()
    grads = {n: p.grad.detach().clone()
             for n, p in module.named_parameters() if p.requires_grad}
    return loss.item(), log_vars, grads


def torchrun(tool, args, work_dir, nproc=2, env=None, timeout=180):
    """Run ``tools/dist_<tool>.sh`` (torchrun, ``--launcher pytorch``) with
    ``args``: CONFIG [CHECKPOINT] and the tool's options."""
    name = osp.splitext(tool)[0]
    shell = osp.join(ROOT, 'tools', f'dist_{name}.sh')
    env = dict(os.environ, **(env or {}))
    env['PORT'] = str(free_port())
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT, HERE, env.get('PYTHONPATH', '')])
    env.setdefault('OMP_NUM_THREADS', '1')
    env['HF_HUB_OFFLINE'] = '1'
    nfixed = 1 if name == 'train' else 2
    cmd = ['bash', shell, *args[:nfixed], str(nproc), *args[nfixed:]]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=timeout, cwd=str(work_dir), env=env)
    assert out.returncode == 0, (out.stdout[-3000:] + out.stderr[-3000:])
    return out
