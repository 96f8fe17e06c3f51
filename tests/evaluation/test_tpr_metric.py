import os

import numpy as np
import pytest
import torch

from mmtpr.evaluation import TPRMetric, rank
from mmtpr.registry import METRICS

PIDS = [0, 0, 1, 1, 2, 3]
NUM_CAPTIONS = [1, 2, 1, 3, 2, 1]
DIM = 8


def make_features(seed=0):
    rng = np.random.default_rng(seed)
    image_feats = rng.standard_normal((len(PIDS), DIM))
    text_feats = [rng.standard_normal((n, DIM)) for n in NUM_CAPTIONS]
    # Make each caption somewhat closer to its own image, for non-trivial
    # but not perfect numbers.
    text_feats = [t + 0.8 * image_feats[i] for i, t in enumerate(text_feats)]
    return image_feats, text_feats


def make_samples(image_feats, text_feats, pid_types=(int, )):
    samples = []
    for i, (image_feat, texts) in enumerate(zip(image_feats, text_feats)):
        pid_type = pid_types[i % len(pid_types)]
        samples.append(
            dict(
                image_feat=torch.tensor(image_feat, dtype=torch.float32),
                text_feats=torch.tensor(texts, dtype=torch.float32),
                pid=pid_type(PIDS[i]),
                img_path=f'img_{i}.jpg'))
    return samples


def expected_results(image_feats, text_feats, topk=(1, 5, 10)):
    """Independent computation: normalise in numpy, then ``rank``."""
    gallery = image_feats / np.linalg.norm(image_feats, axis=1, keepdims=True)
    queries = np.concatenate(text_feats)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    query_pids = np.repeat(PIDS, NUM_CAPTIONS)
    assert queries.shape == (sum(NUM_CAPTIONS), DIM)
    return rank(queries @ gallery.T, query_pids, np.array(PIDS), topk=topk)


def assert_close(actual, expected):
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert isinstance(actual[key], float), key
        assert actual[key] == pytest.approx(value, abs=1e-6), key


def test_build_from_registry():
    metric = METRICS.build(dict(type='TPRMetric'))
    assert isinstance(metric, TPRMetric)
    assert metric.prefix == 'tpr'
    assert metric.topk == (1, 5, 10)
    assert metric.chunk_size == 1024


@pytest.mark.parametrize('chunk_size', [1, 4, 1024])
def test_process_and_compute_metrics(chunk_size):
    image_feats, text_feats = make_features()
    metric = METRICS.build(
        dict(type='TPRMetric', topk=(1, 2, 5), chunk_size=chunk_size))
    samples = make_samples(
        image_feats,
        text_feats,
        pid_types=(int, torch.tensor, np.int64, lambda p: torch.tensor([p])))
    # Two batches, as the evaluator would call it.
    metric.process(None, samples[:4])
    metric.process(None, samples[4:])
    assert len(metric.results) == len(PIDS)
    for res, n, pid in zip(metric.results, NUM_CAPTIONS, PIDS):
        assert res['pid'] == pid and type(res['pid']) is int
        assert res['image_feat'].shape == (DIM, )
        assert res['text_feats'].shape == (n, DIM)
        for feat in (res['image_feat'], res['text_feats']):
            assert feat.dtype == torch.float32
            assert feat.device.type == 'cpu'
            assert not feat.requires_grad

    result = metric.compute_metrics(metric.results)
    expected = expected_results(image_feats, text_feats, topk=(1, 2, 5))
    assert_close(result, expected)
    # The example is not trivial.
    assert 0 < result['mAP'] < 100


def test_evaluate_returns_prefixed_keys_and_clears_results():
    image_feats, text_feats = make_features(seed=3)
    metric = METRICS.build(dict(type='TPRMetric'))
    metric.process(None, make_samples(image_feats, text_feats))
    metrics = metric.evaluate(len(PIDS))
    expected = expected_results(image_feats, text_feats)
    assert list(metrics) == ['tpr/R1', 'tpr/R5', 'tpr/R10', 'tpr/mAP',
                             'tpr/mINP']
    assert_close({k[len('tpr/'):]: v for k, v in metrics.items()}, expected)
    assert metric.results == []

    metric = METRICS.build(dict(type='TPRMetric', prefix='val', topk=1))
    metric.process(None, make_samples(image_feats, text_feats))
    assert list(metric.evaluate(len(PIDS))) == ['val/R1', 'val/mAP',
                                                'val/mINP']


