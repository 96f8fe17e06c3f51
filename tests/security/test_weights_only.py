"""Item 4: ``weights_only`` is explicit. In a process with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (which turns it off for every
implicit ``torch.load``), a pickle that calls ``os.system`` is refused by
every mmtpr load path, by name, and never runs. Also item 10: a refused
legacy (non-zip) pickle is not called truncated."""
import glob
import json
import os
import os.path as osp
import re
import shutil

import pytest
import torch
from conftest import TINY_CLIP

from mmtpr.utils.checkpoint import load_checkpoint_file
from mmtpr.utils.errors import CheckpointError

from .hostile import HERE, run_python, save_system_pickle

LOAD_PATHS = [
    'load_checkpoint_file', 'load_state_dict_file', 'legacy format',
    'TPRRunner load_from', 'TPRRunner resume', 'load_petl_checkpoint',
    'Gallery.load', 'TPRInferencer', 'export_pytorch', 'CLIP .pth weights'
]
FILE_NAMES = {
    'torch.load (control)': 'control.pth',
    'load_checkpoint_file': 'epoch_1.pth',
    'load_state_dict_file': 'state.pth',
    'legacy format': 'legacy.pth',
    'TPRRunner load_from': 'load_from.pth',
    'TPRRunner resume': 'resume.pth',
    'load_petl_checkpoint': 'petl.pth',
    'Gallery.load': 'gallery.pth',
    'TPRInferencer': 'inferencer.pth',
    'export_pytorch': 'export.pth',
    'CLIP .pth weights': 'ViT-B-16.pth',
    'gallery cache': 'cache_entry.pth',
}


@pytest.fixture(scope='module')
def probe(trained, tmp_path_factory):
    """Every load path run once on its own hostile file (each with its own
    marker) in one subprocess with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1."""
    base = tmp_path_factory.mktemp('weights_only')
    state_dict = load_checkpoint_file(trained['epoch_1'])['state_dict']
    evil, markers = {}, {}
    for name, file_name in FILE_NAMES.items():
        folder = base / 'files' / re.sub(r'\W+', '_', name)
        folder.mkdir(parents=True)
        markers[name] = str(base / 'markers' / f'{folder.name}')
        evil[name] = save_system_pickle(
            folder / file_name, markers[name],
            legacy=name == 'legacy format',
            meta=dict(epoch=1, iter=6), state_dict=state_dict)
    (base / 'markers').mkdir()
    gallery = base / 'gallery'
    gallery.mkdir()
    images = sorted(glob.glob(osp.join(trained['data_root'], 'imgs', '**',
                                       '*.jpg'), recursive=True))[:3]
    assert len(images) == 3
    for image in images:
        shutil.copy(image, gallery)
    (base / 'scratch').mkdir()
    setup = dict(config=trained['config'], checkpoint=trained['epoch_2'],
                 gallery=str(gallery), scratch=str(base / 'scratch'),
                 tiny_clip=TINY_CLIP, evil=evil)
    setup_file = base / 'setup.json'
    setup_file.write_text(json.dumps(setup))
    out = run_python([osp.join(HERE, 'weights_only_probe.py'), setup_file],
                     timeout=300, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1')
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    return dict(results=results, evil=evil, markers=markers)


def test_the_environment_makes_plain_torch_load_run_code(probe):
    """The control: torch.load without an explicit weights_only runs the
    payload in that process."""
    assert osp.exists(probe['markers']['torch.load (control)'])


@pytest.mark.parametrize('name', LOAD_PATHS)
def test_every_load_path_refuses_the_pickle(probe, name):
    result = probe['results'][name]
    path = probe['evil'][name]
    assert not osp.exists(probe['markers'][name]), 'the payload ran'
    assert result['raised'] == 'CheckpointError', result
    message = result['message']
    assert re.search(re.escape(f"refusing to load '{path}'") + '.*could '
                     'run code', message), message
    assert 'truncated' not in message and 'corrupted' not in message


def test_a_hostile_cache_entry_is_a_miss(probe):
    """A gallery cache entry holding the pickle is re-encoded, not run."""
    result = probe['results']['gallery cache']
    assert not osp.exists(probe['markers']['gallery cache'])
    assert result['raised'] is None, result
    assert result['value'] == dict(images=3, cache_replaced=True)


def test_a_legacy_pickle_is_refused_not_called_truncated(tmp_path, outside):
    """In this process too (item 10)."""
    path = save_system_pickle(tmp_path / 'legacy.pth', outside.marker,
                              legacy=True, state_dict={'w': torch.ones(1)})
    with open(path, 'rb') as f:
        assert f.read(1) == b'\x80'  # a bare pickle stream, no zip
    with pytest.raises(CheckpointError,
                       match=re.escape(f"refusing to load '{path}'")) as info:
        load_checkpoint_file(path)
    assert 'truncated' not in str(info.value)
    assert not os.path.exists(outside.marker)
