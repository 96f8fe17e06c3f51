"""mmtpr.utils.threads: the CPU thread and worker policy."""
import pytest
import torch

from mmtpr.utils import ConfigError, threads
from mmtpr.utils.threads import (
    ThreadPlan,
    configure_cpu_threads,
    cpu_thread_plan,
    thread_env,
)


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch):
    for name in ('MMTPR_NUM_THREADS', 'MMTPR_NUM_WORKERS', 'OMP_NUM_THREADS',
                 'MKL_NUM_THREADS', 'OMP_WAIT_POLICY'):
        monkeypatch.delenv(name, raising=False)


def test_plan_per_core_count():
    assert cpu_thread_plan(cpus=1) == ThreadPlan(1, 1, 1)
    assert cpu_thread_plan(cpus=2) == ThreadPlan(2, 2, 1)
    assert cpu_thread_plan(cpus=16) == ThreadPlan(16, 16, 2)
    assert cpu_thread_plan(cpus=2, num_workers=0).num_workers == 0


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv('MMTPR_NUM_THREADS', '3')
    monkeypatch.setenv('MMTPR_NUM_WORKERS', '0')
    assert cpu_thread_plan(cpus=2) == ThreadPlan(2, 3, 0)
    # OMP_NUM_THREADS is kept, below MMTPR_NUM_THREADS
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    assert cpu_thread_plan(cpus=2) == ThreadPlan(2, 3, 0)
    monkeypatch.delenv('MMTPR_NUM_THREADS')
    assert cpu_thread_plan(cpus=2) == ThreadPlan(2, 1, 0)
    monkeypatch.setenv('MMTPR_NUM_WORKERS', 'many')
    with pytest.raises(ConfigError, match='MMTPR_NUM_WORKERS'):
        cpu_thread_plan(cpus=2)


def test_cgroup_quota(tmp_path):
    quota = tmp_path / 'cpu.max'
    quota.write_text('150000 100000\n')
    assert threads._cgroup_quota_cpus(str(quota)) == 2
    quota.write_text('max 100000\n')
    assert threads._cgroup_quota_cpus(str(quota)) is None
    assert threads._cgroup_quota_cpus(str(tmp_path / 'missing')) is None
    assert threads.available_cpus() >= 1


def test_thread_env_keeps_what_is_set(monkeypatch):
    env = thread_env(ThreadPlan(4, 3, 1))
    assert env == dict(OMP_NUM_THREADS='3', MKL_NUM_THREADS='3',
                       OMP_WAIT_POLICY='PASSIVE')
    monkeypatch.setenv('OMP_WAIT_POLICY', 'ACTIVE')
    assert thread_env(ThreadPlan(4, 3, 1))['OMP_WAIT_POLICY'] == 'ACTIVE'


def test_configure_sets_threads_and_warns_without_passive(monkeypatch):
    logged = []
    monkeypatch.setattr(threads, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    before = torch.get_num_threads()
    try:
        plan = configure_cpu_threads(ThreadPlan(2, 1, 0))
        assert torch.get_num_threads() == 1 and plan.num_workers == 0
        assert any('OMP_WAIT_POLICY is not PASSIVE' in m for m in logged)
        logged.clear()
        monkeypatch.setenv('OMP_WAIT_POLICY', 'passive')
        configure_cpu_threads(ThreadPlan(2, 1, 0))
        assert not any('PASSIVE' in m for m in logged)
    finally:
        torch.set_num_threads(before)
