"""Training curves in TensorBoard: losses, learning rate, validation
metrics and the routing monitor, read back from the event file."""
import glob
import os.path as osp

import pytest
from conftest import build_runner, load_tool, tiny_cfg

from mmtpr.visualization import add_tensorboard

pytest.importorskip('tensorboard', reason='needs the tensorboard package '
                    '(pip install -e ".[tensorboard]")')


def test_scalars_reach_the_event_file(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )
    cfg = tiny_cfg(tmp_path / 'work', str(tmp_path / 'synth'), max_epochs=2)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.generate = True
    cfg.model.backbone['freeze'] = True
    cfg.model.backbone.petl = [dict(type='MixtureOfAdapters', num_experts=4,
                                    top_k=2, reduction=8)]
    cfg.model.aux_loss = dict(type='LoadBalanceLoss', loss_weight=0.5)
    cfg.custom_hooks = [dict(type='LoadBalanceLossHook', interval=1)]
    add_tensorboard(cfg)
    runner = build_runner(cfg)
    runner.train()
    iters = runner.iter
    files = glob.glob(osp.join(str(tmp_path / 'work'), '*', 'vis_data',
                               'events.out.tfevents.*'))
    assert len(files) == 1, files
    events = EventAccumulator(files[0], size_guidance={'scalars': 0})
    events.Reload()
    tags = set(events.Tags()['scalars'])
    points = {tag: len(events.Scalars(tag)) for tag in tags}
    # a point per logged training iteration (logger interval 1)
    for tag in ('loss', 'loss_sdm', 'loss_lb', 'lr'):
        assert points.get(tag) == iters, (tag, points.get(tag), iters)
    # a point per validation (2 epochs, val_interval 1)
    for tag in ('tpr/R1', 'tpr/mAP', 'tpr/mINP'):
        assert points.get(tag) == 2, (tag, points.get(tag))
    # the routing monitor: share of every expert and entropy, per layer
    layer = 'moa/visual_0'
    for e in range(4):
        assert points.get(f'{layer}/expert{e}') == iters
    assert points.get(f'{layer}/entropy') == iters
    assert points.get('moa/text/entropy_mean') == iters
    shares = [events.Scalars(f'{layer}/expert{e}')[-1].value
              for e in range(4)]
    assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    # tools/analysis/curves.py prints the same points as a table
    curves = load_tool('analysis/curves')
    read = curves.main([str(tmp_path / 'work'), '--tags', 'loss', 'tpr/R1'])
    assert [v for _, v in read['tpr/R1']] == [
        e.value for e in events.Scalars('tpr/R1')]
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(
        '| tpr/R1 |'))
    assert row.split('|')[2].strip() == '2'
    print(f'checked {len(tags)} scalar tags over {iters} iterations and 2 '
          'validations in', osp.relpath(files[0], str(tmp_path)),
          '(and tools/analysis/curves.py reads them back)')


def test_curves_without_an_event_file(tmp_path):
    curves = load_tool('analysis/curves')
    with pytest.raises(Exception, match='no TensorBoard event file under'):
        curves.main([str(tmp_path)])
