"""LoadBalanceLossHook: routing statistics in the message hub and the
visualizer, loss-weight schedules, routing-collapse warnings."""
import glob
import itertools
import json
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from conftest import build_runner, tiny_cfg
from mmengine.logging import MessageHub

from mmtpr.engine.hooks import LoadBalanceLossHook
from mmtpr.models.losses.load_balance_loss import LoadBalanceLoss
from mmtpr.models.petl.moa import MixtureOfAdapters
from mmtpr.registry import HOOKS

VISUAL = 'backbone.clip.visual.transformer.resblocks.{}.branch_mlp'
TEXT = 'backbone.clip.transformer.resblocks.{}.branch_mlp'
_hub_ids = itertools.count()


class Recorder:
    """Stands for the visualizer and the logger: records the calls."""

    def __init__(self):
        self.scalars, self.warnings = [], []

    def add_scalars(self, scalars, step=0, **kwargs):
        self.scalars.append((dict(scalars), step))

    def warning(self, msg):
        self.warnings.append(msg)


def put(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, last = path.split('.')
    node = root
    for name in parents:
        if not hasattr(node, name):
            node.add_module(name, nn.Module())
        node = getattr(node, name)
    node.add_module(last, module)


def fake_model(aux_loss=True, visual=(0, 3), text=(5, )):
    """An nn.Module holding MixtureOfAdapters where the retriever has them,
    each forwarded once on random tokens."""
    torch.manual_seed(0)
    model = nn.Module()
    for pattern, layers in ((VISUAL, visual), (TEXT, text)):
        for i in layers:
            moa = MixtureOfAdapters(16, num_experts=4, top_k=2, reduction=4)
            moa(torch.randn(2, 7, 16))
            put(model, pattern.format(i), moa)
    if aux_loss:
        model.aux_loss = LoadBalanceLoss(loss_weight=0.5)
    return model


def fake_runner(model, it=0):
    recorder = Recorder()
    return SimpleNamespace(
        model=model, iter=it, visualizer=recorder, logger=recorder,
        message_hub=MessageHub.get_instance(f'lb_hook_{next(_hub_ids)}'))


def routers(model):
    return {name: m for name, m in model.named_modules()
            if isinstance(m, MixtureOfAdapters)}


def hub_value(runner, key):
    return runner.message_hub.get_scalar(key).current()


def test_logs_fraction_and_entropy_of_every_layer():
    model = fake_model()
    runner = fake_runner(model, it=9)
    hook = LoadBalanceLossHook(interval=10)
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)
    mods = routers(model)
    labels = {VISUAL.format(0): 'visual_0', VISUAL.format(3): 'visual_3',
              TEXT.format(5): 'text_5'}
    assert set(mods) == set(labels)
    for name, label in labels.items():
        routing = mods[name].routing
        fraction = routing['fraction'].tolist()
        assert sum(fraction) == pytest.approx(1.0)
        for e in range(4):
            assert hub_value(runner, f'train/moa/{label}/expert{e}') == \
                pytest.approx(fraction[e])
        assert hub_value(runner, f'train/moa/{label}/entropy') == \
            pytest.approx(routing['entropy'].item())
    vis = [mods[VISUAL.format(i)].routing for i in (0, 3)]
    assert hub_value(runner, 'train/moa/visual/entropy_mean') == \
        pytest.approx(sum(r['entropy'].item() for r in vis) / 2)
    assert hub_value(runner, 'train/moa/visual/min_fraction') == \
        pytest.approx(min(r['fraction'].min().item() for r in vis))
    text = mods[TEXT.format(5)].routing
    assert hub_value(runner, 'train/moa/text/entropy_mean') == \
        pytest.approx(text['entropy'].item())
    assert hub_value(runner, 'train/moa/text/min_fraction') == \
        pytest.approx(text['fraction'].min().item())
    # 3 layers x (4 experts + entropy) + 2 towers x 2
    keys = [k for k in runner.message_hub.log_scalars if '/moa/' in k]
    assert len(keys) == 3 * 5 + 4
    # LoggerHook sends the hub's scalars to the visualizer: the hook does
    # not send them a second time
    assert not runner.visualizer.scalars
    assert not runner.logger.warnings


def test_interval_and_wrapped_model():
    model = fake_model()
    runner = fake_runner(nn.DataParallel(model), it=3)  # a model wrapper
    hook = LoadBalanceLossHook(interval=5)
    hook.before_train(runner)
    hook.after_train_iter(runner, 3)  # iteration 4: no check
    assert not runner.visualizer.scalars
    assert 'train/moa/visual_3/expert0' not in \
        runner.message_hub.log_scalars
    runner.iter = 4
    hook.after_train_iter(runner, 4)  # iteration 5
    assert hub_value(runner, 'train/moa/visual_3/expert0') == \
        pytest.approx(
            routers(model)[VISUAL.format(3)].routing['fraction'][0].item())


