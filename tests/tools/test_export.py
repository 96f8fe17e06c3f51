"""tools/export.py: merge KV-LoRA, write a self-contained checkpoint and
config, same features, strict loading, refusals."""
import copy
import importlib.util
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from conftest import TINY_CLIP, tiny_cfg
from mmengine.config import Config

from mmtpr.models.petl import (
    KVLoRA,
    LNAdapter,
    MixtureOfAdapters,
    PETLAttention,
)
from mmtpr.models.petl.checkpoint import (
    frozen_fingerprint,
    petl_state_dict_keys,
    select_state_dict,
)
from mmtpr.registry import MODELS
from mmtpr.utils.checkpoint import load_checkpoint_file

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
IMAGE_SIZE = (128, 48)  # the demo config's; 8x3 patches
# TINY_CLIP has the demo pipeline's context length (77)
MODEL_CFG = TINY_CLIP
UP_PETL = [dict(type='ScaledPrefix', length=3),
           dict(type='KVLoRA', rank=4),
           dict(type='LNAdapter', reduction=8)]
DM_PETL = [dict(type='MixtureOfAdapters', num_experts=4, top_k=2,
                reduction=8, scales=dict(visual=1.0, text=1.0))]


def load_tool(name):
    path = osp.join(ROOT, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'mmtpr_{name}_tool',
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_tool('export')


def inputs():
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, *IMAGE_SIZE, generator=gen)
    texts = torch.zeros(3, 77, dtype=torch.long)
    for i, n in enumerate((4, 9, 20)):
        texts[i, 0] = 49406
        texts[i, 1:1 + n] = torch.randint(1, 49000, (n, ), generator=gen)
        texts[i, 1 + n] = 49407
    return images, texts


@torch.no_grad()
def features(model):
    return model.eval()(*inputs(), mode='tensor')


class Trained:
    """A tiny config on disk, its pretrained CLIP file, and a "trained"
    model (every trainable parameter moved off its init, so LoRA B and the
    adapters' up-projections are non-zero) saved both PETL-only and in
    full."""

    def __init__(self, base, petl, seed, **model_extra):
        os.makedirs(base, exist_ok=True)
        torch.manual_seed(seed)
        clip = MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=MODEL_CFG,
                                 image_size=IMAGE_SIZE)).clip
        self.pretrained = osp.join(base, 'clip_pretrained.pth')
        torch.save(clip.state_dict(), self.pretrained)
        self.clip_state = copy.deepcopy(clip.state_dict())
        cfg = tiny_cfg(osp.join(base, 'work'), osp.join(base, 'synth'))
        cfg.model.backbone.update(model_cfg=MODEL_CFG, freeze=True,
                                  pretrained=self.pretrained, petl=petl)
        cfg.model.update(model_extra)
        self.config = osp.join(base, 'train_config.py')
        cfg.dump(self.config)
        self.model = MODELS.build(cfg.model)
        with torch.no_grad():
            for param in self.model.parameters():
                if param.requires_grad:
                    param.add_(0.05 * torch.randn_like(param))
        keys = petl_state_dict_keys(self.model)
        state = self.model.state_dict()
        self.petl_ckpt = osp.join(base, 'petl_only.pth')
        torch.save(dict(state_dict=select_state_dict(state, keys), meta=dict(
            petl_only=True, petl_keys=keys, epoch=3,
            frozen_fingerprint=frozen_fingerprint(self.model, keys))),
            self.petl_ckpt)
        self.full_ckpt = osp.join(base, 'full.pth')
        torch.save(dict(state_dict=state, meta=dict(epoch=3)),
                   self.full_ckpt)
        self.features = features(self.model)

    def hide_pretrained(self):
        """Move the pretrained CLIP away: the export must not need it."""
        os.rename(self.pretrained, self.pretrained + '.hidden')

    def restore_pretrained(self):
        if osp.exists(self.pretrained + '.hidden'):
            os.rename(self.pretrained + '.hidden', self.pretrained)


@pytest.fixture(scope='module')
def up(tmp_path_factory):
    return Trained(str(tmp_path_factory.mktemp('up')), UP_PETL, seed=0)


