"""Items 1, 2 and 10 (resume): ``tools/train.py --resume`` of a tampered
checkpoint executes nothing it holds, deletes nothing outside the work dir,
and refuses what is not a training checkpoint with a named error."""
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from mmtpr.utils.checkpoint import load_checkpoint_file
from mmtpr.utils.errors import CheckpointError

from .conftest import run_logs
from .hostile import exit_code, load_tool, says, snapshot


def config_payload(marker):
    """A config string that creates ``marker`` when MMEngine parses it
    (MMEngine's Runner.resume does Config.fromstring(meta['config']))."""
    return (f"_ = open({str(marker)!r}, 'w').close()\n"
            "work_dir = 'hijacked'\n")


def edit_checkpoint(path, edit):
    checkpoint = load_checkpoint_file(path)
    edit(checkpoint)
    torch.save(checkpoint, path)
    return path


def resume_argv(trained, work_dir, checkpoint=None):
    """``tools/train.py CONFIG --work-dir W --resume [FILE]`` with one
    epoch in all: resuming from epoch 1 validates it again (TPRTrainLoop)
    and ends."""
    argv = [trained['config'], '--work-dir', work_dir, '--resume']
    if checkpoint is not None:
        argv.append(checkpoint)
    return argv + ['--cfg-options', 'train_cfg.max_epochs=1']


def resume(trained, work_dir, checkpoint=None):
    load_tool('train').main(resume_argv(trained, work_dir, checkpoint))


def test_the_config_payload_is_hostile(tmp_path):
    """What MMEngine's own resume would do with it: run it."""
    proof = tmp_path / 'PROOF'
    Config.fromstring(config_payload(proof), '.py')
    assert proof.exists()


@pytest.mark.parametrize('how', ['--resume FILE', 'bare --resume'])
def test_resume_never_executes_the_checkpoint_config(trained, fresh_work,
                                                     outside, how):
    work = fresh_work()
    ckpt = osp.join(work, 'epoch_1.pth')

    def edit(checkpoint):
        checkpoint['meta']['config'] = config_payload(outside.marker)
        checkpoint['meta']['cfg'] = config_payload(outside.marker)

    edit_checkpoint(ckpt, edit)
    if how == 'bare --resume':
        with open(osp.join(work, 'last_checkpoint'), 'w') as f:
            f.write(ckpt)
        resume(trained, work)
    else:
        resume(trained, work, ckpt)
    assert not osp.exists(outside.marker)
    log = run_logs(work)
    assert 'resumed epoch: 1, iter: 6' in log
    assert 'Epoch(val) [1][1/1]' in log  # it ran to its end
    assert not osp.exists(osp.join(work, 'hijacked'))


def _set_best(value):

    def edit(checkpoint):
        info = checkpoint['message_hub']['runtime_info']
        info['best_ckpt'] = value
        info['best_score'] = -1.0  # any validation beats it

    return edit


@pytest.mark.parametrize('victim', [
    'file', 'directory', 'relative', 'best-named directory outside'])
def test_resume_never_deletes_the_best_ckpt_it_names(trained, fresh_work,
                                                     outside, victim,
                                                     monkeypatch):
    work = fresh_work()
    ckpt = osp.join(work, 'epoch_1.pth')
    if victim == 'file':
        value = outside.victim
    elif victim == 'directory':
        value = outside.victim_dir
    elif victim == 'relative':
        # relative to the current folder, which is the work dir's parent
        monkeypatch.chdir(osp.dirname(work))
        value = osp.join('outside', 'victim.txt')
    else:
        # a folder named like a best checkpoint, outside the work dir
        value = osp.join(outside.root, 'best_tpr_R1_epoch_9.pth')
        os.makedirs(osp.join(value, 'sub'))
        outside.before = snapshot(outside.root)
    edit_checkpoint(ckpt, _set_best(value))
    resume(trained, work, ckpt)
    # the resumed epoch was validated and a new best written in the work dir
    best = [n for n in os.listdir(work) if n.startswith('best_')]
    assert best, os.listdir(work)
    log = run_logs(work)
    assert 'Validating the resumed epoch 1' in log
    assert re.search(r"ignoring best_ckpt=|is looked for as", log), log[-2000:]
    # the victim is intact (outside.check() at teardown compares it all)
    assert osp.exists(value if osp.isabs(value) else outside.victim)