def test_log_per_layer_false_keeps_only_tower_scalars_in_hub():
    runner = fake_runner(fake_model())
    hook = LoadBalanceLossHook(interval=1, log_per_layer=False)
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)
    keys = {k for k in runner.message_hub.log_scalars if '/moa/' in k}
    assert keys == {'train/moa/visual/entropy_mean',
                    'train/moa/visual/min_fraction',
                    'train/moa/text/entropy_mean',
                    'train/moa/text/min_fraction'}
    [(scalars, _)] = runner.visualizer.scalars
    assert 'moa/visual_0/expert1' in scalars


def test_with_real_retriever():
    from conftest import TINY_CLIP

    from mmtpr.registry import MODELS
    model = MODELS.build(dict(
        type='TPRRetriever',
        backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                      pretrained=None, image_size=(32, 16), freeze=True,
                      petl=[dict(type='MixtureOfAdapters', num_experts=4,
                                 top_k=2, reduction=8)]),
        head=dict(type='SDMHead', temperature=0.02),
        aux_loss=dict(type='LoadBalanceLoss', loss_weight=0.5)))
    runner = fake_runner(model)
    hook = LoadBalanceLossHook(
        interval=1, weight_schedule=dict(type='step', values=[0.3, 0.1],
                                         milestones=[1]))
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert model.aux_loss.loss_weight == 0.3
    with torch.no_grad():
        model.extract_feat(torch.randn(2, 3, 32, 16),
                           torch.randint(1, 100, (2, 77)))
    hook.after_train_iter(runner, 0)
    mods = routers(model)
    assert len(mods) == 4  # 2 blocks x 2 towers
    for tower, layer in itertools.product(('visual', 'text'), (0, 1)):
        name = (VISUAL if tower == 'visual' else TEXT).format(layer)
        fraction = mods[name].routing['fraction'].tolist()
        for e in range(4):
            assert hub_value(runner, f'train/moa/{tower}_{layer}/expert{e}') \
                == pytest.approx(fraction[e])


# --------------------------------------------------------------- schedules
@pytest.mark.parametrize('it, weight', [
    (0, 0.0), (100, 0.0), (150, 0.25), (190, 0.45), (200, 0.5),
    (10_000, 0.5)])
def test_linear_schedule(it, weight):
    model = fake_model()
    runner = fake_runner(model, it=it)
    hook = LoadBalanceLossHook(weight_schedule=dict(
        type='linear', start=0.0, end=0.5, begin_iter=100, end_iter=200))
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert model.aux_loss.loss_weight == pytest.approx(weight, abs=1e-12)
    assert hub_value(runner, 'train/lb_weight') == \
        pytest.approx(weight, abs=1e-12)


def test_linear_schedule_decreasing_without_begin_iter():
    model = fake_model()
    runner = fake_runner(model)
    hook = LoadBalanceLossHook(weight_schedule=dict(
        type='linear', start=1.0, end=0.2, end_iter=4))
    hook.before_train(runner)
    seen = []
    for it in range(6):
        runner.iter = it
        hook.before_train_iter(runner, it)
        seen.append(model.aux_loss.loss_weight)
    assert seen == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.2])


def test_step_schedule():
    model = fake_model()
    runner = fake_runner(model)
    hook = LoadBalanceLossHook(weight_schedule=dict(
        type='step', values=[0.5, 0.1, 0.0], milestones=[1000, 2000]))
    hook.before_train(runner)
    expected = {0: 0.5, 999: 0.5, 1000: 0.1, 1999: 0.1, 2000: 0.0,
                5000: 0.0}
    for it, weight in expected.items():
        runner.iter = it
        hook.before_train_iter(runner, it)
        assert model.aux_loss.loss_weight == weight
        assert hub_value(runner, 'train/lb_weight') == weight


def test_no_schedule_keeps_config_weight():
    model = fake_model()
    runner = fake_runner(model, it=123)
    hook = LoadBalanceLossHook()
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    assert model.aux_loss.loss_weight == 0.5
    assert 'train/lb_weight' not in runner.message_hub.log_scalars


