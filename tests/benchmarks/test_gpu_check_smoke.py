"""benchmarks/gpu_check.py on the CPU: its smoke mode (tiny model, 2
iterations of batch 2, the dist and test stages on gloo and bfloat16),
its skip without CUDA, and its peak table."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(ROOT, 'benchmarks', 'gpu_check.py')


def _module():
    spec = importlib.util.spec_from_file_location('gpu_check', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_table_and_override():
    gpu_check = _module()
    assert gpu_check.peak_tflops('NVIDIA H200') == 989.0
    assert gpu_check.peak_tflops('NVIDIA H100 80GB HBM3') == 989.0
    assert gpu_check.peak_tflops('NVIDIA H100 PCIe') == 756.0
    assert gpu_check.peak_tflops('NVIDIA A100-SXM4-80GB') == 312.0
    assert gpu_check.peak_tflops('Tesla T4') is None
    assert gpu_check.peak_tflops('Tesla T4', 65.0) == 65.0


def test_iterations_and_batch_from_the_environment(monkeypatch):
    gpu_check = _module()
    monkeypatch.setenv('GPU_CHECK_ITERS', '7')
    monkeypatch.setenv('GPU_CHECK_BATCH', '16')
    args = gpu_check.parse_args([])
    assert (args.iters, args.batch, args.device) == (7, 16, 'cuda')
    assert gpu_check.parse_args(['--iters', '3']).iters == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is there')
def test_skips_clearly_without_cuda(capsys):
    assert _module().main(['--device', 'cuda']) == 0
    assert 'GPU check SKIPPED: no CUDA device' in capsys.readouterr().out


def test_dry_run_prints_one_table_and_passes(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=os.pathsep.join(
        [ROOT, os.environ.get('PYTHONPATH', '')]))
    out = tmp_path / 'report.md'
    proc = subprocess.run(
        [sys.executable, SCRIPT, '--dry-run', '--methods', 'dm_adapter',
         '--stages', 'throughput', 'dist', 'test', '--work-dir',
         str(tmp_path / 'work'), '--out', str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = out.read_text()
    assert table.count('| check |') == 1
    assert '| train dm_adapter | bf16 | 2 | 2 |' in table
    assert 'skipped (CPU autocast is bfloat16 only)' in table
    assert '| tools/dist_train.sh, 1 process, gloo |' in table
    assert '| tools/test.py --amp |' in table
    assert 'FAILED' not in table


def test_a_failing_stage_fails_the_check(tmp_path, monkeypatch):
    gpu_check = _module()
    monkeypatch.setattr(gpu_check, 'build_for_training',
                        lambda *a: (_ for _ in ()).throw(RuntimeError('x')))
    code = gpu_check.main(['--dry-run', '--methods', 'frozen', '--stages',
                           'throughput', '--work-dir', str(tmp_path)])
    assert code == 1
