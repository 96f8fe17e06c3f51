"""Items 5, 8 and 10 (datasets): hostile images (a FIFO, a link to
/dev/zero, a 400-megapixel PNG, an empty or dangling .jpg) are named errors
in LoadPersonImage and in the build-time image check (or skipped and
reported with skip_bad_records); annotation paths that leave the dataset
root are refused unless allow_outside_root=True; ids are ASCII decimal
integers; deep nesting and 5,000-digit ids are AnnotationErrors."""
import json
import os
import os.path as osp
import re

import pytest
from conftest import cuhk_records, write_cuhk_like

from mmtpr.datasets import AnnotationError
from mmtpr.registry import DATASETS, TRANSFORMS
from mmtpr.utils.errors import MMTPRError

from .hostile import (
    HOSTILE_IMAGES,
    HOSTILE_REASONS,
    no_hang,
    png_bytes,
    snapshot,
)

KINDS = list(HOSTILE_IMAGES)
# record 0 of cuhk_records(): a train image of person 5
FIRST = 'cam_a/0005_0.jpg'


def hostile_image(kind, path):
    if osp.lexists(path):
        os.remove(path)
    return HOSTILE_IMAGES[kind](path)


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
@pytest.mark.parametrize('kind', KINDS)
def test_load_person_image_refuses_hostile_files(tmp_path, kind, backend):
    path = hostile_image(kind, str(tmp_path / 'x.jpg'))
    load = TRANSFORMS.build(dict(type='LoadPersonImage',
                                 imdecode_backend=backend))
    with no_hang(30), pytest.raises(
            MMTPRError, match=re.escape(f"'{path}'") + '.*'
            + f'({HOSTILE_REASONS[kind]})'):
        load(dict(img_path=path))


def test_load_person_image_limits_are_its_arguments(tmp_path):
    path = str(tmp_path / 'x.png')
    with open(path, 'wb') as f:
        f.write(png_bytes((40, 30)))
    load = TRANSFORMS.build(dict(type='LoadPersonImage', max_pixels=1000))
    with pytest.raises(MMTPRError, match=re.escape(f"'{path}' has 40x30")):
        load(dict(img_path=path))
    load = TRANSFORMS.build(dict(type='LoadPersonImage', max_bytes=10))
    with pytest.raises(MMTPRError, match=re.escape(f"'{path}' has ")
                       + r'.*bytes, more than the limit of 10'):
        load(dict(img_path=path))


@pytest.fixture
def root(tmp_path):
    return write_cuhk_like(tmp_path / 'CUHK-PEDES', cuhk_records())


def build(root, split='train', **kwargs):
    return DATASETS.build(dict(type='CUHKPEDES', data_root=root,
                               split=split, **kwargs))


@pytest.mark.parametrize('allow_outside_root', [False, True])
@pytest.mark.parametrize('kind', KINDS)
def test_the_build_time_check_refuses_hostile_images(root, kind,
                                                     allow_outside_root):
    path = hostile_image(kind, osp.join(root, 'imgs', FIRST))
    ann = osp.join(root, 'reid_raw.json')
    reason = HOSTILE_REASONS[kind]
    if kind == 'dev_zero' and not allow_outside_root:
        reason = 'is a symbolic link out of the image folder'
    with no_hang(30), pytest.raises(MMTPRError, match=re.escape(
            f"{ann}: record 0: image '{path}' ('file_path': '{FIRST}')")
            + f'.*({reason})'):
        build(root, allow_outside_root=allow_outside_root)


@pytest.mark.parametrize('kind', KINDS)
def test_hostile_images_are_skipped_and_reported(root, kind, mm_log):
    hostile_image(kind, osp.join(root, 'imgs', FIRST))
    mm_log.attach()
    with no_hang(30):
        dataset = build(root, skip_bad_records=True)
    assert dataset.metainfo['num_skipped'] == 1
    assert dataset.metainfo['num_images'] == 4
    assert FIRST not in {osp.relpath(dataset.get_data_info(i)['img_path'],
                                     osp.join(root, 'imgs'))
                         for i in range(len(dataset))}
    assert re.search(r'skipped 1 bad records.*\n.*record 0: image',
                     mm_log.text), mm_log.text


def test_a_nul_byte_in_an_image_path_is_refused_at_build_time(root):
    records = cuhk_records()
    records[0]['file_path'] = 'cam_a/a\x00b.jpg'
    root = write_cuhk_like(root + '_nul', records, make_images=False)
    os.makedirs(osp.join(root, 'imgs'))
    with pytest.raises(MMTPRError, match=r'record 0: image .*a\\x00b|'
                       r'record 0: .*(NUL|null)'):
        build(root)


def test_a_nul_byte_in_an_image_path_is_refused_at_load_time(tmp_path):
    path = str(tmp_path / 'a\x00b.jpg')
    load = TRANSFORMS.build(dict(type='LoadPersonImage'))
    with pytest.raises(MMTPRError, match=re.escape(repr(path)[1:-1])):
        load(dict(img_path=path))


