"""Every kind of bad input, for each of the three real datasets: a clear
error naming the file, the record and what was expected; images checked
when the dataset is built; skipping bad records on request; nothing
written into the data root."""
import json
import logging
import os
import os.path as osp

import pytest
from conftest import cuhk_records, write_cuhk_like

from mmtpr.datasets import AnnotationError
from mmtpr.registry import DATASETS

# (type, annotation file, image path key)
DATASET_KINDS = [
    ('CUHKPEDES', 'reid_raw.json', 'file_path'),
    ('ICFGPEDES', 'ICFG-PEDES.json', 'file_path'),
    ('RSTPReid', 'data_captions.json', 'img_path'),
]
KIND_IDS = [kind[0] for kind in DATASET_KINDS]


def records_for(path_key):
    recs = cuhk_records()
    for rec in recs:
        rec.pop('processed_tokens')
        if path_key != 'file_path':
            rec[path_key] = rec.pop('file_path')
    return recs


def make_root(tmp_path, kind, recs=None, make_images=True):
    dataset_type, ann_name, path_key = kind
    if recs is None:
        recs = records_for(path_key)
    return write_cuhk_like(tmp_path / dataset_type, recs, ann_name=ann_name,
                           make_images=make_images)


def build(kind, root, split='train', **kwargs):
    return DATASETS.build(
        dict(type=kind[0], data_root=root, split=split, **kwargs))


@pytest.fixture(params=DATASET_KINDS, ids=KIND_IDS)
def kind(request):
    return request.param


def test_wrong_data_root_says_what_was_expected_where(tmp_path, kind):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as info:
        build(kind, missing)
    message = str(info.value)
    assert f"data_root '{missing}' is not a directory" in message
    assert kind[1] in message and f"'{kind[2]}'" in message
    assert 'data_root/imgs/' in message


def test_missing_annotation_file(tmp_path, kind):
    os.makedirs(tmp_path / 'root')
    with pytest.raises(FileNotFoundError) as info:
        build(kind, str(tmp_path / 'root'))
    assert f"annotation file '{osp.join(tmp_path, 'root', kind[1])}' not " \
        'found' in str(info.value)


def test_not_json_and_not_a_list(tmp_path, kind):
    root = tmp_path / 'root'
    os.makedirs(root)
    ann = root / kind[1]
    ann.write_text('[{"split": "train",')
    with pytest.raises(AnnotationError,
                       match=f'{kind[1]}: not valid JSON'):
        build(kind, str(root))
    ann.write_bytes(b'\xff\xfe\x00garbage')
    with pytest.raises(AnnotationError, match='not valid JSON'):
        build(kind, str(root))
    ann.write_text(json.dumps({'annotations': []}))
    with pytest.raises(AnnotationError,
                       match=f'{kind[1]}: expected a JSON list of records, '
                       'got dict'):
        build(kind, str(root))


