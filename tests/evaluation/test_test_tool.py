"""tools/test.py: --out, --i2t, --dataset, --data-root and --split."""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import build_runner, tiny_cfg
from mmengine.config import Config
from mmengine.fileio import load

from mmtpr.datasets import prepare_synth_pedes

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'test.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('mmtpr_test_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return load_tool()


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny config file and the checkpoint of its untrained model."""
    base = tmp_path_factory.mktemp('test_tool')
    cfg = tiny_cfg(base / 'work', str(base / 'synth'))
    config = str(base / 'tiny.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = build_runner(cfg).model
    ckpt = str(base / 'model.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return config, ckpt, base


def write_dataset_config(path, data_root='unused', split='test', seed=7):
    """A dataset config as configs/_base_/datasets/ has: SynthPedes with
    other identities and a pipeline that must NOT be used."""
    Config(dict(test_dataloader=dict(dataset=dict(
        type='SynthPedes', data_root=data_root, split=split,
        num_ids=[12, 5, 6], images_per_id=2, image_size=[64, 32],
        seed=seed, generate=True,
        pipeline=[dict(type='NotATransform')])))).dump(str(path))
    return str(path)


def test_out_and_i2t_from_the_command_line(setup, tmp_path):
    config, ckpt, base = setup
    out_file = tmp_path / 'results' / 'test.json'
    proc = subprocess.run(
        [sys.executable, TOOL, config, ckpt, '--work-dir',
         str(tmp_path / 'work'), '--out', str(out_file), '--i2t'],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, HF_HUB_OFFLINE='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == f'Per-query results written to {out_file}'
    assert 'Evaluating on SynthPedes split=test data_root=' in proc.stdout
    printed = dict(re.findall(r'tpr/(\w+): ([\d.]+)', lines[-1]))
    assert list(printed) == ['R1', 'R5', 'R10', 'mAP', 'mINP', 'i2t_R1',
                             'i2t_R5', 'i2t_R10', 'i2t_mAP', 'i2t_mINP']

    content = load(str(out_file))
    assert {key: f'{value:.2f}' for key, value in
            content['metrics'].items()} == printed
    # The tiny test split: 4 ids x 2 images, 2 captions per image, which
    # the pipeline (PackTPRInputs) carried to the metric.
    num_images = 8
    assert len(content['gallery_pids']) == num_images
    # k = min(max(topk), G) = 8
    assert np.array(content['topk_indices']).shape == (2 * num_images, 8)
    assert len(content['captions']) == 2 * num_images
    assert all(isinstance(c, str) and len(c.split()) > 3
               for c in content['captions'])
    assert content['gallery_img_paths'][0].startswith(
        str(base / 'synth'))
    assert os.listdir(out_file.parent) == ['test.json']


def test_dataset_file_data_root_and_split(setup, tool, tmp_path, capsys):
    config, ckpt, _ = setup
    dataset_config = write_dataset_config(tmp_path / 'other_dataset.py')
    data_root = str(tmp_path / 'other_synth')
    out_file = tmp_path / 'other.pkl'
    # a data root given on the command line must hold the data: a mistyped
    # one is refused, nothing is generated there
    with pytest.raises(FileNotFoundError, match=f"'{data_root}'"):
        tool.main([config, ckpt, '--work-dir', str(tmp_path / 'w'),
                   '--dataset', dataset_config, '--data-root', data_root])
    assert not os.path.exists(data_root)
    prepare_synth_pedes(data_root, generate=True, num_ids=[12, 5, 6],
                        images_per_id=2, image_size=[64, 32], seed=7)
    metrics = tool.main([config, ckpt, '--work-dir', str(tmp_path / 'w'),
                         '--dataset', dataset_config, '--data-root',
                         data_root, '--split', 'val', '--out',
                         str(out_file)])
    assert set(metrics) == {'tpr/R1', 'tpr/R5', 'tpr/R10', 'tpr/mAP',
                            'tpr/mINP'}
    assert f'Per-query results written to {out_file}' in \
        capsys.readouterr().out
    content = load(str(out_file))
    # The val split of the other dataset: 5 ids x 2 images.
    assert len(content['gallery_pids']) == 10
    assert len(set(content['gallery_pids'].tolist())) == 5
    assert all(path.startswith(data_root)
               for path in content['gallery_img_paths'])
    assert content['metrics'] == pytest.approx(
        {k[len('tpr/'):]: v for k, v in metrics.items()})


def test_dataset_names_map_to_the_dataset_configs(setup, tool):
    config, ckpt, _ = setup
    main_cfg = Config.fromfile(config)
    pipeline = main_cfg.test_dataloader.dataset.pipeline
    expected = dict(cuhk=('CUHKPEDES', 'data/CUHK-PEDES'),
                    icfg=('ICFGPEDES', 'data/ICFG-PEDES'),
                    rstp=('RSTPReid', 'data/RSTPReid'))
    for name, (kind, data_root) in expected.items():
        cfg = tool.build_config(tool.parse_args([config, ckpt, '--dataset',
                                                 name]))
        dataset = cfg.test_dataloader.dataset
        # SynthPedes' own arguments (num_ids, seed, ...) are gone, the
        # model's test pipeline stays.
        assert dataset.to_dict() == dict(
            type=kind, data_root=data_root, split='test',
            pipeline=pipeline.to_list() if hasattr(pipeline, 'to_list')
            else list(pipeline))
        assert cfg.load_from == ckpt
    cfg = tool.build_config(tool.parse_args(
        [config, ckpt, '--dataset', 'rstp', '--data-root', '/d/RSTP',
         '--split', 'val', '--cfg-options', 'test_dataloader.batch_size=3']))
    dataset = cfg.test_dataloader.dataset
    assert (dataset.type, dataset.data_root, dataset.split) == (
        'RSTPReid', '/d/RSTP', 'val')
    assert cfg.test_dataloader.batch_size == 3
    # Without --dataset, --data-root and --split change the config's own.
    cfg = tool.build_config(tool.parse_args(
        [config, ckpt, '--data-root', '/d/x', '--split', 'val']))
    dataset = cfg.test_dataloader.dataset
    assert (dataset.type, dataset.data_root, dataset.split,
            dataset.seed) == ('SynthPedes', '/d/x', 'val', 3)


@pytest.mark.parametrize('argv, message', [
    (['--dataset', 'market'],
     "unknown dataset 'market'; valid names are cuhk, icfg, rstp"),
    (['--dataset', 'no/such/config.py'],
     "config file 'no/such/config.py' not found"),
    (['--out', 'results.csv'], r"--out must end with one of \('.pkl'"),
    (['--split', 'train'], "invalid choice: 'train'"),
])
def test_command_line_errors(tool, capsys, argv, message):
    with pytest.raises(SystemExit) as error:
        tool.parse_args(['config.py', 'ckpt.pth', *argv])
    assert error.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_dataset_file_without_test_dataloader(setup, tool, tmp_path):
    config, ckpt, _ = setup
    other = tmp_path / 'no_test.py'
    other.write_text('train_dataloader = dict(dataset=dict(type="X"))\n')
    with pytest.raises(ValueError, match='has no test_dataloader.dataset'):
        tool.build_config(tool.parse_args([config, ckpt, '--dataset',
                                           str(other)]))


@pytest.mark.parametrize('evaluator, expected', [
    (dict(type='TPRMetric'),
     dict(type='TPRMetric', out_file='r.pkl', directions=('t2i', 'i2t'))),
    ([dict(type='TPRMetric', topk=1), dict(type='OtherMetric')],
     [dict(type='TPRMetric', topk=1, out_file='r.pkl',
           directions=('t2i', 'i2t')), dict(type='OtherMetric')]),
    (dict(type='Evaluator', metrics=[dict(type='mmtpr.TPRMetric')]),
     dict(type='Evaluator', metrics=[dict(
         type='mmtpr.TPRMetric', out_file='r.pkl',
         directions=('t2i', 'i2t'))])),
])
def test_out_and_i2t_set_every_tpr_metric(setup, tool, tmp_path, evaluator,
                                          expected):
    config, ckpt, _ = setup
    cfg = Config.fromfile(config)
    cfg.test_evaluator = evaluator
    cfg.val_evaluator = evaluator
    path = str(tmp_path / 'config.py')
    cfg.dump(path)
    cfg = tool.build_config(tool.parse_args([path, ckpt, '--out', 'r.pkl',
                                             '--i2t']))

    def plain(value):
        value = value.to_dict() if hasattr(value, 'to_dict') else value
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(plain(v) for v in value)
        return value

    assert plain(cfg.test_evaluator) == expected
    assert plain(cfg.val_evaluator) == evaluator  # unchanged


def test_out_needs_a_tpr_metric(setup, tool, tmp_path):
    config, ckpt, _ = setup
    cfg = Config.fromfile(config)
    cfg.test_evaluator = dict(type='OtherMetric')
    path = str(tmp_path / 'config.py')
    cfg.dump(path)
    with pytest.raises(ValueError, match='need a TPRMetric'):
        tool.build_config(tool.parse_args([path, ckpt, '--out', 'r.pkl']))
