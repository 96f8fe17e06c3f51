"""PETL-only checkpoints: only the trainable state is saved; it loads over
the pretrained CLIP into the same model exactly, and is refused by a model
with another PETL setup."""
import glob
import os.path as osp
import re
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from conftest import build_runner
from helpers.resume_cfg import UP_PERSON, resume_cfg

import mmtpr.models.petl.checkpoint as ckpt_io
from mmtpr.engine.hooks import PETLCheckpointHook
from mmtpr.models.backbones.open_clip_backbone import OpenCLIPBackbone
from mmtpr.models.petl.checkpoint import (
    check_petl_checkpoint,
    load_petl_checkpoint,
    petl_state_dict_keys,
)
from mmtpr.registry import MODELS
from mmtpr.utils.checkpoint import load_checkpoint_file

DM_ADAPTER = [dict(type='MixtureOfAdapters', num_experts=4, top_k=2,
                   reduction=4, scales=dict(visual=1.0, text=1.0))]


def cfg_for(base, name, **extra):
    cfg = resume_cfg(base / name, str(base / 'synth'), max_epochs=1,
                     **extra)
    cfg.model.backbone.pretrained = str(base / 'tiny_clip.pth')
    return cfg


def read_log(runner):
    with open(glob.glob(osp.join(runner.log_dir, '*.log'))[0]) as f:
        return f.read()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp('petl_ckpt')
    cfg = resume_cfg(base / 'unused', str(base / 'synth'))
    torch.manual_seed(7)
    clip = OpenCLIPBackbone(model_cfg=cfg.model.backbone.model_cfg,
                            image_size=cfg.model.backbone.image_size)
    torch.save(clip.clip.state_dict(), str(base / 'tiny_clip.pth'))
    runner = build_runner(cfg_for(base, 'train'))
    runner.train()
    checkpoint = osp.join(str(base / 'train'), 'epoch_1.pth')
    return runner, checkpoint, base


def test_the_checkpoint_holds_only_the_trainable_state(trained):
    runner, path, _ = trained
    checkpoint = load_checkpoint_file(path)
    trainable = [n for n, p in runner.model.named_parameters()
                 if p.requires_grad]
    state_dict = checkpoint['state_dict']
    assert list(state_dict) == trainable == checkpoint['meta']['petl_keys']
    assert len(trainable) == 43  # prefix, LoRA, adapters, logit scale
    assert checkpoint['meta']['petl_only'] is True
    assert 'backbone.clip.visual.conv1.weight' not in state_dict
    model_state = runner.model.state_dict()
    for key, value in state_dict.items():
        assert torch.equal(value, model_state[key])
    # everything resume needs
    assert {'optimizer', 'param_schedulers', 'message_hub',
            'rng_states'} <= set(checkpoint)
    numel = sum(p.numel() for p in runner.model.parameters()
                if p.requires_grad)
    log = read_log(runner)
    assert (f'saving a PETL-only state dict of {numel:,} parameters in 43 '
            f'tensors, {numel * 4 / 1e6:.1f} MB') in log


def test_load_from_over_the_pretrained_clip_gives_the_trained_model(
        trained):
    runner, path, base = trained
    # another seed: every weight not in the checkpoint or the pretrained
    # file would differ
    cfg = cfg_for(base, 'load', load_from=path,
                  randomness=dict(seed=123))
    loaded = build_runner(cfg)
    metrics = loaded.test()
    expected = loaded.model.state_dict()
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert metrics == runner.test()
    log = read_log(loaded)
    assert 'missing keys' not in log and 'trained on other frozen' not in log


def test_load_petl_checkpoint_for_inference(trained, monkeypatch):
    runner, path, base = trained
    torch.manual_seed(123)
    model = MODELS.build(cfg_for(base, 'inference').model)
    load_petl_checkpoint(model, path)
    expected = runner.model.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key

    # over other frozen weights (no `pretrained`): loaded, with a warning
    warnings = []
    monkeypatch.setattr(ckpt_io, 'print_log',
                        lambda msg, **kwargs: warnings.append(msg))
    cfg = cfg_for(base, 'inference')
    cfg.model.backbone.pretrained = None
    load_petl_checkpoint(MODELS.build(cfg.model), path)
    assert len(warnings) == 1
    assert re.match(r"PETL-only checkpoint '.*epoch_1.pth' was trained on "
                    'other frozen weights', warnings[0])


