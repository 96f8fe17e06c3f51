"""The shared ranking core: ranks counted without sorting must equal a
straightforward full stable argsort, per query, on inputs full of ties."""
import ast
import pathlib

import numpy as np
import pytest
import torch

import mmtpr.evaluation.functional.positives as positives_module
from mmtpr.evaluation import rank, rank_per_query
from mmtpr.evaluation.functional import (
    GalleryPositives,
    RankAccumulator,
    check_positive_int,
    positive_ranks,
    rank_chunks,
    rank_features,
    topk_by_score_then_index,
)

TOPK = (1, 2, 5, 10, 1000)


def argsort_reference(sim, query_pids, gallery_pids, topk=TOPK):
    """The definitions on a full stable argsort, in float64 numpy: the
    per-query ranks of the positives, AP, INP, and the metrics."""
    sim = np.asarray(sim, dtype=np.float64)
    order = np.argsort(-sim, axis=1, kind='stable')
    matches = np.asarray(gallery_pids)[order] == \
        np.asarray(query_pids)[:, None]
    cum = np.cumsum(matches, axis=1)
    num_pos = cum[:, -1]
    ranks = [np.flatnonzero(row) for row in matches]
    ap = np.array([np.sum(np.arange(1, len(r) + 1) / (r + 1)) / len(r)
                   for r in ranks])
    inp = np.array([len(r) / (r[-1] + 1) for r in ranks])
    first = np.array([r[0] for r in ranks])
    metrics = {f'R{k}': 100.0 * int(np.sum(first < k)) / len(first)
               for k in topk}
    metrics['mAP'] = 100.0 * float(ap.mean())
    metrics['mINP'] = 100.0 * float(inp.mean())
    assert np.all(num_pos > 0)
    return dict(ranks=ranks, ap=ap, inp=inp, first_match_rank=first,
                metrics=metrics, order=order)


def make_problem(seed, kind, num_queries=37, num_gallery=61, num_ids=7):
    """Scores and pids of one of several tie regimes."""
    rng = np.random.default_rng(seed)
    gallery_pids = np.concatenate([
        np.arange(num_ids),
        rng.integers(0, num_ids, num_gallery - num_ids)])
    rng.shuffle(gallery_pids)
    query_pids = rng.integers(0, num_ids, num_queries)
    sim = rng.standard_normal((num_queries, num_gallery)).astype(np.float32)
    if kind == 'quantized':  # a few levels: ties everywhere
        sim = np.round(sim * 2) / 2
    elif kind == 'duplicate_columns':  # equal gallery items
        cols = rng.integers(0, num_gallery, 15)
        sim[:, rng.integers(0, num_gallery, 15)] = sim[:, cols]
    elif kind == 'positive_ties_negative':
        for q in range(num_queries):
            pos = np.flatnonzero(gallery_pids == query_pids[q])
            neg = np.flatnonzero(gallery_pids != query_pids[q])
            sim[q, rng.choice(neg, 3)] = sim[q, rng.choice(pos)]
    elif kind == 'special_values':
        sim[rng.random(sim.shape) < 0.1] = 0.0
        sim[rng.random(sim.shape) < 0.1] = -0.0
        sim[rng.random(sim.shape) < 0.05] = np.inf
        sim[rng.random(sim.shape) < 0.05] = -np.inf
    elif kind == 'one_big_id':  # one id holds half the gallery
        big = rng.random(num_gallery) < 0.5
        big[np.unique(gallery_pids, return_index=True)[1]] = False
        gallery_pids[big] = 0
        query_pids[:num_queries // 2] = 0
    return sim, query_pids, gallery_pids


KINDS = ['continuous', 'quantized', 'duplicate_columns',
         'positive_ties_negative', 'special_values', 'one_big_id']


def assert_same_as_reference(sim, query_pids, gallery_pids, chunk_size):
    values = sim.double() if isinstance(sim, torch.Tensor) else sim
    expected = argsort_reference(values, query_pids, gallery_pids)
    metrics = rank(sim, query_pids, gallery_pids, topk=TOPK,
                   chunk_size=chunk_size)
    assert list(metrics) == list(expected['metrics'])
    for key, value in expected['metrics'].items():
        if key.startswith('R'):  # counts over the same number: exact
            assert metrics[key] == value, key
        else:  # float64 sums in another order
            assert metrics[key] == pytest.approx(value, abs=1e-12), key
    details = rank_per_query(sim, query_pids, gallery_pids, keep_topk=7,
                             chunk_size=chunk_size)
    np.testing.assert_array_equal(details['first_match_rank'],
                                  expected['first_match_rank'])
    np.testing.assert_allclose(details['ap'], expected['ap'], rtol=1e-14)
    np.testing.assert_allclose(details['inp'], expected['inp'], rtol=1e-14)
    np.testing.assert_array_equal(details['topk_indices'],
                                  expected['order'][:, :7])


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('seed', range(4))
def test_rank_equals_full_argsort(kind, seed):
    sim, query_pids, gallery_pids = make_problem(seed, kind)
    assert_same_as_reference(torch.from_numpy(sim), query_pids,
                             gallery_pids, chunk_size=[1, 5, 16, 1024][seed])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16,
                                   torch.float64, torch.int32])
def test_rank_equals_full_argsort_in_other_dtypes(dtype):
    sim, query_pids, gallery_pids = make_problem(7, 'quantized')
    scores = torch.from_numpy(sim * 4).to(dtype)
    assert_same_as_reference(scores, query_pids, gallery_pids, 8)
    # Continuous scores rounded to the dtype.
    fine = torch.from_numpy(make_problem(8, 'continuous')[0]).to(dtype)
    assert_same_as_reference(fine, query_pids, gallery_pids, 8)


