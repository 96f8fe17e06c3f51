"""Item 11: a seeded fuzz of a SynthPedes annotation (reid_raw.json). Each
case mutates the file (wrong types, deleted or renamed keys, deep nesting,
huge and unicode ids, paths that leave the root, truncated or corrupted
text, ...) and builds the dataset. Every outcome is a clean load or an
mmtpr error (MMTPRError) naming the annotation file, and the record when
the mutation is about one record; never a bare KeyError, TypeError,
AttributeError, RecursionError or ValueError."""
import json
import os
import os.path as osp
import random

import pytest

from mmtpr.registry import DATASETS
from mmtpr.utils.errors import MMTPRError

CASES = 400
BATCHES = 8
SPLITS = ('train', 'val', 'test')
KEYS = ('split', 'id', 'file_path', 'captions', 'processed_tokens')
# Whole-file outcomes that are not about one record.
FILE_LEVEL = ('has no records', 'has no usable records', 'not valid JSON')


def nested(rng, leaf=None):
    depth = rng.choice([2, 50, 900, 5000])
    opener, closer = rng.choice([('[', ']'), ('{"a":', '}')])
    inner = json.dumps(leaf) if opener == '[' or leaf is not None else '1'
    if opener == '[' and leaf is None:
        inner = ''
    return opener * depth + inner + closer * depth


HOSTILE_VALUES = [
    None, True, False, 0, -1, 1.5, 1e308, '', ' ', '\u0663', '007',
    '1_000', '+5', '5 ', '١٢', '../x.jpg', '../../etc/passwd',
    '/etc/passwd', 'C:\\x.jpg', '\\\\srv\\share\\x.jpg', 'imgs/../../x',
    'out.jpg', 'a\x00b.jpg', 'x' * 5000, [], {}, [1], [''], ['  '],
    [None], ['ok', 3], {'a': 1}, [['nested']], 2**63, -2**63,
    9.0, 'train', 'TRAIN', 'val ', '\ud800',
]


class Raw(str):
    """A JSON fragment spliced into the text as is."""


def raw_value(rng):
    return rng.choice([
        Raw('9' * rng.choice([19, 20, 400, 5000])),
        Raw('"' + '9' * 5000 + '"'), Raw('NaN'), Raw('Infinity'),
        Raw('-Infinity'), Raw('1e400'), Raw('-0'), Raw('0.0'),
        Raw(nested(rng)), Raw(nested(rng, 'deep')),
    ])


def dumps(records, ensure_ascii):
    """JSON text of ``records``, with Raw fragments spliced in."""
    fragments = []

    def encode(value):
        if isinstance(value, Raw):
            fragments.append(str(value))
            return f'@RAW{len(fragments) - 1}@'
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    text = json.dumps(encode(records), ensure_ascii=ensure_ascii)
    for i, fragment in enumerate(fragments):
        text = text.replace(f'"@RAW{i}@"', fragment)
    return text


