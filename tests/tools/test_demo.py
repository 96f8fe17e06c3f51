"""The demo (``tools/demo.py``) prints the same numbers whatever the
machine's load and the environment's thread settings, and ``tools/test.py``
on each printed checkpoint reproduces its row exactly. Both runs use
``--quick`` (tiny data, 2 epochs per stage): the whole code path of the
demo, pre-training included, in about a minute each."""
import os
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ROWS = ('frozen CLIP', 'UP-Person', 'DM-Adapter')
BURN = 'import time\nend = time.time() + 600\nwhile time.time() < end: pass'


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS',
                        'OMP_WAIT_POLICY')}
    env.update(HF_HUB_OFFLINE='1', PYTHONPATH=ROOT, **extra)
    return env


def run_demo(work_dir, data_dir, env, burners=0):
    """Run the quick demo, with ``burners`` busy processes beside it."""
    busy = [subprocess.Popen([sys.executable, '-c', BURN])
            for _ in range(burners)]
    try:
        out = subprocess.run(
            [sys.executable, 'tools/demo.py', '--quick', '--work-dir',
             str(work_dir), '--data-dir', str(data_dir)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return out.stdout


def rows(stdout):
    """method -> its five metrics, as printed."""
    found = {}
    for line in stdout.splitlines():
        for name in ROWS:
            if line.startswith(name):
                numbers = re.findall(r'\d+\.\d\d', line.split(')', 1)[1])
                found[name] = numbers[:5]
    assert set(found) == set(ROWS), stdout[-2000:]
    return found


@pytest.fixture(scope='module')
def demos(tmp_path_factory):
    base = tmp_path_factory.mktemp('demo')
    data = base / 'data'
    # one thread everywhere in the environment, two busy processes beside
    loaded = run_demo(base / 'loaded', data,
                      _env(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'),
                      burners=2)
    # PyTorch's defaults, an idle machine
    idle = run_demo(base / 'idle', data, _env())
    return dict(loaded=loaded, idle=idle)


def test_the_demo_prints_the_same_numbers_under_load(demos):
    loaded, idle = rows(demos['loaded']), rows(demos['idle'])
    assert loaded == idle
    # the rows are results, not a copy of one another
    assert loaded['frozen CLIP'] != loaded['UP-Person']


def test_test_py_reproduces_each_printed_row(demos):
    printed = rows(demos['idle'])
    commands = [line.strip() for line in demos['idle'].splitlines()
                if 'python tools/test.py' in line]
    assert len(commands) == 2
    for name, command in zip(ROWS[1:], commands):
        words = shlex.split(command)
        assert words[0] == 'OMP_NUM_THREADS=2' and words[2] == 'tools/test.py'
        out = subprocess.run(
            [sys.executable] + words[2:], cwd=ROOT,
            env=_env(OMP_NUM_THREADS='2'), capture_output=True, text=True,
            timeout=600)
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        table = re.search(r't2i((?:\s+\d+\.\d\d){5})', out.stdout + out.stderr)
        assert table, (out.stdout + out.stderr)[-2000:]
        assert table.group(1).split() == printed[name], name