# ---------------------------------------------------------------------------
# Item 8: paths that leave the dataset root
# ---------------------------------------------------------------------------
def outside_image(tmp_path):
    path = tmp_path / 'elsewhere' / 'outside.jpg'
    path.parent.mkdir()
    path.write_bytes(png_bytes((24, 48)))
    return str(path)


@pytest.mark.parametrize('way', ['absolute', 'dotdot', 'symlink out'])
def test_paths_out_of_the_root_need_allow_outside_root(root, tmp_path, way):
    target = outside_image(tmp_path)
    before = snapshot(osp.dirname(target))
    records = cuhk_records()
    ann = osp.join(root, 'reid_raw.json')
    if way == 'absolute':
        records[0]['file_path'] = target
    elif way == 'dotdot':
        records[0]['file_path'] = osp.relpath(target,
                                              osp.join(root, 'imgs'))
        assert records[0]['file_path'].startswith('..')
    else:
        link = osp.join(root, 'imgs', FIRST)
        os.remove(link)
        os.symlink(target, link)
    with open(ann, 'w') as f:
        json.dump(records, f)
    if way == 'symlink out':
        message = (re.escape(f"{ann}: record 0: image '") + '.*'
                   + 'is a symbolic link out of the image folder')
    else:
        message = (re.escape(f"{ann}: record 0: 'file_path' "
                             f"{records[0]['file_path']!r} leaves the image "
                             'folder') + '.*allow_outside_root=True')
    for check_images in ('header', 'none'):
        with pytest.raises(AnnotationError, match=message):
            build(root, check_images=check_images)
    dataset = build(root, allow_outside_root=True)
    paths = [dataset.get_data_info(i)['img_path']
             for i in range(len(dataset))]
    assert osp.realpath(paths[0]) == osp.realpath(target)
    assert snapshot(osp.dirname(target)) == before


# ---------------------------------------------------------------------------
# Item 8: ids, nesting, huge numbers
# ---------------------------------------------------------------------------
def write_annotation(root, text):
    with open(osp.join(root, 'reid_raw.json'), 'w') as f:
        f.write(text)
    return osp.join(root, 'reid_raw.json')


def with_id(raw):
    """The records with record 0's id replaced by the raw JSON ``raw``."""
    records = cuhk_records()
    records[0]['id'] = '@ID@'
    return json.dumps(records).replace('"@ID@"', raw)


@pytest.mark.parametrize('raw, message', [
    ('"\\u0663"', r"'id' must be an integer .*got '٣'"),
    ('"007"', r"'id' must be an integer .*got '007'"),
    ('"1_000"', r"'id' must be an integer .*got '1_000'"),
    ('" 12"', r"'id' must be an integer .*got ' 12'"),
    ('"+12"', r"'id' must be an integer .*got '\+12'"),
    ('12.0', r"'id' must be an integer .*got 12.0"),
    ('true', r"'id' must be an integer .*got True"),
    ('-3', r"'id' -3 is not an integer in \[0, 2\*\*63\)"),
    ('9223372036854775808', r"'id' 9223372036854775808 is not an integer"),
    ('9' * 5000, r"'id' 9{20}\.\.\. is not an integer in \[0, 2\*\*63\)"),
    ('"' + '9' * 5000 + '"', r"'id' must be an integer"),
    ('1e400', r"'id' must be an integer .*got inf"),
], ids=['arabic-indic', 'leading zero', 'underscore', 'space', 'plus',
        'float', 'bool', 'negative', '2**63', '5000 digits',
        '5000 digit string', 'overflowing float'])
def test_ids_must_be_ascii_decimal_integers(root, raw, message):
    ann = write_annotation(root, with_id(raw))
    with pytest.raises(AnnotationError,
                       match=re.escape(f'{ann}: record 0: ') + message) \
            as info:
        build(root, check_images='none')
    if raw == '9' * 5000:  # the number is not quoted in full
        assert len(str(info.value)) < 1000


def test_string_ids_of_ascii_digits_are_ids(root):
    write_annotation(root, with_id('"5"'))
    dataset = build(root, check_images='none')
    assert dataset.metainfo['num_pids'] == 3


@pytest.mark.parametrize('where', ['the file', 'an id', 'the captions'])
@pytest.mark.parametrize('depth', [200, 100_000])
def test_deep_nesting_is_an_annotation_error(root, where, depth):
    nested = '[' * depth + ']' * depth
    if where == 'the file':
        text = nested
    elif where == 'an id':
        text = with_id(nested)
    else:
        records = cuhk_records()
        records[0]['captions'] = '@C@'
        text = json.dumps(records).replace('"@C@"', nested)
    ann = write_annotation(root, text)
    if depth > 1000:
        message = re.escape(f'{ann}: not valid JSON (nested too deeply')
    elif where == 'the file':
        message = re.escape(f'{ann}: record 0: expected a JSON object')
    elif where == 'an id':
        message = re.escape(f'{ann}: record 0: ') + "'id' must be"
    else:
        message = re.escape(f'{ann}: record 0: ') + "'captions'"
    with pytest.raises(AnnotationError, match=message):
        build(root, check_images='none')