def _mutations(path_key):
    return [
        ('no split', lambda r: r.pop('split'),
         r"record 2: missing key 'split'"),
        ('no captions', lambda r: r.pop('captions'),
         r"record 2: missing key 'captions'"),
        ('no path', lambda r: r.pop(path_key),
         f"record 2: missing key '{path_key}'"),
        ('no id', lambda r: r.pop('id'), r"record 2: missing key 'id'"),
        ('empty captions', lambda r: r.update(captions=[]),
         r"record 2: 'captions' must be a non-empty list of strings, "
         r'got \[\]'),
        ('captions not a list', lambda r: r.update(captions='a man'),
         r"record 2: 'captions' must be a non-empty list"),
        ('caption not a string', lambda r: r.update(captions=['ok', 7]),
         r"record 2: 'captions'\[1\] must be a non-empty string, got 7"),
        ('blank caption', lambda r: r.update(captions=[' ']),
         r"record 2: 'captions'\[0\] must be a non-empty string"),
        ('id not an integer', lambda r: r.update(id='seven'),
         r"record 2: 'id' must be an integer .*, got 'seven'"),
        ('id a float', lambda r: r.update(id=2.5),
         r"record 2: 'id' must be an integer .*, got 2.5"),
        ('id in Arabic-Indic digits', lambda r: r.update(id='\u0663'),
         r"record 2: 'id' must be an integer .*, got '\u0663'"),
        ('id with a leading zero', lambda r: r.update(id='007'),
         r"record 2: 'id' must be an integer .*, got '007'"),
        ('id with an underscore', lambda r: r.update(id='1_000'),
         r"record 2: 'id' must be an integer .*, got '1_000'"),
        ('id negative', lambda r: r.update(id=-3),
         r"record 2: 'id' -3 is not an integer in \[0, 2\*\*63\)"),
        ('id beyond 64 bits', lambda r: r.update(id=2**63),
         r"record 2: 'id' \d+ is not an integer in \[0, 2\*\*63\)"),
        ('path absolute', lambda r: r.update({path_key: '/etc/passwd'}),
         f"record 2: '{path_key}' '/etc/passwd' leaves the image folder"),
        ('path with ..', lambda r: r.update({path_key: 'a/../../x.jpg'}),
         f"record 2: '{path_key}' 'a/../../x.jpg' leaves the image folder"),
        ('path not a string', lambda r: r.update({path_key: 3}),
         f"record 2: '{path_key}' must be a non-empty path string, got 3"),
        ('record not an object', lambda r: r.clear(),
         r"record 2: missing key 'split'"),
    ]


@pytest.mark.parametrize('case', range(len(_mutations('file_path'))),
                         ids=[m[0] for m in _mutations('file_path')])
def test_malformed_record(tmp_path, kind, case):
    _, mutate, message = _mutations(kind[2])[case]
    recs = records_for(kind[2])
    mutate(recs[2])
    root = make_root(tmp_path, kind, recs, make_images=False)
    with pytest.raises(AnnotationError, match=message) as info:
        build(kind, root, check_images='none')
    assert str(info.value).startswith(osp.join(root, kind[1]))


def test_record_that_is_not_an_object(tmp_path, kind):
    recs = records_for(kind[2])
    recs[4] = ['train', 5]
    root = make_root(tmp_path, kind, recs, make_images=False)
    with pytest.raises(AnnotationError,
                       match='record 4: expected a JSON object, got list'):
        build(kind, root, check_images='none')


def test_empty_split(tmp_path, kind):
    recs = [r for r in records_for(kind[2]) if r['split'] == 'train']
    root = make_root(tmp_path, kind, recs, make_images=False)
    with pytest.raises(AnnotationError,
                       match=r"split 'test' has no records \(splits "
                       r"present: \['train'\]\)"):
        build(kind, root, split='test')


def test_missing_image_found_at_build_time(tmp_path, kind):
    root = make_root(tmp_path, kind)
    recs = records_for(kind[2])
    victim = recs[7]  # a test record
    os.remove(osp.join(root, 'imgs', victim[kind[2]]))
    build(kind, root, split='train')  # other splits are not affected
    with pytest.raises(FileNotFoundError) as info:
        build(kind, root, split='test')
    message = str(info.value)
    assert message.startswith(f'{osp.join(root, kind[1])}: record 7: image')
    assert f"('{kind[2]}': '{victim[kind[2]]}') does not exist" in message


@pytest.mark.parametrize('content', [b'', b'this is not a jpeg'],
                         ids=['empty', 'garbage'])
def test_unreadable_image_found_at_build_time(tmp_path, kind, content):
    root = make_root(tmp_path, kind)
    victim = records_for(kind[2])[0]
    with open(osp.join(root, 'imgs', victim[kind[2]]), 'wb') as f:
        f.write(content)
    with pytest.raises(AnnotationError,
                       match=r'record 0: image .* (is not a readable image'
                       r'|is empty \(0 bytes\))'):
        build(kind, root)
    # check_images='none' defers the failure to the loading transform
    assert len(build(kind, root, check_images='none')) == 10


