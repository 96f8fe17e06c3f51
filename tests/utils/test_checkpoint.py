"""MMEngine checkpoints load with weights_only=True through mmtpr's loader,
nothing more does, and importing mmtpr changes nothing outside it."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmtpr.utils.checkpoint import load_checkpoint_file
from mmtpr.utils.errors import CheckpointError


def _mmengine_like_checkpoint(path):
    hub = MessageHub.get_instance('ckpt_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/lr', np.float64(1e-3))
    torch.save({'meta': {'epoch': 1, 'seed': np.int64(3)},
                'state_dict': {'w': torch.ones(2)},
                'message_hub': hub.state_dict()}, path)


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    _mmengine_like_checkpoint(path)
    ckpt = load_checkpoint_file(path)
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == 0.5
    assert ckpt['meta']['seed'] == 3


def test_the_allow_list_is_not_process_wide(tmp_path):
    """Only mmtpr's loader allows MMEngine's objects: a plain torch.load
    after importing mmtpr still refuses them."""
    path = str(tmp_path / 'ckpt.pth')
    _mmengine_like_checkpoint(path)
    import mmtpr  # noqa: F401
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


class _GetattrOnHistoryBuffer:

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


class _SystemCall:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


@pytest.mark.parametrize('payload, message', [
    (_GetattrOnHistoryBuffer(), r"refusing to load"),
    (_SystemCall(), 'refusing to load'),
])
def test_tampered_checkpoints_are_refused_by_name(tmp_path, payload,
                                                  message):
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': payload}, path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint_file(path)
    assert path in str(info.value)
    assert 'truncated' not in str(info.value)


_MMENGINE_STATE = (
    'import json\n'
    'from mmengine.fileio import io as fileio_io\n'
    'from mmengine.fileio.backends import registry_utils as r\n'
    'from mmengine.runner.checkpoint import CheckpointLoader\n'
    'def state():\n'
    '    return dict(\n'
    '        backends={k: v.__module__ + "." + v.__name__\n'
    '                  for k, v in r.backends.items()},\n'
    '        prefixes={k: v.__module__ + "." + v.__name__\n'
    '                  for k, v in r.prefix_to_backends.items()},\n'
    '        loaders={k: v.__module__ + "." + v.__name__\n'
    '                 for k, v in CheckpointLoader._schemes.items()})\n'
    'before = state()\n'
    'import mmtpr, mmtpr.engine, mmtpr.models, mmtpr.datasets\n'
    'import mmtpr.apis, mmtpr.evaluation, mmtpr.visualization\n'
    'after = state()\n'
    'added = {k: v for k, v in after["backends"].items()\n'
    '         if k not in before["backends"]}\n'
    'before["backends"].update(added)\n'
    'print(json.dumps(dict(same=before == after, added=added)))\n')


def test_importing_mmtpr_changes_no_mmengine_backend_or_loader():
    """MMEngine's file backends, prefixes and checkpoint loader schemes are
    those of MMEngine after importing every part of mmtpr; the only
    addition is mmtpr's own backend name."""
    out = subprocess.run([sys.executable, '-c', _MMENGINE_STATE],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, HF_HUB_OFFLINE='1'))
    assert out.returncode == 0, out.stderr
    import json
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['same'], result
    assert result['added'] == {
        'mmtpr_local': 'mmtpr.utils.fileio.AtomicLocalBackend'}


def test_torch_force_no_weights_only_load_changes_nothing(tmp_path):
    """With the variable that turns weights_only off for implicit calls, a
    pickle that runs code is still refused by every mmtpr loader."""
    path = str(tmp_path / 'evil.pth')
    marker = tmp_path / 'MARKER'
    code = (
        'import os, torch\n'
        'class P:\n'
        '    def __reduce__(self):\n'
        f'        return (os.system, ("touch {marker}",))\n'
        f'torch.save({{"state_dict": {{"x": P()}}}}, {path!r})\n'
        'from mmtpr.utils.checkpoint import load_checkpoint_file\n'
        'from mmtpr.utils.errors import CheckpointError\n'
        'try:\n'
        f'    load_checkpoint_file({path!r})\n'
        'except CheckpointError as e:\n'
        '    print("refused")\n')
    env = dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1',
               HF_HUB_OFFLINE='1')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300, env=env)
    assert 'refused' in out.stdout, out.stderr
    assert not marker.exists()