def test_another_lora_rank_is_refused_by_load_from(trained):
    _, path, base = trained
    petl = [dict(t, rank=8) if t['type'] == 'KVLoRA' else t
            for t in UP_PERSON]
    cfg = cfg_for(base, 'rank8', load_from=path)
    cfg.model.backbone.petl = petl
    runner = build_runner(cfg)
    # the model recorded in the checkpoint names the difference
    with pytest.raises(
            ValueError,
            match=r"cannot load '.*epoch_1.pth': it was saved from another "
            r'model config .*\(backbone\.petl\[1\]\.rank: 4 in the '
            r'checkpoint, 8 in the config\)'):
        runner.test()
    # without that record (e.g. a checkpoint of an older version), the
    # tensors' shapes do
    checkpoint = load_checkpoint_file(path)
    del checkpoint['meta']['mmtpr_model']
    stripped = str(base / 'no_record.pth')
    torch.save(checkpoint, stripped)
    cfg = cfg_for(base, 'rank8b', load_from=stripped)
    cfg.model.backbone.petl = petl
    runner = build_runner(cfg)
    with pytest.raises(
            ValueError,
            match=r"PETL-only checkpoint '.*no_record.pth' does not match the "
            r'PETL setup of the model \(43 tensors in the checkpoint, 43 '
            r'trainable/PETL tensors in the model\): 8 key\(s\) of another '
            r'shape \(checkpoint vs model\): backbone\.clip\.visual\.'
            r'transformer\.resblocks\.0\.attn\.lora\.lora_a_k \(4, 32\) vs '
            r'\(8, 32\), .*, \.\.\. \(8 in all\)\. Build the model with the '
            'same model.backbone.petl'):
        runner.test()


def test_another_technique_is_refused_with_the_keys(trained):
    _, path, base = trained
    cfg = cfg_for(base, 'dm')
    cfg.model.backbone.petl = DM_ADAPTER
    model = MODELS.build(cfg.model)
    state_dict = load_checkpoint_file(path)['state_dict']
    expected = petl_state_dict_keys(model)
    with pytest.raises(ValueError) as info:
        check_petl_checkpoint(model, state_dict)
    message = str(info.value)
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    assert len(unexpected) == 42 and missing  # all but the logit scale
    assert (f'missing {len(missing)} key(s) of the model: '
            + ', '.join(missing[:5]) + f', ... ({len(missing)} in all)'
            ) in message
    assert (f'{len(unexpected)} unexpected key(s): '
            + ', '.join(unexpected[:5]) + ', ... (42 in all)') in message
    # the same state dict with DDP's prefix is checked alike
    with pytest.raises(ValueError, match='42 unexpected key'):
        check_petl_checkpoint(
            model, {f'module.{k}': v for k, v in state_dict.items()})


def test_a_model_without_trainable_state_saves_in_full():
    model = nn.Linear(2, 2).requires_grad_(False)
    logger = SimpleNamespace(infos=[], warnings=[])
    logger.info, logger.warning = logger.infos.append, logger.warnings.append
    runner = SimpleNamespace(model=model, logger=logger)
    checkpoint = dict(meta={}, state_dict=model.state_dict())
    PETLCheckpointHook(petl_only=True).before_save_checkpoint(
        runner, checkpoint)
    assert list(checkpoint['state_dict']) == ['weight', 'bias']
    assert 'petl_only' not in checkpoint['meta']
    assert 'no trainable parameters' in logger.warnings[0]
    assert logger.infos == ['PETLCheckpointHook: saving a full state dict '
                            'of 6 parameters in 2 tensors, 0.0 MB']


def test_petl_only_must_be_a_bool():
    with pytest.raises(TypeError, match="petl_only must be a bool, got 'y'"):
        PETLCheckpointHook(petl_only='y')
