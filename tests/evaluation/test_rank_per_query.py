"""Per-query results of the ranking (``rank_per_query`` and
``_RankAccumulator(keep_details=True)``) against a brute-force numpy
computation."""
import numpy as np
import pytest
import torch

from mmtpr.evaluation import rank, rank_per_query
from mmtpr.evaluation.functional.rank import _RankAccumulator


def brute_force(sim, query_pids, gallery_pids, keep_topk):
    """One query at a time, over the full gallery."""
    sim = np.asarray(sim)
    gallery_pids = np.asarray(gallery_pids)
    out = {key: [] for key in ('ap', 'inp', 'first_match_rank',
                               'topk_indices', 'topk_scores')}
    for q, pid in enumerate(query_pids):
        # A stable sort of -sim: descending, equal scores by gallery index.
        order = np.argsort(-sim[q], kind='stable')
        matches = gallery_pids[order] == pid
        cum = np.cumsum(matches)
        positions = np.arange(1, len(order) + 1)
        out['ap'].append((matches * cum / positions).sum() / matches.sum())
        out['inp'].append(matches.sum() /
                          (np.flatnonzero(matches)[-1] + 1))
        out['first_match_rank'].append(np.flatnonzero(matches)[0])
        out['topk_indices'].append(order[:keep_topk])
        out['topk_scores'].append(sim[q, order[:keep_topk]])
    return {key: np.array(value) for key, value in out.items()}


def tied_problem(seed=0, num_queries=23, num_gallery=17, num_ids=5):
    """Scores on a coarse grid (many ties) and every query with a
    positive."""
    rng = np.random.default_rng(seed)
    gallery_pids = np.concatenate([np.arange(num_ids),
                                   rng.integers(0, num_ids,
                                                num_gallery - num_ids)])
    query_pids = rng.integers(0, num_ids, num_queries)
    sim = (rng.integers(0, 4, (num_queries, num_gallery)) /
           4).astype(np.float32)
    return sim, query_pids, gallery_pids


def assert_details(actual, expected):
    assert sorted(actual) == sorted(expected)
    for key in ('ap', 'inp'):
        assert actual[key].dtype == np.float64
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-12,
                                   atol=1e-12, err_msg=key)
    for key in ('first_match_rank', 'topk_indices'):
        assert actual[key].dtype == np.int64
        np.testing.assert_array_equal(actual[key], expected[key],
                                      err_msg=key)
    np.testing.assert_array_equal(actual['topk_scores'],
                                  expected['topk_scores'])


@pytest.mark.parametrize('chunk_size', [1, 5, 1024])
@pytest.mark.parametrize('keep_topk', [1, 4, 17])
def test_matches_brute_force_with_ties(chunk_size, keep_topk):
    sim, query_pids, gallery_pids = tied_problem()
    # The grid makes ties within the kept top-k, so their order matters.
    assert any(len(np.unique(row[np.argsort(-row, kind='stable')[:4]])) < 4
               for row in sim)
    details = rank_per_query(
        torch.from_numpy(sim), query_pids, gallery_pids,
        keep_topk=keep_topk, chunk_size=chunk_size)
    expected = brute_force(sim, query_pids, gallery_pids, keep_topk)
    assert details['topk_indices'].shape == (len(sim), keep_topk)
    assert details['topk_scores'].dtype == np.float32
    assert_details(details, expected)


def test_continuous_scores_and_consistency_with_rank():
    rng = np.random.default_rng(5)
    sim = rng.standard_normal((40, 30))
    query_pids = rng.integers(0, 6, 40)
    gallery_pids = np.arange(30) % 6
    details = rank_per_query(sim, query_pids, gallery_pids, keep_topk=10,
                             chunk_size=7)
    assert_details(details, brute_force(sim, query_pids, gallery_pids, 10))
    assert details['topk_scores'].dtype == np.float64
    # The means are rank()'s metrics.
    metrics = rank(sim, query_pids, gallery_pids, topk=(1, 5, 10))
    assert 100 * details['ap'].mean() == pytest.approx(metrics['mAP'],
                                                       abs=1e-9)
    assert 100 * details['inp'].mean() == pytest.approx(metrics['mINP'],
                                                        abs=1e-9)
    for k in (1, 5, 10):
        r_at_k = 100 * (details['first_match_rank'] < k).mean()
        assert r_at_k == pytest.approx(metrics[f'R{k}'], abs=1e-9)
    # R@k from the top-k ids is the same as from first_match_rank.
    top_pids = gallery_pids[details['topk_indices']]
    hits = (top_pids[:, :5] == query_pids[:, None]).any(axis=1)
    assert 100 * hits.mean() == pytest.approx(metrics['R5'], abs=1e-9)


