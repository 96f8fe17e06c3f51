"""Atomic writes (the 'mmtpr_local' backend) and clear errors for damaged
checkpoints (load_checkpoint_file and the runner)."""
import os
import os.path as osp
import re
import signal
import subprocess
import sys

import pytest
import torch
from conftest import build_runner, tiny_cfg
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

import mmtpr.utils.fileio as fileio
from mmtpr.utils.checkpoint import (
    CorruptedCheckpointError,
    load_checkpoint_file,
)
from mmtpr.utils.errors import CheckpointError, MissingFileError
from mmtpr.utils.fileio import AtomicLocalBackend, atomic_write_bytes

OLD = {'state_dict': {'w': torch.arange(1000.)}, 'meta': {'epoch': 1}}
NEW = {'state_dict': {'w': torch.zeros(1000)}, 'meta': {'epoch': 2}}
ATOMIC = dict(backend='mmtpr_local')


def _entries(directory):
    return sorted(os.listdir(directory))


def _save(obj, path):
    save_checkpoint(obj, path, backend_args=ATOMIC)


def test_the_atomic_backend_is_selected_by_its_own_name():
    backend = get_file_backend('work_dirs/x/epoch_1.pth',
                               backend_args=ATOMIC)
    assert type(backend) is AtomicLocalBackend
    # MMEngine's own local backend is what it was
    assert type(get_file_backend('work_dirs/x/epoch_1.pth')) is not \
        AtomicLocalBackend


def test_put_writes_and_replaces(tmp_path):
    path = tmp_path / 'sub' / 'f.bin'
    backend = get_file_backend(str(path), backend_args=ATOMIC)
    backend.put(b'first', str(path))
    backend.put(b'second', str(path))
    backend.put_text('text', str(tmp_path / 'sub' / 'last_checkpoint'))
    assert path.read_bytes() == b'second'
    assert _entries(tmp_path / 'sub') == ['f.bin', 'last_checkpoint']
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize('where', ['write', 'fsync', 'replace'])
def test_a_crash_while_saving_keeps_the_old_checkpoint(tmp_path, monkeypatch,
                                                      where):
    path = str(tmp_path / 'epoch_1.pth')
    _save(OLD, path)

    def crash(*args, **kwargs):
        raise OSError(28, f'simulated failure in {where}')

    if where == 'write':
        monkeypatch.setattr(fileio, '_write_chunks', _half_then_crash)
    else:
        monkeypatch.setattr(fileio.os, where, crash)
    with pytest.raises(OSError):
        _save(NEW, path)
    monkeypatch.undo()
    assert _entries(tmp_path) == ['epoch_1.pth']  # no temp file left
    loaded = load_checkpoint_file(path)
    assert loaded['meta'] == {'epoch': 1}
    assert torch.equal(loaded['state_dict']['w'], OLD['state_dict']['w'])