def test_hand_built_similarity():
    # One-hot image features (scaled) and caption features equal to rows
    # of a hand-built similarity (scaled): after normalisation the cosine
    # similarity is each row divided by its norm, which keeps the ranking.
    sim = np.array([
        [0.9, 0.2, 0.4, 0.1],  # image 0 (pid 5): positives g0, g1
        [0.3, 0.8, 0.7, 0.2],  # image 1 (pid 5)
        [0.1, 0.6, 0.5, 0.9],  # image 1 (pid 5)
        [0.4, 0.3, 0.2, 0.1],  # image 2 (pid 6): positive g2
        [0.2, 0.1, 0.3, 0.6],  # image 3 (pid 7): positive g3
    ])
    pids = [5, 5, 6, 7]
    captions = [sim[:1] * 2, sim[1:3] * 0.5, sim[3:4] * 7, sim[4:] * 0.1]
    metric = TPRMetric(topk=(1, 2))
    metric.process(None, [
        dict(image_feat=torch.eye(4)[i] * (i + 1),
             text_feats=torch.tensor(captions[i]),
             pid=pids[i]) for i in range(4)
    ])
    result = metric.compute_metrics(metric.results)
    # q0: order g0 g2 g1 g3 -> M 1 0 1 0: AP (1 + 2/3)/2, INP 2/3
    # q1: order g1 g2 g0 g3 -> M 1 0 1 0: AP (1 + 2/3)/2, INP 2/3
    # q2: order g3 g1 g2 g0 -> M 0 1 0 1: AP (1/2 + 2/4)/2, INP 2/4
    # q3: order g0 g1 g2 g3 -> M 0 0 1 0: AP 1/3, INP 1/3
    # q4: order g3 g2 g0 g1 -> M 1 0 0 0: AP 1, INP 1
    expected = {
        'R1': 100 * 3 / 5,
        'R2': 100 * 4 / 5,
        'mAP': 100 * (5 / 6 + 5 / 6 + 1 / 2 + 1 / 3 + 1) / 5,
        'mINP': 100 * (2 / 3 + 2 / 3 + 1 / 2 + 1 / 3 + 1) / 5,
    }
    assert_close(result, expected)
    assert_close(
        result,
        rank(sim, [5, 5, 5, 6, 7], pids, topk=(1, 2)))


def test_scaling_features_does_not_change_results():
    image_feats, text_feats = make_features(seed=1)
    metric = TPRMetric()
    metric.process(None, make_samples(image_feats, text_feats))
    reference = metric.compute_metrics(metric.results)

    scales = np.array([0.01, 3.0, 250.0, 1.0, 0.5, 42.0])
    scaled_images = image_feats * scales[:, None]
    scaled_texts = [t * (7.0 / (i + 1)) for i, t in enumerate(text_feats)]
    metric = TPRMetric()
    metric.process(None, make_samples(scaled_images, scaled_texts))
    assert_close(metric.compute_metrics(metric.results), reference)
    assert_close(reference, expected_results(image_feats, text_feats))


def test_one_dim_text_feats_is_one_caption():
    metric = TPRMetric(topk=1)
    metric.process(None, [
        dict(image_feat=torch.tensor([1., 0.]),
             text_feats=torch.tensor([0.9, 0.1]), pid=1),
        dict(image_feat=torch.tensor([0., 1.]),
             text_feats=torch.tensor([[0.2, 0.8], [0.7, 0.3]]), pid=2),
    ])
    assert metric.results[0]['text_feats'].shape == (1, 2)
    result = metric.compute_metrics(metric.results)
    # Queries 0 and 1 hit at rank 1; query 2 (pid 2) hits at rank 2.
    assert_close(result, {
        'R1': 200 / 3,
        'mAP': 100 * (1 + 1 + 0.5) / 3,
        'mINP': 100 * (1 + 1 + 0.5) / 3
    })