def mutate(records, rng):
    """A mutated annotation: (text or bytes, index of the one record it
    is about or None, what was done)."""
    records = json.loads(json.dumps(records))
    index = rng.randrange(len(records))
    record = records[index]
    kind = rng.choice([
        'value', 'value', 'value', 'raw value', 'raw value', 'delete key',
        'rename key', 'record type', 'nest value', 'caption', 'extra key',
        'truncate', 'flip byte', 'file type', 'file nest', 'empty',
        'two records',
    ])
    ensure_ascii = rng.random() < 0.5
    about = index
    if kind == 'value':
        record[rng.choice(KEYS)] = rng.choice(HOSTILE_VALUES)
    elif kind == 'raw value':
        record[rng.choice(KEYS[:4])] = raw_value(rng)
    elif kind == 'delete key':
        record.pop(rng.choice(KEYS[:4]))
    elif kind == 'rename key':
        key = rng.choice(KEYS[:4])
        record[rng.choice([key.upper(), key + ' ', '\ufeff' + key])] = \
            record.pop(key)
    elif kind == 'record type':
        records[index] = rng.choice([None, 1, 'record', [record], True])
    elif kind == 'nest value':
        key = rng.choice(KEYS[:4])
        record[key] = Raw(nested(rng, record[key]))
    elif kind == 'caption':
        record['captions'] = rng.choice([
            [], [''], [1], record['captions'] + [None],
            record['captions'][0], ['x' * 100_000]])
    elif kind == 'extra key':
        record[rng.choice(['', 'x' * 1000, '\u0000', 'id '])] = \
            rng.choice(HOSTILE_VALUES)
    elif kind == 'two records':
        other = rng.randrange(len(records))
        records[other]['id'] = rng.choice(['007', -4])
        record['file_path'] = '../escape.jpg'
        about = None
    text = dumps(records, ensure_ascii)
    if kind == 'truncate':
        text, about = text[:rng.randrange(len(text))], None
    elif kind == 'flip byte':
        data = bytearray(text.encode('utf-8', 'surrogatepass'))
        at = rng.randrange(len(data))
        data[at] = rng.choice([0x00, 0x22, 0x5b, 0x7d, 0xff, 0xc3])
        return bytes(data), None, kind
    elif kind == 'file type':
        text, about = rng.choice([
            '{}', '"records"', '3', 'null', json.dumps({'r': records}),
            '[]', '\ufeff' + text]), None
    elif kind == 'file nest':
        text, about = nested(rng), None
    elif kind == 'empty':
        text, about = rng.choice(['', ' ', '\n']), None
    return text.encode('utf-8', 'surrogatepass'), about, kind


@pytest.fixture(scope='module')
def annotation(trained, tmp_path_factory):
    """The records of a SynthPedes annotation, and a dataset root with an
    empty image folder and a link out of it."""
    with open(osp.join(trained['data_root'], 'reid_raw.json')) as f:
        records = json.load(f)
    root = tmp_path_factory.mktemp('fuzz')
    (root / 'imgs').mkdir()
    outside = root.parent / f'{root.name}_outside.jpg'
    outside.write_bytes(b'not an image')
    os.symlink(outside, root / 'imgs' / 'out.jpg')
    return records, str(root)


def outcome(root, data, split):
    """None for a clean load or a correct error; else what went wrong."""
    ann = osp.join(root, 'reid_raw.json')
    with open(ann, 'wb') as f:
        f.write(data)
    try:
        # serialize_data=False: MMEngine's serialisation runs gc.collect()
        dataset = DATASETS.build(dict(type='CUHKPEDES', data_root=root,
                                      split=split, check_images='none',
                                      serialize_data=False))
        for i in range(len(dataset)):
            dataset.get_data_info(i)
    except MMTPRError as err:
        return err
    except BaseException as err:  # noqa: B036 (any other is the bug)
        if isinstance(err, KeyboardInterrupt):
            raise
        return err
    return None


@pytest.mark.parametrize('batch', range(BATCHES))
def test_annotation_fuzz(annotation, batch):
    records, root = annotation
    problems, errors = [], 0
    for seed in range(batch, CASES, BATCHES):
        rng = random.Random(seed)
        data, about, kind = mutate(records, rng)
        split = rng.choice(SPLITS)
        err = outcome(root, data, split)
        if err is None:
            continue
        errors += 1
        message = str(err)
        ann = osp.join(root, 'reid_raw.json')
        if not isinstance(err, MMTPRError):
            problems.append(f'seed {seed} ({kind}): {type(err).__name__}: '
                            f'{message[:200]}')
        elif ann not in message:
            problems.append(f'seed {seed} ({kind}): the message does not '
                            f'name the file: {message[:200]}')
        elif about is not None and f'record {about}:' not in message and \
                not any(phrase in message for phrase in FILE_LEVEL):
            problems.append(f'seed {seed} ({kind}): the message does not '
                            f'name record {about}: {message[:200]}')
    assert not problems, '\n'.join(problems)
    assert errors > CASES // BATCHES // 3  # the mutations do bite
    # nothing was written beside the annotation
    assert sorted(os.listdir(root)) == ['imgs', 'reid_raw.json']
    assert os.listdir(osp.join(root, 'imgs')) == ['out.jpg']


def test_the_fuzz_is_reproducible(annotation):
    records, _ = annotation
    first = [mutate(records, random.Random(s))[0] for s in range(20)]
    again = [mutate(records, random.Random(s))[0] for s in range(20)]
    assert first == again
