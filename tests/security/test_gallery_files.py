"""Items 5, 6 and 10 (galleries): hostile entries of a gallery folder (a
FIFO, a link to /dev/zero, a 400-megapixel image, an empty or dangling
.jpg, a link out of the folder) are named errors, or skipped and reported;
tampered or malformed gallery caches are re-encoded and feature files
refused; a cache is never written through a link."""
import glob
import os
import os.path as osp
import re
import shutil

import pytest
import torch

from mmtpr.apis import Gallery, TPRInferencer
from mmtpr.apis.gallery import _digest
from mmtpr.utils.errors import DataError, MMTPRError

from .hostile import (
    HOSTILE_IMAGES,
    HOSTILE_REASONS,
    no_hang,
    png_bytes,
    run_python,
    says,
    snapshot,
)

NUM_IMAGES = 4


@pytest.fixture(scope='module')
def inferencer(trained):
    return TPRInferencer(trained['config'], trained['epoch_2'],
                         device='cpu', batch_size=8, show_progress=False,
                         cache_dir='')


@pytest.fixture
def folder(trained, tmp_path):
    """A gallery folder with four good images (and a sub-folder)."""
    gallery = tmp_path / 'gallery'
    (gallery / 'sub').mkdir(parents=True)
    images = sorted(glob.glob(osp.join(trained['data_root'], 'imgs', '**',
                                       '*.jpg'), recursive=True))
    for i, image in enumerate(images[:NUM_IMAGES]):
        shutil.copy(image, gallery / ('sub' if i % 2 else '') / f'{i}.jpg')
    return str(gallery)


@pytest.fixture
def infer(inferencer, tmp_path, monkeypatch):
    """The shared inferencer with this test's cache dir, counting how many
    images it encodes."""
    monkeypatch.setattr(inferencer, 'cache_dir', str(tmp_path / 'cache'))
    monkeypatch.setattr(inferencer, 'on_bad_image', 'error')
    encoded = []
    original = inferencer._encode_paths

    def counting(paths, *args, **kwargs):
        encoded.extend(paths)
        return original(paths, *args, **kwargs)

    monkeypatch.setattr(inferencer, '_encode_paths', counting)
    inferencer.encoded = encoded
    return inferencer


def add_hostile(folder, kind, outside):
    if kind == 'link out of the folder':
        target = osp.join(outside.root, 'outside.jpg')
        with open(target, 'wb') as f:
            f.write(png_bytes((16, 32)))
        outside.before = snapshot(outside.root)
        path = osp.join(folder, 'x.jpg')
        os.symlink(target, path)
        return path
    return HOSTILE_IMAGES[kind](osp.join(folder, 'sub', 'x.jpg')
                                if kind != 'huge' else
                                osp.join(folder, 'sub', 'x.png'))


KINDS = list(HOSTILE_IMAGES) + ['link out of the folder']
REASONS = dict(HOSTILE_REASONS, **{
    'link out of the folder': 'a symbolic link out of the gallery folder'})


@pytest.mark.parametrize('kind', KINDS)
def test_a_hostile_gallery_entry_is_a_named_error(infer, folder, outside,
                                                  kind):
    path = add_hostile(folder, kind, outside)
    with no_hang(30), pytest.raises(
            DataError, match=re.escape(f"'{path}'") + '.*'
            + f'({REASONS[kind]})'):
        infer.load_gallery(folder)


@pytest.mark.parametrize('kind', KINDS)
def test_a_hostile_gallery_entry_is_skipped_and_reported(infer, folder,
                                                         outside, kind,
                                                         mm_log):
    path = add_hostile(folder, kind, outside)
    infer.on_bad_image = 'skip'
    mm_log.attach()
    with no_hang(30):
        gallery = infer.load_gallery(folder)
    assert len(gallery) == NUM_IMAGES
    assert path not in gallery.paths
    assert re.search(r'skipping.*' + re.escape(path), mm_log.text), \
        mm_log.text


def test_retrieve_on_a_gallery_with_a_fifo_does_not_hang(trained, folder,
                                                         tmp_path):
    fifo = HOSTILE_IMAGES['fifo'](osp.join(folder, 'x.jpg'))
    out = run_python([
        'tools/retrieve.py', trained['config'], trained['epoch_2'],
        '--gallery', folder, '--query', 'a person', '--device', 'cpu',
        '--cache-dir', ''], timeout=600)
    assert out.returncode == 2, out.stderr[-2000:]
    assert says(out.stderr, f"error: gallery entry '{fifo}' is not a "
                'regular file (a FIFO'), out.stderr[-2000:]
    assert 'Traceback' not in out.stderr


# ---------------------------------------------------------------------------
# Item 6: gallery caches and feature files
# ---------------------------------------------------------------------------
def cache_entry(infer, folder):
    """Encode ``folder`` once; the path of its (single) cache entry."""
    infer.load_gallery(folder)
    entries = glob.glob(osp.join(infer.cache_dir, '*.pth'))
    assert len(entries) == 1
    infer.encoded.clear()
    return entries[0]