def _half_then_crash(file, data):
    file.write(memoryview(data)[:len(data) // 2])
    raise OSError(28, 'No space left on device')


def test_a_writer_killed_midway_leaves_the_old_file(tmp_path):
    """SIGKILL in the middle of the write: the old file is intact, the
    hidden temp file is left and the next write of the path removes it."""
    path = str(tmp_path / 'epoch_1.pth')
    _save(OLD, path)
    code = (
        'import os, signal\n'
        'import mmtpr.utils.fileio as f\n'
        'def die(file, data):\n'
        '    file.write(memoryview(data)[:len(data) // 2]); file.flush()\n'
        '    os.kill(os.getpid(), signal.SIGKILL)\n'
        'f._write_chunks = die\n'
        f'f.atomic_write_bytes(b"x" * 10000, {path!r})\n')
    out = subprocess.run([sys.executable, '-c', code], timeout=120)
    assert out.returncode == -signal.SIGKILL
    temps = [n for n in _entries(tmp_path) if n != 'epoch_1.pth']
    assert len(temps) == 1 and re.fullmatch(
        r'\.epoch_1\.pth\.\d+\.[0-9a-f]{8}\.tmp', temps[0])
    assert load_checkpoint_file(path)['meta'] == {'epoch': 1}
    _save(NEW, path)
    assert _entries(tmp_path) == ['epoch_1.pth']
    assert load_checkpoint_file(path)['meta'] == {'epoch': 2}


def test_writes_never_go_through_a_symlink(tmp_path):
    """A link at the destination is replaced by the file; its target (which
    could be anything, e.g. a user's file) is untouched."""
    target = tmp_path / 'precious.txt'
    target.write_bytes(b'keep me')
    link = tmp_path / 'latest.pth'
    link.symlink_to(target)
    get_file_backend(str(link), backend_args=ATOMIC).put(b'new', str(link))
    assert not link.is_symlink() and link.read_bytes() == b'new'
    assert target.read_bytes() == b'keep me'
    with pytest.raises(IsADirectoryError, match='is a directory'):
        atomic_write_bytes(b'x', str(tmp_path))


@pytest.fixture
def damaged(tmp_path):
    """A directory with a good checkpoint and damaged ones."""
    good = str(tmp_path / 'epoch_1.pth')
    _save(OLD, good)
    data = open(good, 'rb').read()
    files = dict(
        truncated=data[:len(data) // 2],
        random=os.urandom(4096),
        empty=b'',
        flipped=data.replace(b'\x00\x00\x80\x3f', b'\x00\x00\x80\xbf', 1),
    )
    assert files['flipped'] != data  # the float 1.0 became -1.0
    for name, content in files.items():
        with open(tmp_path / f'{name}.pth', 'wb') as f:
            f.write(content)
    os.utime(good, (1, 1))  # the oldest
    return tmp_path


@pytest.mark.parametrize('name, problem', [
    ('truncated', r'truncated \(a zip archive that lacks its end records'),
    ('random', r'truncated or corrupted \(not a PyTorch checkpoint'),
    ('empty', r'empty \(0 bytes\)'),
    ('flipped', r"corrupted \(the archive member '.*' fails its CRC\)"),
])
def test_damaged_checkpoints_fail_clearly(damaged, name, problem):
    path = str(damaged / f'{name}.pth')
    with pytest.raises(CorruptedCheckpointError,
                       match=re.escape(f"checkpoint '{path}'") + '.*'
                       + problem) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert 'Use an earlier checkpoint' in message
    # the other checkpoints of the directory, newest first
    assert message.endswith('epoch_1.pth.')


def test_a_missing_checkpoint_names_the_file(damaged):
    path = str(damaged / 'epoch_9.pth')
    with pytest.raises(MissingFileError,
                       match=re.escape(f"checkpoint '{path}' does not "
                                       'exist')):
        load_checkpoint_file(path)


def test_resume_and_load_from_report_a_truncated_checkpoint(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    good = str(work / 'epoch_1.pth')
    _save(OLD, good)
    bad = str(work / 'epoch_2.pth')
    with open(bad, 'wb') as f:
        f.write(open(good, 'rb').read()[:100])
    (work / 'last_checkpoint').write_text(bad)
    data_root = str(tmp_path / 'synth')
    for extra in (dict(resume=True), dict(load_from=bad)):
        runner = build_runner(tiny_cfg(work, data_root, **extra))
        with pytest.raises(CorruptedCheckpointError,
                           match=re.escape(bad) + '.*truncated.*'
                           'epoch_1.pth'):
            runner.train() if 'resume' in extra else runner.test()
    assert osp.isfile(good)


def test_a_checkpoint_that_is_not_a_dict(tmp_path):
    path = str(tmp_path / 'list.pth')
    torch.save([torch.ones(1)], path)
    from mmtpr.utils.checkpoint import load_state_dict_file
    with pytest.raises(CheckpointError,
                       match=re.escape(f"checkpoint '{path}' holds a list, "
                                       'not a dict')):
        load_state_dict_file(path)
