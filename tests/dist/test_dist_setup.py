"""resolve_dist_backend and setup_dist: what they change in a config on a
machine without CUDA (this one) and with CUDA (mocked)."""
import datetime

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config

import mmtpr.utils.dist as mmtpr_dist
from mmtpr.utils import resolve_dist_backend, setup_dist


def make_cfg(backend='nccl', **extra):
    return Config(dict(env_cfg=dict(dist_cfg=dict(backend=backend)),
                       **extra))


@pytest.fixture
def messages(monkeypatch):
    logged = []
    monkeypatch.setattr(mmtpr_dist, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    return logged


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


@pytest.fixture
def fake_init(monkeypatch):
    """Record init_process_group calls instead of joining a group."""
    calls = []
    monkeypatch.setattr(dist, 'is_initialized', lambda: False)
    monkeypatch.setattr(dist, 'init_process_group',
                        lambda **kwargs: calls.append(kwargs))
    return calls


def test_nccl_becomes_gloo_without_cuda_with_a_message(no_cuda, messages):
    cfg = make_cfg()
    assert resolve_dist_backend(cfg) == 'gloo'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert len(messages) == 1 and "'gloo'" in messages[0] and \
        "'nccl'" in messages[0]


def test_other_backends_and_cuda_machines_are_left_alone(monkeypatch,
                                                         messages):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert resolve_dist_backend(make_cfg('gloo')) == 'gloo'
    assert resolve_dist_backend(Config(dict())) is None
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = make_cfg(launcher='pytorch')
    setup_dist(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg
    assert messages == []


def test_setup_without_a_launcher_only_resolves_the_backend(no_cuda,
                                                             fake_init):
    cfg = make_cfg(launcher='none')
    setup_dist(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert 'model_wrapper_cfg' not in cfg and fake_init == []


def test_setup_with_torchrun_on_the_cpu(no_cuda, fake_init):
    cfg = make_cfg(launcher='pytorch', find_unused_parameters=True)
    cfg.env_cfg.dist_cfg.timeout = 60
    setup_dist(cfg)
    # the Runner's default wrapper, without device_ids
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=True, device_ids=None)
    assert fake_init == [dict(backend='gloo',
                              timeout=datetime.timedelta(seconds=60))]


def test_setup_keeps_the_options_of_a_configured_wrapper(no_cuda,
                                                         fake_init):
    cfg = make_cfg(launcher='pytorch', model_wrapper_cfg=dict(
        type='MMDistributedDataParallel', find_unused_parameters=True))
    setup_dist(cfg)
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', find_unused_parameters=True,
        device_ids=None)
    assert fake_init == [dict(backend='gloo')]