@pytest.fixture(scope='module')
def dm(tmp_path_factory):
    return Trained(str(tmp_path_factory.mktemp('dm')), DM_PETL, seed=1,
                   aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5))


def load_export(out):
    cfg = Config.fromfile(osp.join(out, 'config.py'))
    ckpt = load_checkpoint_file(osp.join(out, 'model.pth'))
    model = MODELS.build(cfg.model)
    result = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    return cfg, ckpt, model


def assert_features_equal(got, expected):
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-5, rtol=0), \
            float((a - b).abs().max())


def test_up_person_petl_only_export_merges_kv_lora(tool, up, tmp_path,
                                                   capsys):
    out = str(tmp_path / 'export')
    meta = tool.main([up.config, up.petl_ckpt, '--out', out])
    printed = capsys.readouterr().out
    lora_params = 4 * (4 * 4 * 64 + 2)  # 4 layers of 4 r d + 2
    assert meta['merged'] == {'KVLoRA': dict(modules=4,
                                             parameters=lora_params)}
    assert meta['kept'] == ['ScaledPrefix', 'LNAdapter']
    assert meta['source_kind'] == 'PETL-only'
    assert meta['source_meta'] == {'epoch': 3}
    assert meta['parameters_before'] - meta['parameters_after'] == \
        lora_params
    assert 'merged: KVLoRA x4 (4,104 parameters' in printed
    assert f"parameters: {meta['parameters_before']:,} before" in printed
    assert 'loads model.pth strictly' in printed

    up.hide_pretrained()
    try:
        cfg, ckpt, model = load_export(out)
    finally:
        up.restore_pretrained()
    assert cfg.model.backbone.pretrained is None
    assert [p['type'] for p in cfg.model.backbone.petl] == [
        'ScaledPrefix', 'LNAdapter']
    assert cfg.default_hooks.petl_checkpoint.petl_only is False
    assert ckpt['meta']['merged'] == meta['merged']
    assert ckpt['meta']['petl_only'] is False
    assert not any(isinstance(m, KVLoRA) for m in model.modules())
    assert sum(isinstance(m, LNAdapter) for m in model.modules()) == 8
    assert sum(p.numel() for p in model.parameters()) == \
        meta['parameters_after']

    # the in-projection holds W + s B A in its K and V rows, Q untouched
    for tower, prefix in (('visual', 'visual.transformer'),
                          ('text', 'transformer')):
        for i in range(2):
            key = f'{prefix}.resblocks.{i}.attn.in_proj_weight'
            trained = up.model.backbone.clip.get_submodule(
                f'{prefix}.resblocks.{i}.attn')
            exported = ckpt['state_dict'][f'backbone.clip.{key}']
            original = up.clip_state[key]
            assert torch.equal(exported[:64], original[:64])
            delta = trained.lora.delta_weight().detach()
            assert delta.abs().max() > 1e-3, tower  # LoRA is not a no-op
            assert torch.allclose(exported[64:], original[64:] + delta,
                                  atol=1e-6)

    assert_features_equal(features(model), up.features)
    # and the merged LoRA matters: without it the features differ
    without = copy.deepcopy(up.model)
    for module in without.modules():
        if isinstance(module, KVLoRA):
            nn.init.zeros_(module.lora_b_k)
            nn.init.zeros_(module.lora_b_v)
    assert (features(without)[0] - up.features[0]).abs().max() > 1e-3


def test_exported_model_is_tested_without_the_pretrained_clip(
        tool, up, tmp_path):
    out = str(tmp_path / 'export')
    tool.main([up.config, up.full_ckpt, '--out', out, '--no-verify'])
    test_tool = load_tool('test')
    up.hide_pretrained()
    try:
        exported = test_tool.main([
            osp.join(out, 'config.py'), osp.join(out, 'model.pth'),
            '--work-dir', str(tmp_path / 'work_export')])
    finally:
        up.restore_pretrained()
    trained = test_tool.main([up.config, up.full_ckpt, '--work-dir',
                              str(tmp_path / 'work_trained')])
    assert set(exported) >= {'tpr/R1', 'tpr/mAP'}
    for key, value in trained.items():
        assert exported[key] == pytest.approx(value, abs=1e-6), key