@pytest.mark.parametrize('field', ['image_feat', 'text_feats', 'pid'])
def test_missing_field_raises_key_error(field):
    sample = dict(image_feat=torch.rand(4), text_feats=torch.rand(2, 4),
                  pid=3, img_path='a.jpg')
    del sample[field]
    metric = TPRMetric()
    with pytest.raises(KeyError, match=rf"'{field}'.*keys present.*img_path"):
        metric.process(None, [sample])
    assert metric.results == []


def test_bad_shapes_raise():
    metric = TPRMetric()
    with pytest.raises(ValueError, match='text_feats'):
        metric.process(None, [
            dict(image_feat=torch.rand(4), text_feats=torch.rand(2, 5),
                 pid=0)
        ])
    with pytest.raises(ValueError, match='text_feats'):
        metric.process(None, [
            dict(image_feat=torch.rand(4), text_feats=torch.rand(0, 4),
                 pid=0)
        ])
    with pytest.raises(ValueError, match='image_feat'):
        metric.process(None, [
            dict(image_feat=torch.rand(1, 4), text_feats=torch.rand(2, 4),
                 pid=0)
        ])


def test_empty_results_raise():
    with pytest.raises(ValueError, match='no results'):
        TPRMetric().compute_metrics([])


def test_invalid_arguments():
    with pytest.raises(ValueError, match='topk'):
        TPRMetric(topk=(1, 0))
    with pytest.raises(ValueError, match='chunk_size'):
        TPRMetric(chunk_size=0)


# --- image-to-text and the per-query results file ---------------------------

OUT_KEYS = {'metrics', 'direction', 'query_pids', 'gallery_pids',
            'query_image_index', 'topk_indices', 'topk_scores', 'topk_pids',
            'ap', 'inp', 'first_match_rank', 'captions', 'gallery_img_paths'}


def normalised(image_feats, text_feats):
    gallery = image_feats / np.linalg.norm(image_feats, axis=1, keepdims=True)
    queries = np.concatenate(text_feats)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return gallery, queries


def with_captions(samples):
    for i, sample in enumerate(samples):
        sample['captions'] = [f'image {i} caption {j}'
                              for j in range(len(sample['text_feats']))]
    return samples


def test_image_to_text_equals_rank_on_the_transposed_problem():
    image_feats, text_feats = make_features(seed=4)
    metric = TPRMetric(topk=(1, 2, 5), directions=('i2t', 't2i'),
                       chunk_size=4)
    assert metric.directions == ('t2i', 'i2t')
    metric.process(None, make_samples(image_feats, text_feats))
    result = metric.compute_metrics(metric.results)

    # Built independently: every image ranks all captions; a caption is
    # relevant iff it describes the same person.
    gallery, queries = normalised(image_feats, text_feats)
    caption_pids = np.repeat(PIDS, NUM_CAPTIONS)
    i2t = rank(gallery @ queries.T, np.array(PIDS), caption_pids,
               topk=(1, 2, 5))
    t2i = expected_results(image_feats, text_feats, topk=(1, 2, 5))
    assert list(result) == ['R1', 'R2', 'R5', 'mAP', 'mINP', 'i2t_R1',
                            'i2t_R2', 'i2t_R5', 'i2t_mAP', 'i2t_mINP']
    assert_close({k: v for k, v in result.items() if 'i2t' not in k}, t2i)
    assert_close({k[4:]: v for k, v in result.items() if 'i2t' in k}, i2t)
    # Not the same numbers as t2i: the test would not notice a swap.
    assert result['i2t_mAP'] != pytest.approx(result['mAP'])


def test_image_to_text_hand_worked():
    # Images 0, 1 (pids 5, 6), captions c0 (pid 5), c1, c2 (pid 6).
    metric = TPRMetric(topk=1, directions=('t2i', 'i2t'))
    metric.process(None, [
        dict(image_feat=torch.tensor([1., 0.]),
             text_feats=torch.tensor([[0.2, 1.0]]), pid=5),
        dict(image_feat=torch.tensor([0., 1.]),
             text_feats=torch.tensor([[1.0, 0.1], [0.1, 1.0]]), pid=6),
    ])
    result = metric.evaluate(2)
    # image 0: cosines c0 .196, c1 .995, c2 .0995 -> c1 c0 c2: M 0 1 0
    # image 1: cosines c0 .981, c1 .0995, c2 .995 -> c2 c0 c1: M 1 0 1
    assert result['tpr/i2t_R1'] == pytest.approx(50.0)
    assert result['tpr/i2t_mAP'] == pytest.approx(
        100 * (1 / 2 + (1 + 2 / 3) / 2) / 2)
    assert result['tpr/i2t_mINP'] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)


