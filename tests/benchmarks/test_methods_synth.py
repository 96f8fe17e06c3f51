"""``benchmarks/methods_synth.py --quick`` (one seed, one learning rate,
frozen CLIP / UP-Person / DM-Adapter on a small target domain) prints the
table and writes it with every run to JSON."""
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_quick_run_prints_the_table(tmp_path):
    work, data = tmp_path / 'work', tmp_path / 'data'
    env = dict(os.environ, HF_HUB_OFFLINE='1', PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, 'benchmarks/methods_synth.py', '--quick',
         '--work-dir', str(work), '--data-dir', str(data)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    lines = out.stdout.splitlines()
    header = next(line for line in lines if line.startswith('| domain'))
    for column in ('trainable', 'R1', 'R5', 'mAP', 'mINP', 'train s',
                   'peak RSS MB', 'ckpt MB'):
        assert f' {column} |' in header
    rows = {line.split('|')[2].strip(): line.split('|')
            for line in lines if line.startswith('| A |')}
    assert set(rows) == {'frozen CLIP', 'UP-Person', 'DM-Adapter'}
    # the frozen CLIP trains nothing and keeps no checkpoint; the methods
    # train a few percent of the weights into small PETL-only checkpoints
    assert rows['frozen CLIP'][3].strip().startswith('0 (0.00 %)')
    for name in ('UP-Person', 'DM-Adapter'):
        trainable = int(rows[name][3].split('(')[0].replace(',', ''))
        assert 10_000 < trainable < 1_000_000
        assert 0 < float(rows[name][11]) < 5
    assert any(line.startswith('data loading (decode + resize to 384x128')
               for line in lines)
    assert any(line.startswith('lr grid [0.003]') for line in lines)
    record = json.load(open(work / 'methods_synth.json'))
    assert [r['row'] for r in record['results']] == [
        'frozen CLIP', 'UP-Person', 'DM-Adapter']
    for result in record['results']:
        test = result['runs'][0]['tests'][0]
        assert 0 <= test['R1'] <= 100 and 0 <= test['mAP'] <= 100
    print(f"checked methods_synth --quick: {len(rows)} rows, "
          f"{record['seconds']:.0f} s")