def test_dm_adapter_full_export_keeps_the_mixture(tool, dm, tmp_path,
                                                  capsys):
    out = str(tmp_path / 'export')
    meta = tool.main([dm.config, dm.full_ckpt, '--out', out])
    assert 'merged: nothing' in capsys.readouterr().out
    assert meta['merged'] == {}
    assert meta['kept'] == ['MixtureOfAdapters']
    assert meta['source_kind'] == 'full'
    assert meta['parameters_before'] == meta['parameters_after']
    dm.hide_pretrained()
    try:
        cfg, ckpt, model = load_export(out)
    finally:
        dm.restore_pretrained()
    assert cfg.model.backbone.pretrained is None
    assert cfg.model.backbone.petl == DM_PETL
    assert sum(isinstance(m, MixtureOfAdapters)
               for m in model.modules()) == 4
    assert_features_equal(features(model), dm.features)
    # the same routing too: the mixtures are not a no-op here
    assert any(torch.count_nonzero(m.up_weight) > 0
               for m in model.modules() if isinstance(m, MixtureOfAdapters))


def test_no_merge_keeps_every_technique(tool, up, tmp_path):
    out = str(tmp_path / 'export')
    meta = tool.main([up.config, up.petl_ckpt, '--out', out, '--no-merge'])
    assert meta['merged'] == {} and meta['kept'] == [
        'ScaledPrefix', 'KVLoRA', 'LNAdapter']
    _, _, model = load_export(out)
    assert sum(isinstance(m, KVLoRA) for m in model.modules()) == 4
    assert_features_equal(features(model), up.features)


def test_refuses_a_checkpoint_of_another_config(tool, up, dm, tmp_path):
    out = str(tmp_path / 'export')
    # another LoRA rank: the PETL-only checkpoint does not fit
    with pytest.raises(ValueError, match=r'does not match the PETL setup.*'
                       r'lora_a_k \(4, 64\) vs \(2, 64\)'):
        tool.main([up.config, up.petl_ckpt, '--out', out, '--cfg-options',
                   'model.backbone.petl.1.rank=2'])
    # a full UP-Person checkpoint for the DM-Adapter config
    with pytest.raises(ValueError, match=r'does not match the model of the '
                       r'config: missing \d+ key\(s\).*branch_mlp.*'
                       r'\d+ unexpected key\(s\): .*attn\.prefix'):
        tool.main([dm.config, up.full_ckpt, '--out', out])
    # PETL parameters trained over other frozen weights
    with pytest.raises(ValueError, match='other frozen weights'):
        tool.main([up.config, up.petl_ckpt, '--out', out, '--cfg-options',
                   f'model.backbone.pretrained={dm.pretrained}'])
    assert not osp.exists(out)
    # an exported checkpoint with the training config
    tool.main([up.config, up.petl_ckpt, '--out', out, '--no-verify'])
    with pytest.raises(ValueError, match=r'is already an exported '
                       'checkpoint: it goes with the config.py'):
        tool.main([up.config, osp.join(out, 'model.pth'), '--out',
                   str(tmp_path / 'again')])


def test_a_wrong_merge_fails_the_verification(tool, up, tmp_path,
                                              monkeypatch):
    def doubled_merge(model):  # a bug: the delta added twice
        count = 0
        for module in model.modules():
            if isinstance(module, PETLAttention) and module.lora is not None:
                with torch.no_grad():
                    module.in_proj_weight[64:] += \
                        2 * module.lora.delta_weight()
                module.lora = None
                count += 1
        return count

    monkeypatch.setattr(KVLoRA, 'merge', staticmethod(doubled_merge))
    out = tmp_path / 'export'
    with pytest.raises(ValueError, match=r'(?s)other image features than '
                       r'the trained one \(max \|diff\| .*failed its '
                       'verification and was removed'):
        tool.main([up.config, up.petl_ckpt, '--out', str(out)])
    assert os.listdir(out) == []
