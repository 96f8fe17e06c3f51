"""Atomic checkpoint writes and clear errors for damaged checkpoints."""
import os
import os.path as osp
import pickle
import re
import signal
import subprocess
import sys

import pytest
import torch
from conftest import tiny_cfg
from mmengine.fileio import get_file_backend
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

import mmtpr.utils.checkpoint as ckpt_io
from mmtpr.utils.checkpoint import AtomicLocalBackend, CorruptedCheckpointError

OLD = {'state_dict': {'w': torch.arange(1000.)}, 'meta': {'epoch': 1}}
NEW = {'state_dict': {'w': torch.zeros(1000)}, 'meta': {'epoch': 2}}


def _entries(directory):
    return sorted(os.listdir(directory))


def _half_then_crash(file, data):
    file.write(memoryview(data)[:len(data) // 2])
    raise OSError(28, 'No space left on device')


def test_the_local_backend_is_atomic():
    assert type(get_file_backend('work_dirs/x/epoch_1.pth')) is \
        AtomicLocalBackend


def test_put_writes_and_replaces(tmp_path):
    path = tmp_path / 'sub' / 'f.bin'
    backend = get_file_backend(str(path))
    backend.put(b'first', str(path))
    backend.put(b'second', str(path))
    assert path.read_bytes() == b'second'
    assert _entries(tmp_path / 'sub') == ['f.bin']
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize('where', ['write', 'fsync', 'replace'])
def test_a_crash_while_saving_keeps_the_old_checkpoint(tmp_path, monkeypatch,
                                                      where):
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(OLD, path)
    if where == 'write':
        monkeypatch.setattr(ckpt_io, '_write_chunks', _half_then_crash)
    else:
        def crash(*args):
            raise OSError(5, f'simulated crash in {where}')
        monkeypatch.setattr(ckpt_io.os, where, crash)
    with pytest.raises(OSError):
        save_checkpoint(NEW, path)
    monkeypatch.undo()
    assert _entries(tmp_path) == ['epoch_1.pth']  # no temp file left
    loaded = _load_checkpoint(path)
    assert loaded['meta'] == {'epoch': 1}
    assert torch.equal(loaded['state_dict']['w'], OLD['state_dict']['w'])


def test_a_writer_killed_midway_leaves_the_old_file(tmp_path):
    """SIGKILL in the middle of the write: the old file is intact, the
    hidden temp file is left and the next write of the path removes it."""
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(OLD, path)
    code = (
        'import os, signal, torch\n'
        'import mmtpr.utils.checkpoint as c\n'
        'from mmengine.runner.checkpoint import save_checkpoint\n'
        'def die(file, data):\n'
        '    file.write(memoryview(data)[:len(data) // 2]); file.flush()\n'
        '    os.kill(os.getpid(), signal.SIGKILL)\n'
        'c._write_chunks = die\n'
        f'save_checkpoint({{"w": torch.zeros(1000)}}, {path!r})\n')
    out = subprocess.run([sys.executable, '-c', code], timeout=120)
    assert out.returncode == -signal.SIGKILL
    temps = [n for n in _entries(tmp_path) if n != 'epoch_1.pth']
    assert len(temps) == 1 and re.fullmatch(
        r'\.epoch_1\.pth\.\d+\.[0-9a-f]{8}\.tmp', temps[0])
    assert _load_checkpoint(path)['meta'] == {'epoch': 1}
    save_checkpoint(NEW, path)
    assert _entries(tmp_path) == ['epoch_1.pth']
    assert _load_checkpoint(path)['meta'] == {'epoch': 2}


@pytest.fixture
def damaged(tmp_path):
    """A directory with a good checkpoint and damaged ones."""
    good = str(tmp_path / 'epoch_1.pth')
    save_checkpoint(OLD, good)
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
        _load_checkpoint(path)
    message = str(info.value)
    assert 'Use an earlier checkpoint' in message
    # the other checkpoints of the directory, newest first
    assert message.endswith('epoch_1.pth.')


def test_a_missing_checkpoint_names_the_file(damaged):
    path = str(damaged / 'epoch_9.pth')
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f"checkpoint '{path}' does not exist")
                       + r'\. Checkpoints beside it, newest first: .*'
                       'epoch_1.pth'):
        _load_checkpoint(path)


def test_tampered_checkpoints_are_not_called_corrupted(tmp_path):
    path = str(tmp_path / 'evil.pth')

    class SystemCall:

        def __reduce__(self):
            return (os.system, ('echo pwned', ))

    torch.save({'x': SystemCall()}, path)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        _load_checkpoint(path)


def test_resume_and_load_from_report_a_truncated_checkpoint(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    good = str(work / 'epoch_1.pth')
    save_checkpoint(OLD, good)
    bad = str(work / 'epoch_2.pth')
    with open(bad, 'wb') as f:
        f.write(open(good, 'rb').read()[:100])
    (work / 'last_checkpoint').write_text(bad)
    data_root = str(tmp_path / 'synth')
    for extra in (dict(resume=True), dict(load_from=bad)):
        runner = Runner.from_cfg(tiny_cfg(work, data_root, **extra))
        with pytest.raises(CorruptedCheckpointError,
                           match=re.escape(bad) + '.*truncated.*'
                           'epoch_1.pth'):
            runner.train() if 'resume' in extra else runner.test()
    assert osp.isfile(good)


def test_put_through_a_symlink_replaces_its_target(tmp_path):
    target = tmp_path / 'real.pth'
    target.write_bytes(b'old')
    link = tmp_path / 'latest.pth'
    link.symlink_to(target)
    get_file_backend(str(link)).put(b'new', str(link))
    assert link.is_symlink() and target.read_bytes() == b'new'
    assert _entries(tmp_path) == ['latest.pth', 'real.pth']
