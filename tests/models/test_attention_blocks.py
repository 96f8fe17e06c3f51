"""OpenCLIPBackbone(attention=...): mmtpr's SDPA blocks by default (equal
to open_clip's), open_clip's nn.MultiheadAttention on request, and the
warning where bfloat16 autocast on the CPU is known to be slower."""
import pytest
import torch
import torch.nn as nn
from conftest import TINY_CLIP

from mmtpr.models.backbones import precision
from mmtpr.models.petl import PETLBlock
from mmtpr.registry import MODELS
from mmtpr.utils import ConfigError


def build(attention=None):
    torch.manual_seed(0)
    extra = {} if attention is None else dict(attention=attention)
    return MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                             image_size=(64, 32), **extra)).eval()


def blocks(backbone):
    clip = backbone.clip
    return list(clip.visual.transformer.resblocks) + list(
        clip.transformer.resblocks)


def test_sdpa_blocks_by_default_and_equal_to_open_clip():
    sdpa, mha = build(), build('open_clip')
    assert all(isinstance(b, PETLBlock) for b in blocks(sdpa))
    assert not any(isinstance(b, PETLBlock) for b in blocks(mha))
    assert sdpa.state_dict().keys() == mha.state_dict().keys()
    images = torch.randn(3, 3, 64, 32)
    texts = torch.randint(1, 400, (3, 77))
    texts[:, 9] = 49407
    with torch.no_grad():
        torch.testing.assert_close(sdpa.encode_image(images),
                                   mha.encode_image(images))
        torch.testing.assert_close(sdpa.encode_text(texts),
                                   mha.encode_text(texts))


def test_unknown_attention_is_refused():
    with pytest.raises(ConfigError, match="'sdpa' or 'open_clip'"):
        build('flash')


def test_bf16_warning_names_the_reason_once(monkeypatch):
    monkeypatch.setattr(precision, 'cpu_has_bfloat16_matmul', lambda: True)
    logged = []
    monkeypatch.setattr(precision, 'print_log',
                        lambda msg, **kw: logged.append((msg, kw)))
    mha, sdpa = build('open_clip'), build()
    assert precision.slow_cpu_bfloat16_reason(sdpa.clip) is None
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        sdpa.encode_image(images)
        assert not logged
        mha.encode_image(images)
        mha.encode_image(images)
    assert len(logged) == 1
    message, kwargs = logged[0]
    assert 'nn.MultiheadAttention' in message and "attention='sdpa'" in \
        message and kwargs['level'] > 20
    # float32 forwards never check
    build('open_clip').encode_image(images)
    assert len(logged) == 1


def test_cpu_without_bf16_instructions_is_named(monkeypatch):
    monkeypatch.setattr(precision, 'cpu_has_bfloat16_matmul', lambda: False)
    reason = precision.slow_cpu_bfloat16_reason(nn.Linear(2, 2))
    assert 'no bfloat16 matrix instructions' in reason


def test_small_models_warn_when_training_only(monkeypatch):
    monkeypatch.setattr(precision, 'cpu_has_bfloat16_matmul', lambda: True)
    logged = []
    monkeypatch.setattr(precision, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    backbone = build()  # 64 wide
    images = torch.randn(2, 3, 64, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        with torch.no_grad():
            backbone.encode_image(images)
        assert not logged
        backbone.encode_image(images)
        backbone.encode_image(images)
    assert len(logged) == 1 and 'is 64 wide' in logged[0]
