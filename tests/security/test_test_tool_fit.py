"""Items 7, 9 and 10 (tools): ``tools/test.py`` refuses a checkpoint that
does not fit its config (by name, with the keys or the recorded model
differences) instead of evaluating it, unless ``--non-strict``; a mistyped
``--data-root`` of a SynthPedes config generates nothing; ``--out`` naming
a folder fails before any work."""
import os
import os.path as osp
import re

import pytest
import torch
from conftest import build_runner, tiny_cfg

from mmtpr.utils.checkpoint import load_checkpoint_file
from mmtpr.utils.errors import CheckpointError, MissingFileError

from .hostile import ROOT, exit_code, load_tool, says

DEMO = osp.join(ROOT, 'configs', 'demo', 'clip_tiny_synth.py')
UP_PERSON = [dict(type='KVLoRA', rank=4), dict(type='LNAdapter',
                                               reduction=8)]
MOA = [dict(type='MixtureOfAdapters', num_experts=4, top_k=2, reduction=8)]


def variant(trained, tmp_path, name, petl=None, petl_only=False,
            save=False, **backbone):
    """A config file of the trained run's config with another backbone
    (and, with ``save``, a checkpoint of its untrained model saved by the
    runner, which records the model in meta['mmtpr_model'])."""
    folder = tmp_path / name
    cfg = tiny_cfg(folder / 'work', trained['data_root'])
    if petl is not None:
        cfg.model.backbone.update(freeze=True, petl=petl)
    cfg.model.backbone.update(backbone)
    cfg.default_hooks.petl_checkpoint.petl_only = petl_only
    config = str(folder / 'config.py')
    folder.mkdir()
    cfg.dump(config)
    if not save:
        return config, None
    torch.manual_seed(0)
    runner = build_runner(cfg)
    runner.save_checkpoint(str(folder), 'model.pth', save_optimizer=False,
                           save_param_scheduler=False)
    return config, str(folder / 'model.pth')


def tool_argv(config, checkpoint, tmp_path, *extra):
    return [config, checkpoint, '--work-dir', str(tmp_path / 'test_work'),
            *extra]


def edited(trained, tmp_path, edit, name='edited.pth'):
    checkpoint = load_checkpoint_file(trained['epoch_2'])
    checkpoint = edit(checkpoint)
    path = str(tmp_path / name)
    torch.save(checkpoint, path)
    return path


def _drop_first(ckpt):
    ckpt['state_dict'].pop(next(iter(ckpt['state_dict'])))
    return ckpt


def _extra(ckpt):
    ckpt['state_dict']['backbone.clip.extra_weight'] = torch.zeros(3)
    return ckpt


def _reshape(ckpt):
    key = 'backbone.clip.text_projection'
    ckpt['state_dict'][key] = ckpt['state_dict'][key].reshape(-1)
    return ckpt


FIRST_KEY = 'backbone.clip.positional_embedding'
DOES_NOT_FIT = {
    'not a dict': (lambda ckpt: [ckpt['state_dict']],
                   r"holds a list, not a dict"),
    'no state dict': (lambda ckpt: dict(meta=ckpt['meta'], state_dict=3),
                      r"has no state dict"),
    'only meta': (lambda ckpt: dict(meta=ckpt['meta']),
                  r'does not fit the model of the config: missing \d+ '
                  r"key\(s\).*1 unexpected key\(s\): meta"),
    'a missing key': (_drop_first,
                      r'missing 1 key\(s\) of the model: ' + FIRST_KEY),
    'an extra key': (_extra, r'1 unexpected key\(s\): '
                     r'backbone\.clip\.extra_weight'),
    'a reshaped tensor': (_reshape, r'1 key\(s\) of another shape '
                          r'\(checkpoint vs model\): '
                          r'backbone\.clip\.text_projection \(1024,\) vs '
                          r'\(32, 32\)'),
}


@pytest.mark.parametrize('case', list(DOES_NOT_FIT))
def test_a_checkpoint_that_does_not_fit_is_refused(trained, tmp_path, case):
    make, message = DOES_NOT_FIT[case]
    ckpt = edited(trained, tmp_path, make)
    with pytest.raises(CheckpointError, match=re.escape(f"'{ckpt}'")
                       + '.*' + message):
        load_tool('test').main(tool_argv(trained['config'], ckpt, tmp_path))


def test_the_refusal_on_the_command_line_and_non_strict(trained, tmp_path,
                                                        capsys):
    ckpt = edited(trained, tmp_path, _drop_first)
    capsys.readouterr()
    argv = tool_argv(trained['config'], ckpt, tmp_path)
    assert exit_code('test', argv) == 2
    captured = capsys.readouterr()
    assert says(captured.err, f"error: checkpoint '{ckpt}' does not fit",
                FIRST_KEY, '--non-strict')
    assert not re.search(r'tpr/R1: \d', captured.out)  # not evaluated
    assert exit_code('test', argv + ['--non-strict']) == 0
    assert re.search(r'tpr/R1: \d', capsys.readouterr().out)