def test_truncated_image_needs_decode_check(tmp_path, kind):
    root = make_root(tmp_path, kind)
    path = osp.join(root, 'imgs', records_for(kind[2])[0][kind[2]])
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) * 3 // 4])  # the header survives
    assert len(build(kind, root)) == 10
    with pytest.raises(AnnotationError, match='record 0: image'):
        build(kind, root, check_images='decode')


def test_missing_image_folder(tmp_path, kind):
    root = make_root(tmp_path, kind, make_images=False)
    with pytest.raises(FileNotFoundError) as info:
        build(kind, root)
    assert (f"image folder '{osp.join(root, 'imgs')}' not found"
            in str(info.value))


class _Collect(logging.Handler):

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_skip_bad_records_counts_and_logs(tmp_path, kind):
    recs = records_for(kind[2])
    root = make_root(tmp_path, kind, recs)
    # train records: 0, 1 (id 5), 2 (id 2), 3, 4 (id 9)
    os.remove(osp.join(root, 'imgs', recs[0][kind[2]]))
    with open(osp.join(root, 'imgs', recs[3][kind[2]]), 'wb') as f:
        f.write(b'garbage')
    recs[2].pop('captions')
    recs[6]['id'] = 'x'  # a test record: not counted for train
    with open(osp.join(root, kind[1]), 'w') as f:
        json.dump(recs, f)
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    collect = _Collect()
    logger.addHandler(collect)
    try:
        dataset = build(kind, root, skip_bad_records=True)
    finally:
        logger.removeHandler(collect)
    assert dataset.metainfo['num_skipped'] == 3
    assert dataset.metainfo['num_images'] == 2  # records 1 and 4
    assert dataset.metainfo['num_pids'] == 2  # id 2 lost its only image
    assert {dataset.get_data_info(i)['person_id']
            for i in range(len(dataset))} == {5, 9}
    log = '\n'.join(collect.messages)
    assert 'skipped 3 bad records' in log
    assert '1 image missing, 1 image unreadable, 1 missing key' in log
    assert 'record 2: missing key' in log
    # the error mode fails on the first of them
    with pytest.raises(AnnotationError, match='record 2'):
        build(kind, root)


def test_all_records_skipped_is_an_error(tmp_path, kind):
    recs = records_for(kind[2])
    root = make_root(tmp_path, kind, recs)
    for rec in recs:
        if rec['split'] == 'test':
            os.remove(osp.join(root, 'imgs', rec[kind[2]]))
    with pytest.raises(AnnotationError,
                       match="split 'test' has no usable records: all 3"):
        build(kind, root, split='test', skip_bad_records=True)


def test_bad_check_images_value(tmp_path, kind):
    root = make_root(tmp_path, kind, make_images=False)
    with pytest.raises(ValueError, match='check_images must be one of'):
        build(kind, root, check_images='yes')


def _snapshot(root):
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = osp.join(folder, name)
            stat = os.stat(path)
            found[path] = (stat.st_size, stat.st_mtime_ns)
    return found


def test_nothing_is_written_into_the_data_root(tmp_path, kind):
    from mmengine.dataset import pseudo_collate
    root = make_root(tmp_path, kind)
    os.chmod(root, 0o555)  # a read-only dataset, as on a shared disk
    try:
        before = _snapshot(root)
        pipeline = [dict(type='LoadPersonImage'),
                    dict(type='Resize', scale=(32, 64), keep_ratio=False),
                    dict(type='TokenizeCaption'),
                    dict(type='PackTPRInputs')]
        splits = ['train', 'test'] + (['val'] if kind[0] != 'ICFGPEDES'
                                      else [])
        for split in splits:
            dataset = build(kind, root, split=split, pipeline=pipeline,
                            check_images='decode')
            pseudo_collate([dataset[i] for i in range(len(dataset))])
        assert _snapshot(root) == before
    finally:
        os.chmod(root, 0o755)
