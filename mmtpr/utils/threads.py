"""CPU threads and data-loader workers: mmtpr's defaults for training and
inference on a CPU, and why.

PyTorch starts one compute (OpenMP) thread per core, and a data loader
with ``num_workers=w`` adds ``w`` processes. On a small machine that is
also running other jobs, that oversubscribes the cores, and OpenMP's
threads meet at a barrier after every parallel operation: when one of
them has been preempted, the others wait (spinning, by default) for a
whole scheduler time slice, once per operation. A training step of
thousands of small operations (the tiny demo model, per-expert products)
then slows down far more than its share of the CPU explains
(``benchmarks/load_collapse.py`` measures it).

The policy (:func:`cpu_thread_plan`), from that benchmark (the demo's
DM-Adapter loop next to 8 busy processes on 2 cores: 34x slower than
idle with PyTorch's defaults, 5.4x with these, where the lost CPU
explains 5-6x; docs/benchmarks.md):

- ``OMP_WAIT_POLICY=PASSIVE``, the one that matters: a thread that
  waits at a barrier sleeps at once instead of spinning, so waiting
  threads do not take the CPU from the ones they wait for (5x faster
  loaded iterations; on an idle machine equal within noise).
  OpenMP reads it when PyTorch is loaded: it must be in the environment
  before ``import torch`` (:func:`thread_env` gives the variables for a
  child process; :func:`configure_cpu_threads` warns when it is missing);
- ``cpus``: the cores this process may use: its CPU affinity, capped by
  a cgroup CPU quota (containers);
- compute threads: one per core (with passive waiting, a data-loader
  worker that is busy now and then costs them little);
- data-loader workers: 1 on up to 4 cores, else 2: one worker loading
  the next batch while the model computes beat loading in the main
  process (on a CPU the model, not the data, is the bottleneck).

``MMTPR_NUM_THREADS`` (else ``OMP_NUM_THREADS``, the user's own OpenMP
setting) and ``MMTPR_NUM_WORKERS`` in the environment override the
computed values.
"""
import os
from typing import NamedTuple, Optional

from mmengine.logging import print_log

from .errors import ConfigError

_QUOTA_FILE = '/sys/fs/cgroup/cpu.max'


class ThreadPlan(NamedTuple):
    """How a CPU process divides its cores.

    Attributes:
        cpus (int): the cores this process may use.
        num_threads (int): PyTorch's compute (intra-op) threads.
        num_workers (int): data-loader workers.
    """

    cpus: int
    num_threads: int
    num_workers: int


def _cgroup_quota_cpus(path: str = _QUOTA_FILE) -> Optional[int]:
    """The cgroup v2 CPU quota in whole cores (rounded up), if any."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == 'max':
        return None
    try:
        return max(1, -(-int(quota) // int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def available_cpus() -> int:
    """The cores this process may run on: its CPU affinity, capped by a
    cgroup CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota_cpus()
    return max(1, min(cpus, quota) if quota else cpus)


def _env_int(name: str) -> Optional[int]:
    value = os.environ.get(name)
    if value in (None, ''):
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError(f'{name} must be a non-negative integer, got '
                          f'{value!r}')
    return number


def cpu_thread_plan(cpus: Optional[int] = None,
                    num_workers: Optional[int] = None) -> ThreadPlan:
    """mmtpr's thread and worker defaults for ``cpus`` cores (see the
    module docstring).

    Args:
        cpus (int, optional): the cores to plan for. Defaults to
            :func:`available_cpus`.
        num_workers (int, optional): data-loader workers; None chooses
            (``MMTPR_NUM_WORKERS``, else 1 on up to 4 cores, else 2).

    Returns:
        ThreadPlan: the cores, compute threads and workers.
    """
    cpus = available_cpus() if cpus is None else max(1, int(cpus))
    if num_workers is None:
        num_workers = _env_int('MMTPR_NUM_WORKERS')
    if num_workers is None:
        num_workers = 1 if cpus <= 4 else 2
    # the user's own OpenMP setting is kept (a job scheduler, a benchmark)
    threads = _env_int('MMTPR_NUM_THREADS') or \
        _env_int('OMP_NUM_THREADS') or cpus
    return ThreadPlan(cpus, threads, num_workers)


def thread_env(plan: Optional[ThreadPlan] = None) -> dict:
    """Environment variables that give a child process ``plan``'s compute
    threads and OpenMP's passive wait policy (values already set in this
    process's environment are kept)."""
    plan = plan or cpu_thread_plan()
    wanted = dict(OMP_NUM_THREADS=str(plan.num_threads),
                  MKL_NUM_THREADS=str(plan.num_threads),
                  OMP_WAIT_POLICY='PASSIVE')
    return {k: os.environ.get(k, v) for k, v in wanted.items()}


def configure_cpu_threads(plan: Optional[ThreadPlan] = None) -> ThreadPlan:
    """Apply ``plan`` (default :func:`cpu_thread_plan`) to this process:
    PyTorch's compute threads, and one inter-op thread. Logs the plan, with
    a warning when OpenMP's wait policy is not passive.

    Returns:
        ThreadPlan: the plan applied; its ``num_workers`` is for the data
        loaders (set them in the config: this function cannot).
    """
    import torch
    plan = plan or cpu_thread_plan()
    torch.set_num_threads(plan.num_threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only before the first inter-op work
        pass
    print_log(f'CPU threads: {plan.num_threads} compute thread(s), '
              f'{plan.num_workers} data-loader worker(s) on {plan.cpus} '
              'core(s)', logger='current')
    if os.environ.get('OMP_WAIT_POLICY', '').upper() != 'PASSIVE':
        import logging
        print_log('OMP_WAIT_POLICY is not PASSIVE: waiting OpenMP threads '
                  'spin, which slows training down on a loaded machine; '
                  'export OMP_WAIT_POLICY=PASSIVE before starting Python',
                  logger='current', level=logging.WARNING)
    return plan
