"""Items 5 and 6 through the command lines, and the outputs of the tools:
``tools/retrieve.py --skip-bad-images`` leaves out and reports every kind
of hostile gallery entry; a tampered ``--save-features`` file is refused
by ``--gallery FILE``; no output (``--save-features``, ``tools/test.py
--out``, exports) is ever written through a symbolic link."""
import glob
import os
import os.path as osp
import re
import shutil

import pytest
import torch

from mmtpr.apis.export import export_pytorch

from .hostile import (
    HOSTILE_IMAGES,
    exit_code,
    no_hang,
    png_bytes,
    says,
    snapshot,
)


@pytest.fixture
def gallery(trained, tmp_path, outside):
    """Four good images and one entry of every hostile kind (plus a link
    out of the folder)."""
    folder = tmp_path / 'gallery'
    folder.mkdir()
    images = sorted(glob.glob(osp.join(trained['data_root'], 'imgs', '**',
                                       '*.jpg'), recursive=True))[:4]
    for i, image in enumerate(images):
        shutil.copy(image, folder / f'good_{i}.jpg')
    bad = [HOSTILE_IMAGES[kind](str(folder / f'bad_{kind}.jpg'))
           for kind in HOSTILE_IMAGES]
    target = osp.join(outside.root, 'outside.jpg')
    with open(target, 'wb') as f:
        f.write(png_bytes((16, 32)))
    outside.before = snapshot(outside.root)
    os.symlink(target, folder / 'bad_link_out.jpg')
    bad.append(str(folder / 'bad_link_out.jpg'))
    return str(folder), bad


def link_to_victim(path, outside):
    """``path`` becomes a link to the outside victim file."""
    os.symlink(outside.victim, path)
    return str(path)


def test_retrieve_skips_and_reports_bad_images(trained, gallery, tmp_path,
                                               outside, capfd, mm_log):
    folder, bad = gallery
    features = link_to_victim(tmp_path / 'features.pth', outside)
    argv = [trained['config'], trained['epoch_2'], '--gallery', folder,
            '--query', 'a person in a red shirt', '--device', 'cpu',
            '--cache-dir', '', '--skip-bad-images', '--topk', '10',
            '--save-features', features]
    mm_log.attach()
    with no_hang(120):
        assert exit_code('retrieve', argv) == 0
    out = capfd.readouterr().out
    ranked = re.findall(r'^\s+\d+\s+-?\d\.\d{4}\s+(\S+)$', out, re.M)
    assert sorted(osp.basename(p) for p in ranked) == [
        f'good_{i}.jpg' for i in range(4)]
    for path in bad:
        assert re.search(r'skipping.*' + re.escape(path), mm_log.text), \
            mm_log.text
    # --save-features replaced the link; the victim is unchanged (the
    # fixture compares everything outside)
    assert not osp.islink(features) and osp.isfile(features)


def test_retrieve_refuses_a_tampered_feature_file(trained, gallery,
                                                  tmp_path, capfd):
    folder, _ = gallery
    features = str(tmp_path / 'features.pth')
    argv = [trained['config'], trained['epoch_2'], '--query', 'a person',
            '--device', 'cpu', '--cache-dir', '']
    with no_hang(120):
        assert exit_code('retrieve', argv + [
            '--gallery', folder, '--skip-bad-images', '--save-features',
            features]) == 0
    content = torch.load(features, weights_only=True)
    content['features'] = content['features'].flip(0)  # same model_id
    torch.save(content, features)
    capfd.readouterr()
    assert exit_code('retrieve', argv + ['--gallery', features]) == 2
    err = capfd.readouterr().err
    assert says(err, f"error: gallery feature file '{features}' does not "
                'match its digest')


def test_test_out_is_not_written_through_a_link(trained, tmp_path, outside,
                                                capfd):
    out = link_to_victim(tmp_path / 'results.pkl', outside)
    argv = [trained['config'], trained['epoch_2'], '--work-dir',
            str(tmp_path / 'work'), '--out', out]
    assert exit_code('test', argv) == 0
    assert not osp.islink(out) and osp.getsize(out) > 0


@pytest.mark.parametrize('name', [
    'model.pth',
    'config.py',
])
def test_an_export_is_not_written_through_a_link(trained, tmp_path, outside,
                                                 name):
    out_dir = tmp_path / 'export'
    out_dir.mkdir()
    link = link_to_victim(out_dir / name, outside)
    try:
        export_pytorch(trained['config'], trained['epoch_2'], str(out_dir))
    finally:
        with open(outside.victim) as f:
            victim = f.read()
    assert victim == 'precious\n'
    assert not osp.islink(link) and osp.isfile(link)