def test_resume_ignores_keep_ckpt_ids_that_are_not_epoch_numbers(
        trained, fresh_work, outside):
    """With MMEngine's own handling, the string ids below would remove
    ``<work>/epoch_../../../victim*.pth``, i.e. files beside the work dir
    (given a folder named ``epoch_..`` in it, created here to make the
    attack work on POSIX, where paths are not normalised)."""
    work = fresh_work()
    os.makedirs(osp.join(work, 'epoch_..'))
    parent = osp.dirname(work)
    victims = [osp.join(parent, 'victim.pth'),
               osp.join(parent, 'victim_dir.pth')]
    with open(victims[0], 'w') as f:
        f.write('precious\n')
    os.makedirs(osp.join(victims[1], 'sub'))
    ckpt = osp.join(work, 'epoch_1.pth')

    def edit(checkpoint):
        checkpoint['message_hub']['runtime_info']['keep_ckpt_ids'] = [
            '../../../victim', '../../../victim_dir', 1, 2, 3, 4, 5]

    edit_checkpoint(ckpt, edit)
    resume(trained, work, ckpt)
    for victim in victims:
        assert osp.exists(victim), victim
    log = run_logs(work)
    assert 'ignoring keep_ckpt_ids=' in log
    assert 'Epoch(val) [1][1/1]' in log


# ---------------------------------------------------------------------------
# Item 10: what is not a training checkpoint is a named error
# ---------------------------------------------------------------------------
NOT_RESUMABLE = {
    'a list': (lambda ckpt: [ckpt['state_dict']],
               r"holds a list, not a dict"),
    'a bare state dict': (lambda ckpt: dict(ckpt['state_dict']),
                          r'it is a bare state dict, not a training '
                          r'checkpoint'),
    'no meta': (lambda ckpt: {k: v for k, v in ckpt.items()
                              if k != 'meta'},
                r'a checkpoint without meta, not a training checkpoint'),
    'no message hub': (lambda ckpt: {k: v for k, v in ckpt.items()
                                     if k != 'message_hub'},
                       r'a checkpoint without message_hub'),
    'a hub that is a string': (
        lambda ckpt: dict(ckpt, message_hub='runtime_info'),
        r'its message_hub is not the state of an MMEngine MessageHub'),
    'epoch a string': (
        lambda ckpt: dict(ckpt, meta=dict(ckpt['meta'], epoch='1')),
        r'its meta has no valid epoch and iter'),
}


@pytest.mark.parametrize('case', list(NOT_RESUMABLE))
def test_resume_of_what_is_not_a_training_checkpoint(trained, fresh_work,
                                                     outside, case):
    work = fresh_work()
    ckpt = osp.join(work, 'epoch_1.pth')
    make, message = NOT_RESUMABLE[case]
    torch.save(make(load_checkpoint_file(ckpt)), ckpt)
    with pytest.raises(CheckpointError,
                       match=re.escape(f"'{ckpt}'") + '.*' + message):
        resume(trained, work, ckpt)
    assert not [n for n in os.listdir(work) if n.startswith('best_')]


def test_resume_error_on_the_command_line(trained, fresh_work, capsys):
    """One block on stderr, exit code 2, no traceback."""
    work = fresh_work()
    ckpt = osp.join(work, 'epoch_1.pth')
    torch.save(load_checkpoint_file(ckpt)['state_dict'], ckpt)
    capsys.readouterr()
    assert exit_code('train', resume_argv(trained, work, ckpt)) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'Traceback' not in err
    assert says(err, f"error: cannot resume from '{ckpt}'",
                'bare state dict')
