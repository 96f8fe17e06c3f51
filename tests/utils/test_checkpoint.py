"""MMEngine checkpoints load with weights_only=True, and nothing more does."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import mmtpr  # noqa: F401  (applies the fix)


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
    ckpt = torch.load(path, weights_only=True)
    buffer = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == 0.5
    assert ckpt['meta']['seed'] == 3


def test_without_mmtpr_torch_refuses_the_same_checkpoint(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    _mmengine_like_checkpoint(path)
    code = ('import torch, sys\n'
            'try:\n'
            f'    torch.load({path!r}, weights_only=True)\n'
            'except Exception as e:\n'
            '    print(type(e).__name__); sys.exit(0)\n'
            'sys.exit(1)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and 'UnpicklingError' in out.stdout


class _GetattrOnHistoryBuffer:

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


class _SystemCall:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


@pytest.mark.parametrize('payload, message', [
    (_GetattrOnHistoryBuffer(), r"refusing getattr\(.*'__init__'\)"),
    (_SystemCall(), 'system'),
])
def test_tampered_checkpoints_are_still_refused(tmp_path, payload, message):
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': payload}, path)
    with pytest.raises(pickle.UnpicklingError, match=message):
        torch.load(path, weights_only=True)