@pytest.mark.parametrize('schedule, match', [
    (dict(type='cosine', start=0, end=1, end_iter=5), 'unknown type'),
    (dict(start=0, end=1, end_iter=5), 'unknown type'),
    (dict(type='linear', start=0, end=1), r"missing \['end_iter'\]"),
    (dict(type='linear', start=0, end=1, end_iter=5, end_iters=6),
     r"unknown \['end_iters'\]"),
    (dict(type='linear', start=-0.1, end=1, end_iter=5), 'start'),
    (dict(type='linear', start=0, end='1', end_iter=5), 'end'),
    (dict(type='linear', start=0, end=float('nan'), end_iter=5), 'end'),
    (dict(type='linear', start=0, end=1, begin_iter=5, end_iter=5),
     'greater than begin_iter'),
    (dict(type='linear', start=0, end=1, end_iter=2.5), 'end_iter'),
    (dict(type='step', values=[0.5, 0.1], milestones=[]), '0 milestones'),
    (dict(type='step', values=[0.5], milestones=[10]), '1 milestones'),
    (dict(type='step', values=[0.5, 0.1, 0], milestones=[20, 10]),
     'strictly increasing'),
    (dict(type='step', values=[0.5, -1], milestones=[10]), 'values'),
    (dict(type='step', values=0.5, milestones=[10]), 'lists'),
    (dict(type='step', values=[0.5, 0.1], milestones=[-1]), 'milestones'),
])
def test_bad_schedules(schedule, match):
    with pytest.raises(ValueError, match=match):
        LoadBalanceLossHook(weight_schedule=schedule)


def test_bad_arguments():
    with pytest.raises(ValueError, match='None or a dict'):
        LoadBalanceLossHook(weight_schedule='linear')
    with pytest.raises(ValueError, match='interval'):
        LoadBalanceLossHook(interval=0)
    with pytest.raises(ValueError, match='collapse_patience'):
        LoadBalanceLossHook(collapse_patience=0)
    with pytest.raises(ValueError, match='collapse_threshold'):
        LoadBalanceLossHook(collapse_threshold=1.5)


def test_schedule_without_aux_loss_fails_at_before_train():
    runner = fake_runner(fake_model(aux_loss=False))
    hook = LoadBalanceLossHook(weight_schedule=dict(
        type='step', values=[0.5, 0.1], milestones=[10]))
    with pytest.raises(ValueError, match='no aux_loss'):
        hook.before_train(runner)
    # without a schedule a missing aux_loss is fine
    LoadBalanceLossHook().before_train(runner)
    assert not runner.logger.warnings


def test_no_mixture_of_adapters_warns():
    model = nn.Sequential(nn.Linear(2, 2))
    model.aux_loss = LoadBalanceLoss()
    runner = fake_runner(model)
    hook = LoadBalanceLossHook(interval=1, weight_schedule=dict(
        type='step', values=[0.5, 0.1], milestones=[10]))
    hook.before_train(runner)
    assert len(runner.logger.warnings) == 1
    assert 'no MixtureOfAdapters' in runner.logger.warnings[0]
    hook.before_train_iter(runner, 0)  # the schedule still applies
    hook.after_train_iter(runner, 0)
    assert model.aux_loss.loss_weight == 0.5
    assert not runner.visualizer.scalars


def test_router_that_never_routed_is_skipped():
    model = fake_model()
    routers(model)[TEXT.format(5)].routing = {}
    runner = fake_runner(model)
    hook = LoadBalanceLossHook(interval=1)
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)
    assert 'train/moa/visual_0/expert0' in runner.message_hub.log_scalars
    assert not any('text' in k for k in runner.message_hub.log_scalars)


# ---------------------------------------------------------------- collapse
def set_fraction(module, fraction):
    module.routing = dict(fraction=torch.tensor(fraction),
                          entropy=torch.tensor(1.0))


def test_collapse_warns_once_then_again_after_recovery():
    model = fake_model()
    mods = routers(model)
    for module in mods.values():
        set_fraction(module, [0.25, 0.25, 0.25, 0.25])
    runner = fake_runner(model)
    hook = LoadBalanceLossHook(interval=10, collapse_threshold=0.01,
                               collapse_patience=3)
    hook.before_train(runner)
    collapsed = mods[VISUAL.format(3)]

    def check(fraction, step):
        set_fraction(collapsed, fraction)
        runner.iter = step - 1
        hook.after_train_iter(runner, step - 1)
        return len(runner.logger.warnings)

    low, fine = [0.005, 0.495, 0.25, 0.25], [0.05, 0.45, 0.25, 0.25]
    assert check(low, 10) == 0
    assert check(low, 20) == 0
    assert check(low, 30) == 1  # 3rd consecutive low check
    message = runner.logger.warnings[0]
    for part in ('visual tower', 'layer 3', 'expert 0', '0.0050',
                 '30 iterations', 'iterations 10-30', VISUAL.format(3)):
        assert part in message
    assert check(low, 40) == 1  # still collapsed: no repeat
    assert check(low, 50) == 1
    assert check(fine, 60) == 1  # recovered
    assert check(low, 70) == 1
    assert check(low, 80) == 1
    assert check(low, 90) == 2  # collapsed again
    assert 'iterations 70-90' in runner.logger.warnings[1]