def test_positive_ranks_with_small_blocks_and_int64_buckets(monkeypatch):
    sim, query_pids, gallery_pids = make_problem(3, 'positive_ties_negative')
    sim[::3] = np.random.default_rng(0).standard_normal(sim[::3].shape)
    expected = argsort_reference(sim, query_pids, gallery_pids)['ranks']
    for block, limit in ((2**22, 2**31 - 1), (100, 2**31 - 1), (1, 0)):
        monkeypatch.setattr(positives_module, '_BLOCK_ELEMENTS', block)
        monkeypatch.setattr(positives_module, '_INT32_LIMIT', limit)
        rows, ranks, counts = positive_ranks(
            torch.from_numpy(sim), torch.from_numpy(query_pids),
            GalleryPositives(torch.from_numpy(gallery_pids)))
        assert counts.tolist() == [len(r) for r in expected]
        assert rows.tolist() == [q for q, r in enumerate(expected)
                                 for _ in r]
        assert ranks.tolist() == [x for r in expected for x in r.tolist()]


def test_rows_without_ties_are_not_sorted(monkeypatch):
    # Continuous scores: every row is ranked by counting alone.
    sim, query_pids, gallery_pids = make_problem(1, 'continuous')
    calls = []
    original = positives_module._sort_ranks
    monkeypatch.setattr(positives_module, '_sort_ranks',
                        lambda *args: calls.append(1) or original(*args))
    rank(sim, query_pids, gallery_pids)
    assert calls == []
    sim[4, :] = sim[4, 0]  # one row of equal scores
    assert_same_as_reference(sim, query_pids, gallery_pids, 1024)
    assert len(calls) == 2  # once for rank, once for rank_per_query


def test_topk_by_score_then_index():
    rng = np.random.default_rng(0)
    scores = torch.from_numpy(rng.integers(0, 3, (20, 50)).astype(
        np.float32))
    order = np.argsort(-scores.numpy(), axis=1, kind='stable')
    for k in (1, 4, 17, 50, 80):
        values, indices = topk_by_score_then_index(scores, k)
        assert indices.shape == (20, min(k, 50))
        np.testing.assert_array_equal(indices, order[:, :k])
        np.testing.assert_array_equal(values,
                                      np.take_along_axis(scores.numpy(),
                                                         order[:, :k], 1))
    # Explicit indices (e.g. gallery rows of candidates to merge).
    cand = torch.tensor([[0.5, 0.9, 0.5, 0.5]])
    values, indices = topk_by_score_then_index(
        cand, 3, indices=torch.tensor([[40, 7, 12, 3]]))
    assert indices.tolist() == [[7, 3, 12]]
    assert values.tolist() == [[0.8999999761581421, 0.5, 0.5]]


def test_rank_features_equals_rank_of_the_product():
    rng = np.random.default_rng(2)
    # Small integers: exact products in any summation order, and ties.
    queries = torch.from_numpy(rng.integers(-3, 4, (30, 6)) * 1.0)
    gallery = torch.from_numpy(rng.integers(-3, 4, (11, 6)) * 1.0)
    gallery_pids = np.arange(11) % 4
    query_pids = rng.integers(0, 4, 30)
    for chunk_size in (1, 7, 1024):
        acc = rank_features(queries, gallery, query_pids, gallery_pids,
                            topk=(1, 3), chunk_size=chunk_size,
                            keep_details=True, keep_topk=3)
        assert isinstance(acc, RankAccumulator)
        assert acc.summarize() == rank(queries @ gallery.T, query_pids,
                                       gallery_pids, topk=(1, 3),
                                       chunk_size=chunk_size)
        details = rank_per_query(queries @ gallery.T, query_pids,
                                 gallery_pids, keep_topk=3)
        for key, value in acc.details().items():
            np.testing.assert_array_equal(value, details[key])
    # The other direction is the same call with the roles swapped.
    i2t = rank_features(gallery, queries, gallery_pids, query_pids)
    assert i2t.summarize() == rank(gallery @ queries.T, gallery_pids,
                                   query_pids)
    with pytest.raises(ValueError, match=r'same number of columns.*'
                       r'\(30, 6\) and \(11, 5\)'):
        rank_features(queries, gallery[:, :5], query_pids, gallery_pids)


def test_rank_chunks_checks_before_drawing_chunks():
    def chunks():
        raise AssertionError('drawn')
        yield

    with pytest.raises(ValueError, match='no positive'):
        rank_chunks(chunks(), [0, 9], [0, 1])
    with pytest.raises(ValueError, match=r'\(1, 3\) at query 0 does not '
                       r'fit a \(2, 2\)'):
        rank_chunks([torch.zeros(1, 3)], [0, 1], [0, 1])
    with pytest.raises(ValueError, match='hold 1 query rows.*2 query'):
        rank_chunks([torch.zeros(1, 2)], [0, 1], [0, 1])


def test_check_positive_int():
    assert check_positive_int(3, 'n') == 3
    for value in (0, -2, 1.5, True, None, '3'):
        with pytest.raises(ValueError,
                           match=rf'`n` must be a positive int, got '
                           rf'{value!r}'):
            check_positive_int(value, 'n')


def test_evaluation_does_not_import_models_apis_or_engine():
    root = pathlib.Path(__file__).parents[2] / 'mmtpr' / 'evaluation'
    forbidden = ('mmtpr.models', 'mmtpr.apis', 'mmtpr.engine')
    for path in root.rglob('*.py'):
        package = '.'.join(
            path.relative_to(root.parent.parent).with_suffix('').parts[:-1])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split('.')
                if node.level:
                    base = base[:len(base) - node.level + 1]
                    names = ['.'.join(base + [node.module or ''])]
                else:
                    names = [node.module]
                names += [f'{names[0]}.{a.name}' for a in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith(forbidden), (path, name)