def test_all_equal_scores_rank_by_gallery_index():
    # torch.topk does not return equal scores by ascending index (on the
    # CPU it does not), so the top-k must come from the stable sort.
    sim = torch.zeros(3, 200)
    sim[1, 150] = 1.0
    details = rank_per_query(sim, [0, 1, 2], torch.arange(200) % 3,
                             keep_topk=5)
    assert details['topk_indices'].tolist() == [[0, 1, 2, 3, 4],
                                                [150, 0, 1, 2, 3],
                                                [0, 1, 2, 3, 4]]
    assert details['topk_scores'].tolist() == [[0.0] * 5,
                                               [1.0] + [0.0] * 4,
                                               [0.0] * 5]
    # q1's gallery item 150 (pid 0) moves item 1 (pid 1) to rank 2.
    assert details['first_match_rank'].tolist() == [0, 2, 2]
    # 67 positives for pid 0 (0, 3, ..., 198): ranks 0, 3, ..., 198.
    assert details['inp'][0] == pytest.approx(67 / 199)


def test_hand_worked_example():
    # The example of test_rank.py: gallery pids 1 2 1 3 2.
    sim = [[0.2, 0.9, 0.1, 0.5, 0.3],
           [0.1, 0.8, 0.7, 0.2, 0.6],
           [0.9, 0.1, 0.3, 0.4, 0.2]]
    details = rank_per_query(sim, [1, 2, 3], [1, 2, 1, 3, 2], keep_topk=3)
    np.testing.assert_allclose(details['ap'], [0.325, 5 / 6, 0.5])
    np.testing.assert_allclose(details['inp'], [0.4, 2 / 3, 0.5])
    assert details['first_match_rank'].tolist() == [3, 0, 1]
    assert details['topk_indices'].tolist() == [[1, 3, 4], [1, 2, 4],
                                                [0, 3, 2]]
    np.testing.assert_allclose(details['topk_scores'],
                               [[0.9, 0.5, 0.3], [0.8, 0.7, 0.6],
                                [0.9, 0.4, 0.3]], rtol=1e-6)


def test_low_precision_scores():
    sim = torch.tensor([[0.5, 0.25, 0.75]])
    for dtype, expected in ((torch.float16, np.float16),
                            (torch.bfloat16, np.float32)):
        details = rank_per_query(sim.to(dtype), [1], [1, 2, 1], keep_topk=2)
        assert details['topk_scores'].dtype == expected
        assert details['topk_scores'].tolist() == [[0.75, 0.5]]
        assert details['topk_indices'].tolist() == [[2, 0]]


def test_keep_topk_larger_than_gallery_keeps_the_whole_ranking():
    sim = np.array([[0.1, 0.3, 0.2]])
    details = rank_per_query(sim, [1], [1, 2, 1], keep_topk=10)
    assert details['topk_indices'].tolist() == [[1, 2, 0]]


def test_accumulator_details_by_chunks():
    sim, query_pids, gallery_pids = tied_problem(seed=2)
    acc = _RankAccumulator(torch.as_tensor(gallery_pids), (1, 5),
                           keep_details=True, keep_topk=3)
    for start in range(0, len(sim), 6):
        acc.update(torch.from_numpy(sim[start:start + 6]),
                   torch.as_tensor(query_pids[start:start + 6]), start)
    assert_details(acc.details(), brute_force(sim, query_pids,
                                              gallery_pids, 3))
    expected = rank(sim, query_pids, gallery_pids, topk=(1, 5))
    assert acc.summarize() == pytest.approx(expected, abs=1e-9)


def test_accumulator_without_details():
    acc = _RankAccumulator(torch.tensor([0, 1]), (1, ))
    acc.update(torch.tensor([[0.5, 0.2]]), torch.tensor([0]), 0)
    assert acc._details['ap'] == []  # nothing kept by default
    with pytest.raises(ValueError, match='keep_details=True'):
        acc.details()
    with pytest.raises(ValueError, match='No query'):
        _RankAccumulator(torch.tensor([0]), (1, ),
                         keep_details=True).details()


@pytest.mark.parametrize('keep_topk', [0, -1, 2.5, True])
def test_invalid_keep_topk(keep_topk):
    with pytest.raises(ValueError, match='keep_topk'):
        rank_per_query([[0.1]], [0], [0], keep_topk=keep_topk)


def test_same_checks_as_rank():
    with pytest.raises(ValueError, match='no positive'):
        rank_per_query([[0.1, 0.2]], [3], [0, 1])
    with pytest.raises(ValueError, match='NaN'):
        rank_per_query([[float('nan'), 0.2]], [0], [0, 1])