@pytest.fixture(scope='module')
def saved(trained, tmp_path_factory):
    """Checkpoints saved by runners of other model configs."""
    base = tmp_path_factory.mktemp('variants')
    return dict(
        petl_only=variant(trained, base, 'petl_only', petl=UP_PERSON,
                          petl_only=True, save=True),
        moa=variant(trained, base, 'moa', petl=MOA, save=True))


def test_a_full_clip_checkpoint_on_a_petl_config(trained, tmp_path):
    config, _ = variant(trained, tmp_path, 'petl_cfg', petl=UP_PERSON,
                        petl_only=True)
    ckpt = trained['epoch_2']
    with pytest.raises(CheckpointError, match=re.escape(f"'{ckpt}'")
                       + r".*saved from another model config.*"
                       r"backbone\.(freeze|petl)"):
        load_tool('test').main(tool_argv(config, ckpt, tmp_path))


def test_a_petl_only_checkpoint_of_another_image_size(trained, saved,
                                                      tmp_path, capsys):
    """Its state dict cannot show the image size: the recorded model
    does."""
    _, ckpt = saved['petl_only']
    assert 'backbone.clip.visual.positional_embedding' not in \
        load_checkpoint_file(ckpt)['state_dict']
    config, _ = variant(trained, tmp_path, 'small', petl=UP_PERSON,
                        petl_only=True, image_size=(64, 32))
    with pytest.raises(CheckpointError, match=re.escape(f"'{ckpt}'")
                       + r'.*saved from another model config.*'
                       r'backbone\.image_size'):
        load_tool('test').main(tool_argv(config, ckpt, tmp_path))


def test_a_changed_mixture_top_k(trained, saved, tmp_path, capsys):
    """top_k is no tensor: only meta['mmtpr_model'] tells."""
    _, ckpt = saved['moa']
    config, _ = variant(trained, tmp_path, 'top1',
                        petl=[dict(MOA[0], top_k=1)])
    argv = tool_argv(config, ckpt, tmp_path)
    with pytest.raises(CheckpointError, match=re.escape(f"'{ckpt}'")
                       + r'.*saved from another model config.*'
                       r'backbone\.petl\[0\]\.top_k: 2 in the checkpoint, 1 '
                       r'in the config'):
        load_tool('test').main(argv)
    capsys.readouterr()
    assert exit_code('test', argv + ['--non-strict']) == 0
    assert re.search(r'tpr/R1: \d', capsys.readouterr().out)


# ---------------------------------------------------------------------------
# Item 9: a mistyped --data-root of a SynthPedes config creates nothing
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('tool', ['test', 'train'])
@pytest.mark.parametrize('typo', ['missing', 'empty folder'])
def test_a_mistyped_data_root_generates_nothing(trained, tmp_path, tool,
                                                typo, capsys):
    data_root = tmp_path / 'typo' / 'synth_pedes_sourc'
    if typo == 'empty folder':
        data_root.mkdir(parents=True)
    work = tmp_path / 'work'
    argv = [DEMO] + ([trained['epoch_2']] if tool == 'test' else []) + [
        '--work-dir', str(work), '--data-root', str(data_root)]
    with pytest.raises(MissingFileError, match=re.escape(
            f"SynthPedes: data_root '{data_root}' is not a directory")
            if typo == 'missing' else re.escape(
            f"SynthPedes: annotation file '{data_root}{os.sep}")):
        load_tool(tool).main(argv)
    capsys.readouterr()
    assert exit_code(tool, argv) == 2
    assert says(capsys.readouterr().err, 'error: SynthPedes:',
                str(data_root))
    if typo == 'missing':
        assert not (tmp_path / 'typo').exists()
    else:
        assert os.listdir(data_root) == []
    assert not work.exists()


# ---------------------------------------------------------------------------
# Item 10: --out naming a directory fails before the evaluation
# ---------------------------------------------------------------------------
def test_out_naming_a_directory_fails_first(trained, tmp_path, capsys,
                                            monkeypatch):
    out = tmp_path / 'results.pkl'
    out.mkdir()
    work = tmp_path / 'test_work'
    built = []
    import mmtpr.registry
    monkeypatch.setattr(mmtpr.registry.RUNNERS, 'build',
                        lambda *a, **k: built.append(a))
    argv = [trained['config'], trained['epoch_2'], '--work-dir', str(work),
            '--out', str(out)]
    assert exit_code('test', argv) == 2
    assert says(capsys.readouterr().err, f"--out '{out}' is a directory")
    assert built == [] and not work.exists() and os.listdir(out) == []
