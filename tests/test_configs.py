"""Every config under configs/ parses and builds its components."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmtpr.registry import (
    DATASETS,
    METRICS,
    MODELS,
    OPTIMIZERS,
    PARAM_SCHEDULERS,
    TRANSFORMS,
)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True)
    if '_base_' not in p and not osp.basename(p).startswith('_'))


def test_configs_exist():
    names = {osp.relpath(p, ROOT) for p in CONFIGS}
    assert 'configs/baseline/clip_b16_cuhk.py' in names
    assert 'configs/demo/clip_tiny_synth.py' in names
    for data in ('cuhk', 'icfg', 'rstp'):
        assert f'configs/up_person/clip_b16_{data}.py' in names


@pytest.mark.parametrize('data, dataset, lr', [
    ('cuhk', 'CUHKPEDES', 1e-3), ('icfg', 'ICFGPEDES', 1e-3),
    ('rstp', 'RSTPReid', 1e-4)])
def test_up_person_recipe(data, dataset, lr):
    """methods.md 1.1, 1.5, 3."""
    cfg = Config.fromfile(osp.join(ROOT, f'configs/up_person/'
                                   f'clip_b16_{data}.py'))
    backbone = cfg.model.backbone
    assert backbone.freeze and backbone.model_name == 'ViT-B-16'
    assert tuple(backbone.image_size) == (384, 128)
    assert {t.type: t for t in backbone.petl} == {
        'ScaledPrefix': dict(type='ScaledPrefix', length=10, sp_init=100.0),
        'KVLoRA': dict(type='KVLoRA', rank=32),
        'LNAdapter': dict(type='LNAdapter', reduction=8)}
    opt = cfg.optim_wrapper
    assert (opt.optimizer.type, opt.optimizer.lr, opt.optimizer.eps,
            opt.optimizer.weight_decay) == ('Adam', lr, 1e-3, 4e-5)
    # one lr for every parameter, no weight decay on biases
    assert opt.paramwise_cfg.custom_keys == {'bias': dict(decay_mult=0.0)}
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.train_dataloader.dataset.type == dataset
    assert cfg.test_dataloader.dataset.split == 'test'
    assert 'MaskCaption' in [t.type for t in
                             cfg.train_dataloader.dataset.pipeline]
    assert cfg.train_cfg.max_epochs == 60


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmtpr'
    # The model, on the meta device (no weights are read there).
    model_cfg = cfg.model.copy()
    model_cfg.backbone = dict(model_cfg.backbone, pretrained=None)
    with torch.device('meta'):
        model = MODELS.build(model_cfg)
    assert hasattr(model, 'backbone') and hasattr(model, 'head')
    # Every named component resolves in the registries.
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:  # ICFG-PEDES has no validation split
            assert split == 'val' and cfg.get('val_cfg') is None
            assert cfg.default_hooks.checkpoint.save_best is None
            continue
        datasets = loader.dataset.get('datasets', [loader.dataset])
        assert DATASETS.get(loader.dataset.type) is not None
        for dataset in datasets:
            assert DATASETS.get(dataset.type) is not None
            for step in dataset.pipeline:
                TRANSFORMS.build(step)
            assert dataset.split == split
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        if evaluator is not None:
            METRICS.build(evaluator)
    assert OPTIMIZERS.get(cfg.optim_wrapper.optimizer.type) is not None
    for scheduler in cfg.param_scheduler:
        assert PARAM_SCHEDULERS.get(scheduler.type) is not None
    # Model selection is on validation data, never on the test split.
    if cfg.get('val_dataloader') is not None:
        assert cfg.val_dataloader.dataset.split == 'val'
        assert cfg.default_hooks.checkpoint.save_best == 'tpr/R1'


def test_cuhk_recipe_matches_methods_md():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/baseline/clip_b16_cuhk.py'))
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.eps, opt.weight_decay) == ('Adam', 1e-3, 4e-5)
    assert cfg.train_cfg.max_epochs == 60
    schedule, = cfg.param_scheduler
    assert (schedule.type, schedule.warmup_steps, schedule.warmup_factor,
            schedule.total_steps) == ('WarmupCosineLR', 5, 0.1, 60)
    names = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert names == ['LoadPersonImage', 'Resize', 'RandomFlip',
                     'RandomCrop', 'TokenizeCaption', 'MaskCaption',
                     'PackTPRInputs']
    assert cfg.model.data_preprocessor.random_erasing.prob == 0.5


def test_schedule_lr_per_epoch_matches_the_reference():
    """methods.md 0.8: factors 0.10, 0.28, 0.46, 0.64, 0.82, then cosine
    from 1.0 at epoch 6 to ~0.0008 at epoch 60 (1-based epochs)."""
    import math

    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/schedules/'
                                   'sdm_60e.py'))
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1.0)
    schedulers = [
        PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer))
        for s in cfg.param_scheduler
    ]
    factors = []
    for _ in range(60):
        factors.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    assert factors[:5] == pytest.approx([0.1, 0.28, 0.46, 0.64, 0.82])
    expected = [0.5 * (1 + math.cos(math.pi * (e - 6) / 55))
                for e in range(6, 61)]
    assert factors[5:] == pytest.approx(expected, abs=1e-9)
    assert factors[-1] == pytest.approx(0.000815, abs=1e-5)


@pytest.mark.parametrize('data, dataset', [
    ('cuhk', 'CUHKPEDES'), ('icfg', 'ICFGPEDES'), ('rstp', 'RSTPReid')])
def test_dm_adapter_recipe(data, dataset):
    """methods.md 2.1, 2.5, 3."""
    cfg = Config.fromfile(osp.join(ROOT, f'configs/dm_adapter/'
                                   f'clip_b16_{data}.py'))
    backbone = cfg.model.backbone
    assert backbone.freeze and tuple(backbone.image_size) == (384, 128)
    moa, = backbone.petl
    assert (moa.type, moa.num_experts, moa.top_k, moa.reduction,
            moa.scales) == ('MixtureOfAdapters', 6, 2, 8,
                            dict(visual=0.1, text=4.0))
    assert cfg.model.aux_loss == dict(type='LoadBalanceLoss',
                                      loss_weight=0.5)
    opt = cfg.optim_wrapper
    assert (opt.optimizer.type, opt.optimizer.lr, opt.optimizer.eps,
            opt.optimizer.weight_decay) == ('Adam', 3e-4, 1e-3, 4e-5)
    assert opt.paramwise_cfg.custom_keys == {
        'bias': dict(lr_mult=2.0, decay_mult=0.0)}
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.train_dataloader.dataset.type == dataset
    assert cfg.custom_hooks[0].type == 'LoadBalanceLossHook'
    assert cfg.train_cfg.max_epochs == 60


CROSS = sorted(glob.glob(osp.join(ROOT, 'configs', 'cross_domain', '*.py')))
DATASET_OF = dict(cuhk='CUHKPEDES', icfg='ICFGPEDES', rstp='RSTPReid')


@pytest.mark.parametrize('path', CROSS, ids=[osp.basename(p) for p in CROSS])
def test_cross_domain_config_tests_the_trained_model_on_another_dataset(
        path):
    name = osp.basename(path)[:-3]
    method = name.rsplit('_', 3)[0]
    source, _, target = name.rsplit('_', 3)[1:]
    cfg = Config.fromfile(path)
    trained = Config.fromfile(
        osp.join(ROOT, 'configs', method, f'clip_b16_{source}.py'))
    # the same model and training, only the test data changes
    assert cfg.model == trained.model
    assert cfg.train_dataloader == trained.train_dataloader
    assert cfg.train_dataloader.dataset.type == DATASET_OF[source]
    test = cfg.test_dataloader.dataset
    assert (test.type, test.split) == (DATASET_OF[target], 'test')
    assert test.pipeline == trained.test_dataloader.dataset.pipeline
    assert set(test) == {'type', 'data_root', 'split', 'pipeline'}
