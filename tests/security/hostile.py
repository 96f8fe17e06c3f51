"""Builders of hostile files for the security tests: each is made at test
time, in the test's own temporary folder (nothing binary is kept in git).
"""
import contextlib
import importlib.util
import io
import os
import os.path as osp
import re
import shlex
import signal
import struct
import subprocess
import sys
import zlib
from typing import Dict, Tuple

import torch
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
HERE = osp.dirname(osp.abspath(__file__))


# ---------------------------------------------------------------------------
# Pickles that run code when unpickled without weights_only
# ---------------------------------------------------------------------------
class SystemCall:
    """Unpickles as ``os.system('touch MARKER')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {shlex.quote(self.marker)}', ))


def save_system_pickle(path, marker, legacy=False, **content):
    """``torch.save`` a dict holding ``content`` and an os.system payload
    (the legacy, non-zip format with ``legacy=True``); returns ``path``."""
    data = dict(content, payload=SystemCall(marker))
    torch.save(data, str(path), _use_new_zipfile_serialization=not legacy)
    return str(path)


# ---------------------------------------------------------------------------
# Images and special files
# ---------------------------------------------------------------------------
def png_bytes(size=(4, 4), color='red'):
    buffer = io.BytesIO()
    Image.new('RGB', size, color).save(buffer, 'PNG')
    return buffer.getvalue()


def huge_png(path, width=20000, height=20000):
    """A valid 4x4 PNG whose IHDR claims ``width`` x ``height`` (CRC
    recomputed): a 400-megapixel 'image' of ~70 bytes."""
    data = bytearray(png_bytes())
    assert data[12:16] == b'IHDR'
    data[16:24] = struct.pack('>II', width, height)
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    with open(path, 'wb') as f:
        f.write(data)
    try:  # Pillow reads the claimed size from the header
        with Image.open(str(path)) as img:
            assert img.size == (width, height)
    except Image.DecompressionBombError as err:
        assert f'({width * height} pixels)' in str(err)
    return str(path)


def mkfifo(path):
    """A FIFO at ``path`` (reading it blocks forever without a writer)."""
    if not hasattr(os, 'mkfifo'):
        import pytest
        pytest.skip('os.mkfifo is not available on this platform')
    os.mkfifo(str(path))
    return str(path)


def dev_zero_link(path):
    if not osp.exists('/dev/zero'):
        import pytest
        pytest.skip('/dev/zero does not exist on this platform')
    os.symlink('/dev/zero', str(path))
    return str(path)


def dangling_link(path):
    os.symlink(str(path) + '.missing', str(path))
    return str(path)


def empty_file(path):
    open(str(path), 'wb').close()
    return str(path)


#: name -> builder(path) of the hostile "images" of items 5 and 10
HOSTILE_IMAGES = {
    'fifo': mkfifo,
    'dev_zero': dev_zero_link,
    'huge': huge_png,
    'empty': empty_file,
    'dangling': dangling_link,
}
#: name -> what the named error says about it
HOSTILE_REASONS = {
    'fifo': r'FIFO',
    'dev_zero': r'character device|not a regular file',
    'huge': r'20000x20000|too large to decode',
    'empty': r'empty \(0 bytes\)',
    'dangling': r'symbolic link to a missing file|does not exist',
}


@contextlib.contextmanager
def no_hang(seconds=20):
    """Fail (TimeoutError) instead of hanging, e.g. on a FIFO (POSIX: an
    interval timer interrupts the blocked system call)."""
    if not hasattr(signal, 'setitimer'):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f'still blocked after {seconds} s')

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------
# Snapshots: nothing outside the work dir is deleted or written
# ---------------------------------------------------------------------------
def snapshot(folder):
    """{relative path: (kind, bytes or link target)} of everything under
    ``folder``, links not followed."""
    found = {}
    for root, dirs, files in os.walk(str(folder)):
        for name in dirs + files:
            path = osp.join(root, name)
            rel = osp.relpath(path, str(folder))
            if osp.islink(path):
                found[rel] = ('link', os.readlink(path))
            elif osp.isdir(path):
                found[rel] = ('dir', None)
            else:
                with open(path, 'rb') as f:
                    found[rel] = ('file', f.read())
    return found


# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------
def tool_env(**extra):
    """The environment of a tool subprocess: this checkout (and tests/) on
    PYTHONPATH, no download, one thread per process."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in [ROOT, osp.join(ROOT, 'tests'), env.get('PYTHONPATH')]
        if p)
    env.update(HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONWARNINGS='ignore')
    env.update(extra)
    return env


def run_python(args, timeout=120, cwd=None, **env):
    """Run ``python ARGS`` (a script and its arguments) to completion."""
    return subprocess.run([sys.executable, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env=tool_env(**env), cwd=cwd or ROOT)


def load_tool(name):
    """tools/<name>.py as a module (its main and parse_args)."""
    spec = importlib.util.spec_from_file_location(
        f'mmtpr_security_tool_{name}', osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exit_code(name, argv):
    """The exit code of tools/<name>.py's command line (``run_tool``: 0,
    or 2 after printing a user error as one block), run in-process."""
    tool = load_tool(name)
    try:
        tool.run_tool(tool.main, list(map(str, argv)))
    except SystemExit as exc:
        return exc.code
    return None


# ---------------------------------------------------------------------------
# TorchScript archives whose __setstate__ writes a file when torch.jit.load
# runs it (torch.from_file(..., shared=True) maps the marker and fill_
# writes it; the result is kept, so TorchScript does not eliminate it)
# ---------------------------------------------------------------------------
class TupleStateProbe(torch.nn.Module):
    """A custom ``__setstate__`` taking a tuple."""

    __constants__ = ['marker']

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.probe = torch.zeros(8, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]) -> None:
        self.weight = state[0]
        self.training = state[1]
        written = torch.from_file(self.marker, shared=True, size=8,
                                  dtype=torch.uint8)
        self.probe = written.fill_(65)


class DictStateProbe(torch.nn.Module):
    """A custom ``__setstate__`` taking a dict, as a plain module's state
    is."""

    __constants__ = ['marker']

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.weight = torch.nn.Parameter(torch.ones(2))
        self.probe = torch.zeros(8, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> Dict[str, torch.Tensor]:
        return {'weight': self.weight}

    @torch.jit.export
    def __setstate__(self, state: Dict[str, torch.Tensor]) -> None:
        self.weight = state['weight']
        self.training = False
        written = torch.from_file(self.marker, shared=True, size=8,
                                  dtype=torch.uint8)
        self.probe = written.fill_(65)


def hostile_torchscript(path, marker, kind='tuple'):
    """Script and save a probe module; returns ``path``."""
    import warnings
    cls = TupleStateProbe if kind == 'tuple' else DictStateProbe
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        torch.jit.script(cls(str(marker))).save(str(path))
    return str(path)


def says(text, *parts):
    """Whether ``text`` (a tool's wrapped error block) holds ``parts`` in
    that order, whitespace and line wrapping ignored."""
    squashed = re.sub(r'\s+', '', text)
    pattern = '.*'.join(re.escape(re.sub(r'\s+', '', p)) for p in parts)
    return re.search(pattern, squashed) is not None
