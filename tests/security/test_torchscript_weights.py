"""Item 3: a hostile "pretrained CLIP" TorchScript archive runs code under
``torch.jit.load``; mmtpr's reader and OpenCLIPBackbone refuse it and run
nothing. A benign scripted open_clip CLIP loads through the safe reader
with exactly torch.jit.load's weights and its activation detected."""
import os
import os.path as osp
import re
import warnings

import open_clip
import pytest
import torch
from conftest import TINY_CLIP

from mmtpr.models.backbones.clip_weights import load_clip_state_dict
from mmtpr.models.backbones.open_clip_backbone import OpenCLIPBackbone
from mmtpr.utils.checkpoint import load_checkpoint_file
from mmtpr.utils.errors import CheckpointError, ConfigError
from mmtpr.utils.torchscript import read_torchscript_state_dict

from .hostile import hostile_torchscript, run_python

KINDS = ['tuple', 'dict']
JIT_LOAD = (
    'import sys, warnings, torch\n'
    'warnings.simplefilter("ignore")\n'
    'for path in sys.argv[1:]:\n'
    '    torch.jit.load(path)\n')


@pytest.fixture(scope='module')
def archives(tmp_path_factory):
    """The hostile archives, and what torch.jit.load did with them (in a
    subprocess): the marker it wrote. The markers are then removed."""
    base = tmp_path_factory.mktemp('torchscript')
    found = {}
    for kind in KINDS:
        (base / kind).mkdir()
        marker = str(base / f'MARKER_{kind}')
        found[kind] = dict(
            path=hostile_torchscript(base / kind / 'ViT-B-16.pt', marker,
                                     kind),
            marker=marker)
    found['jit_load'] = run_python(['-c', JIT_LOAD] + [
        found[kind]['path'] for kind in KINDS])
    for kind in KINDS:
        marker = found[kind]['marker']
        found[kind]['written'] = None
        if osp.exists(marker):
            with open(marker, 'rb') as f:
                found[kind]['written'] = f.read()
            os.remove(marker)
    return found


def test_torch_jit_load_runs_the_archive_code(archives):
    """The archives are hostile: loading them the usual way writes the
    marker."""
    assert archives['jit_load'].returncode == 0, archives['jit_load'].stderr
    for kind in KINDS:
        assert archives[kind]['written'] == b'A' * 8, kind


@pytest.mark.parametrize('kind', KINDS)
def test_the_safe_reader_refuses_it(archives, kind):
    path, marker = archives[kind]['path'], archives[kind]['marker']
    try:
        with pytest.raises(CheckpointError,
                           match=re.escape(f"'{path}'")
                           + r'.*custom __setstate__'):
            read_torchscript_state_dict(path)
    finally:
        assert not osp.exists(marker)


@pytest.mark.parametrize('kind', KINDS)
def test_the_backbone_refuses_it_as_pretrained(archives, kind):
    path, marker = archives[kind]['path'], archives[kind]['marker']
    try:
        with pytest.raises(CheckpointError,
                           match=re.escape(f"'{path}'")
                           + r'.*custom __setstate__'):
            OpenCLIPBackbone(model_cfg=TINY_CLIP, pretrained=path,
                             image_size=(64, 32))
    finally:
        assert not osp.exists(marker)


def test_checkpoint_loaders_refuse_it(archives):
    """Given where a checkpoint goes, it is named as an archive, not
    loaded."""
    path = archives['tuple']['path']
    with pytest.raises(CheckpointError,
                       match=re.escape(f"'{path}' is a TorchScript archive")):
        load_checkpoint_file(path)
    assert not osp.exists(archives['tuple']['marker'])


# ---------------------------------------------------------------------------
# A benign archive: a scripted open_clip CLIP
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module', params=[True, False],
                ids=['quick_gelu', 'gelu'])
def scripted_clip(request, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('scripted') / 'tiny_clip.pt')
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP, quick_gelu=request.param)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        torch.jit.script(model).save(path)
        reference = torch.jit.load(path).state_dict()
    return dict(path=path, quick_gelu=request.param, reference=reference)


def test_a_scripted_clip_reads_as_torch_jit_load_does(scripted_clip):
    state_dict, classes = read_torchscript_state_dict(scripted_clip['path'])
    reference = scripted_clip['reference']
    assert list(state_dict) == list(reference)
    for key, value in reference.items():
        assert state_dict[key].dtype == value.dtype, key
        assert torch.equal(state_dict[key], value), key
    names = {name.rsplit('.', 1)[-1] for name in classes}
    assert ('QuickGELU' in names) == scripted_clip['quick_gelu']


def test_a_scripted_clip_loads_into_the_backbone(scripted_clip):
    path, quick = scripted_clip['path'], scripted_clip['quick_gelu']
    weights = load_clip_state_dict(path)
    assert weights.activation == ('quick_gelu' if quick else 'gelu')
    assert weights.source == 'TorchScript archive'
    backbone = OpenCLIPBackbone(model_cfg=TINY_CLIP, pretrained=path,
                                image_size=(224, 224))
    assert backbone.quick_gelu is quick
    own = backbone.clip.state_dict()
    reference = scripted_clip['reference']
    compared = [k for k in reference if k in own]
    assert len(compared) > 20
    for key in compared:
        assert torch.equal(own[key], reference[key]), key
    # the activation the file names wins over a contradicting declaration
    with pytest.raises(ConfigError, match='was trained with'):
        OpenCLIPBackbone(model_cfg=TINY_CLIP, pretrained=path,
                         image_size=(224, 224), quick_gelu=not quick)
