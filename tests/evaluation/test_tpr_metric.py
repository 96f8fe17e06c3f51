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