def rewrite(path, change, redigest=True):
    """Change the content of a gallery file as an attacker would (and
    recompute its unkeyed digest when ``redigest``)."""
    content = torch.load(path, weights_only=True)
    change(content)
    if redigest:
        content['digest'] = _digest(content)
    torch.save(content, path)


def permuted(content):
    content['features'] = content['features'].flip(0)


def paths_to(*paths):

    def change(content):
        content['paths'] = list(paths) + content['paths'][len(paths):]

    return change


def features_list(content):
    content['features'] = content['features'].tolist()


def paths_int(content):
    content['paths'] = 7


def nul_path(content):
    content['paths'][0] = 'a\x00b.jpg'


# name -> (change, recompute the digest, what a feature file's error says)
TAMPERING = {
    'permuted features': (permuted, False, 'does not match its digest'),
    'path /etc/passwd': (paths_to('/etc/passwd'), True,
                         'leaves the gallery folder'),
    'path ../..': (paths_to('../../etc/passwd'), True,
                   'leaves the gallery folder'),
    'features a list': (features_list, False,
                        'features are not a 2-D float tensor'),
    'paths an int': (paths_int, False, 'paths are not a list'),
    'a NUL byte in a path': (nul_path, True, 'a\\\\x00b'),
}
@pytest.mark.parametrize('name', list(TAMPERING))
def test_a_tampered_feature_file_is_refused(infer, folder, tmp_path, name):
    path = str(tmp_path / 'features.pth')
    infer.load_gallery(folder).save(path)
    change, redigest, message = TAMPERING[name]
    rewrite(path, change, redigest)
    with pytest.raises(MMTPRError, match=re.escape(
            f"gallery feature file '{path}'") + '.*' + message):
        infer.load_gallery(path)


@pytest.mark.parametrize('name', list(TAMPERING))
def test_a_tampered_cache_entry_is_re_encoded(infer, folder, name):
    entry = cache_entry(infer, folder)
    reference = Gallery.load(entry, folder).features.clone()
    change, redigest, _ = TAMPERING[name]
    rewrite(entry, change, redigest)
    gallery = infer.load_gallery(folder)
    assert len(infer.encoded) == NUM_IMAGES  # a miss: encoded again
    assert torch.equal(gallery.features, reference)
    assert all(p.startswith(folder + os.sep) for p in gallery.paths)
    # the entry was rewritten whole and is valid again
    assert torch.equal(Gallery.load(entry, folder).features, reference)


def test_a_cache_entry_that_is_a_directory(infer, folder):
    entry = cache_entry(infer, folder)
    os.remove(entry)
    os.makedirs(osp.join(entry, 'inside'))
    gallery = infer.load_gallery(folder)
    assert len(gallery) == NUM_IMAGES and len(infer.encoded) == NUM_IMAGES
    assert osp.isdir(osp.join(entry, 'inside'))  # left as it was


@pytest.mark.parametrize('target', ['a valid entry', 'a victim file'])
def test_a_symlinked_cache_entry_is_never_followed(infer, folder, outside,
                                                   target):
    """Neither read (a link to a valid entry elsewhere is a miss) nor
    written through (its target keeps its content)."""
    entry = cache_entry(infer, folder)
    victim = osp.join(outside.root, 'linked.pth')
    if target == 'a valid entry':
        shutil.move(entry, victim)
    else:
        os.remove(entry)
        with open(victim, 'w') as f:
            f.write('precious\n')
    outside.before = snapshot(outside.root)
    os.symlink(victim, entry)
    gallery = infer.load_gallery(folder)
    assert len(gallery) == NUM_IMAGES and len(infer.encoded) == NUM_IMAGES
    # the link was replaced by a file; its target is unchanged (checked
    # with everything outside by the fixture)
    assert not osp.islink(entry) and osp.isfile(entry)
    assert len(Gallery.load(entry, folder)) == NUM_IMAGES


def _root_etc(content):
    content['root'] = '/etc'
    content['paths'][0] = 'passwd'


def test_a_feature_file_cannot_point_at_etc_passwd_through_its_root(
        infer, folder, tmp_path):
    path = str(tmp_path / 'features.pth')
    infer.load_gallery(folder).save(path)
    rewrite(path, _root_etc)
    with pytest.raises(MMTPRError, match=re.escape(
            f"gallery feature file '{path}'") + '.*/etc'):
        infer.load_gallery(path)


def test_a_cache_entry_cannot_point_at_etc_passwd_through_its_root(
        infer, folder):
    entry = cache_entry(infer, folder)
    rewrite(entry, _root_etc)
    gallery = infer.load_gallery(folder)
    assert len(infer.encoded) == NUM_IMAGES
    assert '/etc/passwd' not in gallery.paths