@pytest.mark.parametrize('directions', [('i2t', ), 'x2y', ('t2i', 'bad')])
def test_invalid_directions(directions):
    with pytest.raises(ValueError, match='directions'):
        TPRMetric(directions=directions)


@pytest.mark.parametrize('ext', ['.pkl', '.json'])
def test_out_file(tmp_path, ext):
    from mmengine.fileio import load

    image_feats, text_feats = make_features(seed=6)
    out_file = tmp_path / 'new' / 'dir' / f'results{ext}'  # created
    metric = METRICS.build(
        dict(type='TPRMetric', topk=(1, 2), out_file=str(out_file),
             keep_topk=4, chunk_size=3, directions=('t2i', 'i2t')))
    metric.process(None, with_captions(make_samples(image_feats,
                                                    text_feats)))
    metrics = metric.evaluate(len(PIDS))
    assert os.listdir(out_file.parent) == [out_file.name]  # no temp file

    content = load(str(out_file))
    assert set(content) == OUT_KEYS
    num_q, num_g, k = sum(NUM_CAPTIONS), len(PIDS), 4
    arrays = {key: np.asarray(content[key]) for key in OUT_KEYS
              if key not in ('metrics', 'direction')}
    if ext == '.pkl':  # numpy arrays kept as they are
        for key in arrays:
            if key not in ('captions', 'gallery_img_paths'):
                assert isinstance(content[key], np.ndarray), key
    else:
        assert all(isinstance(content[key], list) for key in arrays)
    shapes = dict(query_pids=(num_q, ), gallery_pids=(num_g, ),
                  query_image_index=(num_q, ), topk_indices=(num_q, k),
                  topk_scores=(num_q, k), topk_pids=(num_q, k),
                  ap=(num_q, ), inp=(num_q, ), first_match_rank=(num_q, ),
                  captions=(num_q, ), gallery_img_paths=(num_g, ))
    assert {key: arrays[key].shape for key in shapes} == shapes

    assert content['direction'] == 't2i'
    assert content['metrics'] == pytest.approx(
        {key[len('tpr/'):]: value for key, value in metrics.items()},
        abs=1e-12)
    assert list(content['metrics'])[:4] == ['R1', 'R2', 'mAP', 'mINP']
    query_pids = np.repeat(PIDS, NUM_CAPTIONS)
    image_index = np.repeat(np.arange(num_g), NUM_CAPTIONS)
    np.testing.assert_array_equal(arrays['query_pids'], query_pids)
    np.testing.assert_array_equal(arrays['gallery_pids'], PIDS)
    np.testing.assert_array_equal(arrays['query_image_index'], image_index)
    assert content['captions'][:4] == [
        'image 0 caption 0', 'image 1 caption 0', 'image 1 caption 1',
        'image 2 caption 0']
    assert content['gallery_img_paths'] == [f'img_{i}.jpg'
                                            for i in range(num_g)]

    # The per-query values, recomputed from the cosine similarity.
    gallery, queries = normalised(image_feats, text_feats)
    sim = queries @ gallery.T
    order = np.argsort(-sim, axis=1, kind='stable')
    np.testing.assert_array_equal(arrays['topk_indices'], order[:, :k])
    np.testing.assert_allclose(
        arrays['topk_scores'], np.take_along_axis(sim, order[:, :k], 1),
        atol=1e-6)
    np.testing.assert_array_equal(arrays['topk_pids'],
                                  np.array(PIDS)[order[:, :k]])
    matches = np.array(PIDS)[order] == query_pids[:, None]
    np.testing.assert_array_equal(arrays['first_match_rank'],
                                  matches.argmax(axis=1))
    assert 100 * arrays['ap'].mean() == pytest.approx(
        content['metrics']['mAP'], abs=1e-9)
    assert 100 * arrays['inp'].mean() == pytest.approx(
        content['metrics']['mINP'], abs=1e-9)
    assert 100 * (arrays['first_match_rank'] < 2).mean() == pytest.approx(
        content['metrics']['R2'], abs=1e-9)

    # Asked for explicitly, so a second evaluation replaces the file.
    metric.process(None, make_samples(image_feats[:2], text_feats[:2]))
    metric.evaluate(2)
    content = load(str(out_file))
    assert len(content['gallery_pids']) == 2
    assert 'captions' not in content  # these samples carry none
    assert os.listdir(out_file.parent) == [out_file.name]