def test_collapse_needs_consecutive_checks():
    model = fake_model()
    collapsed = routers(model)[TEXT.format(5)]
    runner = fake_runner(model)
    hook = LoadBalanceLossHook(interval=1, collapse_patience=2)
    hook.before_train(runner)
    for step, fraction in enumerate(
            [[0.0, 0.5, 0.5, 0.0], [0.0, 0.5, 0.25, 0.25],
             [0.25, 0.5, 0.25, 0.0]], start=1):
        set_fraction(collapsed, fraction)
        runner.iter = step - 1
        hook.after_train_iter(runner, step - 1)
    # expert 0: low at checks 1 and 2 -> one warning; expert 3: low at
    # checks 1 and 3 only -> none
    assert len(runner.logger.warnings) == 1
    assert 'text tower, layer 5' in runner.logger.warnings[0]
    assert 'expert 0' in runner.logger.warnings[0]


def test_zero_threshold_disables_collapse_warnings():
    model = fake_model()
    set_fraction(routers(model)[TEXT.format(5)], [0.0, 0.5, 0.5, 0.0])
    runner = fake_runner(model)
    hook = LoadBalanceLossHook(interval=1, collapse_threshold=0,
                               collapse_patience=1)
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)
    assert not runner.logger.warnings


# ------------------------------------------------------------- integration
def test_runner_integration(tmp_path):
    cfg = tiny_cfg(tmp_path / 'dm', str(tmp_path / 'synth'), max_epochs=1)
    cfg.model.backbone.update(freeze=True, petl=[dict(
        type='MixtureOfAdapters', num_experts=4, top_k=2, reduction=8)])
    cfg.model.aux_loss = dict(type='LoadBalanceLoss', loss_weight=0.5)
    cfg.train_dataloader.batch_size = 16
    cfg.custom_hooks = [dict(
        type='LoadBalanceLossHook', interval=1,
        weight_schedule=dict(type='linear', start=0.0, end=0.5,
                             end_iter=2))]
    runner = build_runner(cfg)
    hooks = [h for h in runner.hooks if isinstance(h, LoadBalanceLossHook)]
    assert len(hooks) == 1 and HOOKS.get('LoadBalanceLossHook') is \
        LoadBalanceLossHook
    runner.train()
    iters = runner.iter
    assert iters == 3  # 48 training pairs, batch 16
    hub = runner.message_hub
    assert hub.get_scalar('train/lb_weight').data[0].tolist() == \
        pytest.approx([0.0, 0.25, 0.5])
    assert runner.model.aux_loss.loss_weight == 0.5
    for tower in ('visual', 'text'):
        values = [hub.get_scalar(f'train/moa/{tower}_0/expert{e}').current()
                  for e in range(4)]
        assert sum(values) == pytest.approx(1.0)
        assert all(0 <= v <= 1 for v in values)
        assert len(hub.get_scalar(
            f'train/moa/{tower}_0/expert0').data[0]) == iters
    assert all(torch.isfinite(torch.tensor(
        hub.get_scalar('train/loss').data[0])))

    vis_dir = glob.glob(osp.join(str(tmp_path / 'dm'), '*', 'vis_data'))[0]
    with open(osp.join(vis_dir, 'scalars.json')) as f:
        lines = [json.loads(line) for line in f]
    # LoggerHook runs after the hook: its line of iteration k carries the
    # routing statistics of iteration k, once (no separate record)
    train = [r for r in lines if 'loss' in r]
    assert [r['step'] for r in train] == [1, 2, 3]
    assert not [r for r in lines if 'moa/visual_0/expert0' in r and
                'loss' not in r]
    for step, record in enumerate(train):
        assert record['moa/text_0/expert1'] == pytest.approx(
            hub.get_scalar('train/moa/text_0/expert1').data[0][step])
        assert sum(record[f'moa/visual_0/expert{e}']
                   for e in range(4)) == pytest.approx(1.0)
        assert 'moa/visual/min_fraction' in record
        assert 'loss_lb' in record
