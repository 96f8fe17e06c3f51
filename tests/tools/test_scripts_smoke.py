"""Every script under tools/ and benchmarks/ runs: it imports and answers
--help, and the ones with a small mode run it, so that none can go stale
without a test failing."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPTS = sorted(
    osp.relpath(p, ROOT) for pattern in ('tools/*.py', 'tools/*/*.py',
                                         'benchmarks/*.py')
    for p in glob.glob(osp.join(ROOT, pattern)))
SHELL = sorted(osp.relpath(p, ROOT) for p in
               glob.glob(osp.join(ROOT, '*', '*.sh'))
               if not p.startswith(osp.join(ROOT, '.')))
ENV = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=ROOT)
DEMO = 'configs/demo/clip_tiny_synth.py'
# (script, arguments of a small run, text its output must contain)
SMALL_RUNS = [
    ('benchmarks/checkpoint_size.py', ['--tiny', '--methods', 'up_person'],
     'PETL-only / full'),
    ('benchmarks/rank_at_scale.py', ['--sizes', 'tiny'],
     'tiny: R@k identical'),
    ('benchmarks/search_scale.py',
     ['--sizes', '2k', '--queries', '4', '--repeats', '2'], 'exact'),
    ('tools/analysis/count_params.py', [DEMO], 'trainable'),
    ('tools/analysis/flops.py', ['configs/demo/up_person_tiny_synth.py'],
     'GFLOPs'),
]


def run(args, timeout=600):
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_every_script_is_covered():
    assert len(SCRIPTS) >= 14, SCRIPTS
    assert {'tools/train.py', 'tools/test.py', 'tools/demo.py',
            'benchmarks/methods_synth.py'} <= set(SCRIPTS)


@pytest.mark.parametrize('script', SCRIPTS)
def test_script_imports_and_answers_help(script):
    out = run([script, '--help'], timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith('usage:'), out.stdout[:200]


# the one shell script that runs without arguments: the GPU check, which
# says it skips where there is no CUDA device
NO_ARGS = 'benchmarks/gpu_check.sh'


@pytest.mark.parametrize('script', [s for s in SHELL if s != NO_ARGS])
def test_shell_scripts_print_their_usage(script):
    out = subprocess.run(['bash', script], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and 'usage:' in out.stderr


def test_gpu_check_skips_without_cuda():
    import torch
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is here: the check would run')
    out = subprocess.run(['bash', NO_ARGS], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith('GPU check SKIPPED: no CUDA device')


@pytest.mark.parametrize('script, args, expected', SMALL_RUNS,
                         ids=[s for s, _, _ in SMALL_RUNS])
def test_small_runs(script, args, expected):
    out = run([script] + args)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert expected in out.stdout + out.stderr