def test_out_file_keeps_captions_and_paths_only_when_asked(tmp_path):
    image_feats, text_feats = make_features()
    samples = with_captions(make_samples(image_feats, text_feats))
    metric = TPRMetric()
    metric.process(None, samples)
    assert set(metric.results[0]) == {'image_feat', 'text_feats', 'pid'}

    metric = TPRMetric(out_file=str(tmp_path / 'r.pkl'))
    # A training-mode sample carries one `caption`.
    train_sample = {k: v for k, v in samples[0].items() if k != 'captions'}
    metric.process(None, [dict(train_sample, caption='only one')])
    assert metric.results[0]['captions'] == ['only one']
    with pytest.raises(ValueError, match='2 captions but 3 caption'):
        metric.process(None, [dict(samples[3], captions=['a', 'b'])])


def test_default_keep_topk_is_the_largest_cutoff(tmp_path):
    assert TPRMetric().keep_topk == 10
    assert TPRMetric(topk=(1, 20)).keep_topk == 20
    assert TPRMetric(keep_topk=3).keep_topk == 3
    with pytest.raises(ValueError, match='keep_topk'):
        TPRMetric(keep_topk=0)


def test_out_file_write_is_atomic(tmp_path, monkeypatch):
    import mmtpr.utils.fileio as module

    image_feats, text_feats = make_features()
    out_file = tmp_path / 'results.pkl'
    out_file.write_text('previous')

    def failing_write(file, data):
        file.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(module, '_write_chunks', failing_write)
    metric = TPRMetric(out_file=str(out_file))
    metric.process(None, make_samples(image_feats, text_feats))
    with pytest.raises(OSError, match='disk full'):
        metric.compute_metrics(metric.results)
    # The old file is untouched and the temporary file is gone.
    assert os.listdir(tmp_path) == ['results.pkl']
    assert out_file.read_text() == 'previous'


@pytest.mark.parametrize('out_file', ['results.txt', 'results'])
def test_out_file_extension_is_checked(out_file):
    with pytest.raises(ValueError, match=r"\.json.*\.pkl"):
        TPRMetric(out_file=out_file)


def test_out_file_is_checked_when_built(tmp_path, monkeypatch):
    # Every check runs before any evaluation work.
    def no_ranking(*args, **kwargs):
        raise AssertionError('ranked')

    monkeypatch.setattr('mmtpr.evaluation.metrics.tpr_metric.rank_features',
                        no_ranking)
    folder = tmp_path / 'results.pkl'
    folder.mkdir()
    with pytest.raises(ValueError, match=rf"{folder}'? is an existing "
                       'directory'):
        TPRMetric(out_file=str(folder))
    a_file = tmp_path / 'file.txt'
    a_file.write_text('')
    for out_file in (a_file / 'r.pkl', a_file / 'deeper' / 'r.json'):
        with pytest.raises(ValueError, match=rf"cannot write `out_file` "
                           rf"'{out_file}'.*'{a_file}' is not a directory"):
            TPRMetric(out_file=out_file)
    # Missing directories are fine: the write creates them.
    metric = TPRMetric(out_file=tmp_path / 'new' / 'dir' / 'r.pkl')
    assert metric.out_file == str(tmp_path / 'new' / 'dir' / 'r.pkl')


def test_out_file_in_a_read_only_directory(tmp_path, monkeypatch):
    read_only = tmp_path / 'read_only'
    read_only.mkdir()
    if not hasattr(os, 'geteuid') or os.geteuid() == 0:
        # root may write anywhere: make the access check say no.
        monkeypatch.setattr(os, 'access', lambda path, mode: False)
    read_only.chmod(0o555)
    try:
        with pytest.raises(ValueError, match=rf"'{read_only}' is not "
                           'writable'):
            TPRMetric(out_file=str(read_only / 'sub' / 'r.pkl'))
    finally:
        read_only.chmod(0o755)
