"""Helpers for multi-process training and testing.

- :func:`all_gather_with_grad` concatenates a tensor over all ranks with
  gradients flowing back to each rank's own rows (used by
  :class:`mmtpr.models.SDMHead` to compute SDM over the global batch).
- :func:`resolve_dist_backend` and :func:`setup_dist` make a config that
  names the NCCL backend run on machines without CUDA (gloo, CPU-only DDP).
"""
import datetime
from typing import List, Optional

import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel


def is_multiprocess(group: Optional[dist.ProcessGroup] = None) -> bool:
    """Whether torch.distributed is initialised with more than one rank."""
    return (dist.is_available() and dist.is_initialized()
            and dist.get_world_size(group) > 1)


def _gather_sizes(num_rows: int, device: torch.device,
                  group: Optional[dist.ProcessGroup]) -> List[int]:
    size = torch.tensor([num_rows], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size(group))]
    dist.all_gather(sizes, size, group=group)
    return [int(s.item()) for s in sizes]


def all_gather_with_grad(tensor: torch.Tensor,
                         group: Optional[dist.ProcessGroup] = None
                         ) -> torch.Tensor:
    """Concatenate ``tensor`` (B_r, ...) of every rank r along dim 0.

    The result, (sum_r B_r, ...), holds rank 0's rows first, then rank 1's,
    and so on, on every rank. Ranks may hold different numbers of rows: the
    sizes are gathered first, every tensor is zero-padded to the largest,
    gathered, and only the valid rows are kept, so the padding never
    reaches the result (nor, therefore, any loss computed from it).

    When ``tensor`` requires grad, the gather is
    ``torch.distributed.nn.functional.all_gather``, which is autograd-aware
    (any backend, gloo included): in backward, rank r receives the SUM over
    all ranks k of the gradient that rank k's loss sends to rank r's rows.
    If every rank computes the same loss L from the gathered tensor, rank r
    thus gets ``world_size * dL/d(its rows)``; DDP's gradient AVERAGING
    divides this factor out again (see :class:`mmtpr.models.SDMHead`).
    Without grad (e.g. integer labels) a plain ``all_gather`` is used.

    Outside a multi-process run the tensor is returned unchanged.

    Args:
        tensor (Tensor): (B_r, ...) rows of this rank; the trailing
            dimensions and the dtype must be the same on every rank.
        group (ProcessGroup, optional): defaults to the world.

    Returns:
        Tensor: (sum_r B_r, ...).
    """
    if not is_multiprocess(group):
        return tensor
    if tensor.dim() == 0:
        raise ValueError('all_gather_with_grad needs a tensor with a batch '
                         'dimension, got a 0-dim tensor')
    sizes = _gather_sizes(tensor.shape[0], tensor.device, group)
    longest = max(sizes)
    if tensor.shape[0] < longest:
        pad = tensor.new_zeros((longest - tensor.shape[0], ) +
                               tuple(tensor.shape[1:]))
        padded = torch.cat([tensor, pad])
    else:
        padded = tensor
    if padded.requires_grad:
        from torch.distributed.nn.functional import all_gather
        gathered = all_gather(padded.contiguous(), group=group)
    else:
        gathered = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(gathered, padded.contiguous(), group=group)
    return torch.cat([part[:n] for part, n in zip(gathered, sizes)])


def resolve_dist_backend(cfg) -> Optional[str]:
    """Switch ``cfg.env_cfg.dist_cfg.backend`` from 'nccl' to 'gloo' when
    CUDA is not available (NCCL only runs on NVIDIA GPUs); log the change.

    Args:
        cfg (Config | dict): the run's config, changed in place.

    Returns:
        str | None: the backend the config now names (None when it names
        none).
    """
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg')
    if dist_cfg is None:
        return None
    backend = dist_cfg.get('backend')
    if backend == 'nccl' and not torch.cuda.is_available():
        dist_cfg['backend'] = backend = 'gloo'
        print_log(
            "CUDA is not available: using the 'gloo' distributed backend "
            "instead of 'nccl' (env_cfg.dist_cfg.backend)",
            logger='current')
    return backend


def setup_dist(cfg) -> None:
    """Make ``cfg`` (with ``cfg.launcher`` set) launch on this machine.

    With CUDA this only calls :func:`resolve_dist_backend` (a no-op for
    'nccl'). Without CUDA and with ``launcher='pytorch'`` (``torchrun``),
    it also works around two places where MMEngine 0.10 assumes GPUs:

    - ``mmengine.dist.init_dist`` calls ``torch.cuda.set_device`` before
      ``init_process_group``, which raises without an NVIDIA driver; so the
      process group is initialised here (from the environment ``torchrun``
      sets), and the Runner, finding it initialised, skips ``init_dist``;
    - ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to
      DistributedDataParallel, which refuses them for a CPU module; so
      ``cfg.model_wrapper_cfg.device_ids`` is set to None (keeping any
      other wrapper option, e.g. ``find_unused_parameters``).

    Call it after the config is final and before ``Runner.from_cfg``;
    calling it again changes nothing.

    Args:
        cfg (Config): the run's config, changed in place.
    """
    backend = resolve_dist_backend(cfg)
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # The Runner's own default wrapper, without device_ids.
        wrapper = dict(type='MMDistributedDataParallel',
                       broadcast_buffers=False,
                       find_unused_parameters=cfg.get(
                           'find_unused_parameters', False))
    kind = wrapper.get('type', 'MMDistributedDataParallel')
    if isinstance(kind, str):
        kind = MODEL_WRAPPERS.get(kind)
    if isinstance(kind, type) and issubclass(kind, DistributedDataParallel):
        wrapper['device_ids'] = None
    cfg['model_wrapper_cfg'] = wrapper
    if dist.is_initialized():
        return
    kwargs = dict(cfg.get('env_cfg', {}).get('dist_cfg', {}))
    kwargs.pop('backend', None)
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    dist.init_process_group(backend=backend or 'gloo', **kwargs)
