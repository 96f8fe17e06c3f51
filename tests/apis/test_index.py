"""Tests of mmtpr.apis.index: the exact index against a full stable sort,
the FAISS kinds against the exact index, input checks, save/load."""
import sys

import numpy as np
import pytest
import torch

from mmtpr.apis.index import (
    INDEX_KINDS,
    ExactIndex,
    build_index,
    default_nlist,
    load_index,
)


def full_sort(queries, gallery, topk):
    """Reference: every score, a stable descending sort (equal scores by
    ascending gallery index), the first ``topk``."""
    scores = np.asarray(queries, np.float64) @ np.asarray(gallery,
                                                          np.float64).T
    order = np.argsort(-scores, axis=1, kind='stable')[:, :topk]
    return np.take_along_axis(scores, order, axis=1), order


def dyadic(rng, shape, levels=2):
    """Small multiples of 1/4: all inner products are exact in float32,
    whatever the summation order, and many of them are equal."""
    return (rng.integers(-levels, levels + 1, shape) * 0.25).astype(
        np.float32)


def normalized(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(rng, num, dim, centres, noise):
    """Unit vectors around random unit centres."""
    labels = rng.integers(0, len(centres), num)
    points = centres[labels] + noise * rng.standard_normal(
        (num, dim)) / np.sqrt(dim)
    return normalized(points)


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t)
                    for f, t in zip(found.tolist(), truth.tolist())])


# --------------------------------------------------------------------------
# exact
# --------------------------------------------------------------------------
@pytest.mark.parametrize('max_block_elements', [2**26, 1, 7, 64, 500])
@pytest.mark.parametrize('topk', [1, 3, 17, 120, 500])
def test_exact_equals_full_sort_with_ties(max_block_elements, topk):
    rng = np.random.default_rng(0)
    gallery = dyadic(rng, (120, 6), levels=1)  # many equal scores
    gallery[40:60] = gallery[5]  # and runs of equal rows
    queries = dyadic(rng, (9, 6))
    index = build_index(gallery, max_block_elements=max_block_elements)
    scores, indices = index.search(queries, topk)
    ref_scores, ref_indices = full_sort(queries, gallery, topk)
    assert indices.shape == (9, min(topk, 120))
    np.testing.assert_array_equal(indices, ref_indices)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


@pytest.mark.parametrize('max_block_elements', [2**26, 3, 40])
def test_exact_keeps_lowest_indices_tied_at_the_cut(max_block_elements):
    gallery = np.ones((50, 4), np.float32)
    gallery[33] *= 2  # the one better row comes late
    index = build_index(gallery, max_block_elements=max_block_elements)
    _, indices = index.search(np.ones((2, 4), np.float32), 10)
    assert indices.tolist() == [[33, 0, 1, 2, 3, 4, 5, 6, 7, 8]] * 2


def test_exact_tie_rule_where_torch_topk_differs():
    # The rows tied for the last place are spread over the gallery; the
    # result must be the lowest of them however torch.topk picks.
    rng = np.random.default_rng(1)
    gallery = dyadic(rng, (3000, 3), levels=1)
    queries = dyadic(rng, (20, 3), levels=1)
    _, indices = build_index(gallery).search(queries, 50)
    np.testing.assert_array_equal(indices,
                                  full_sort(queries, gallery, 50)[1])


def test_exact_random_features_match_full_sort():
    rng = np.random.default_rng(2)
    gallery = normalized(rng.standard_normal((2000, 32)))
    queries = normalized(rng.standard_normal((25, 32)))
    ref_scores, ref_indices = full_sort(queries, gallery, 10)
    for budget in (2**26, 1000, 33):
        scores, indices = build_index(
            torch.from_numpy(gallery), max_block_elements=budget).search(
                torch.from_numpy(queries), 10)
        assert isinstance(scores, torch.Tensor)
        assert scores.dtype == torch.float32
        assert indices.dtype == torch.int64
        np.testing.assert_array_equal(indices.numpy(), ref_indices)
        np.testing.assert_allclose(scores.numpy(), ref_scores, atol=1e-6)


def test_exact_output_types_shapes_and_clamping():
    rng = np.random.default_rng(3)
    gallery = rng.standard_normal((7, 5))  # float64 is converted
    index = build_index(gallery)
    assert (index.kind, index.ntotal, index.dim, len(index)) == ('exact', 7,
                                                                 5, 7)
    assert index.features.dtype == torch.float32
    scores, indices = index.search(gallery[:2], topk=100)
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float32
    assert indices.dtype == np.int64 and indices.shape == (2, 7)
    assert sorted(indices[0].tolist()) == list(range(7))
    assert np.all(np.diff(scores, axis=1) <= 0)
    scores, indices = index.search(np.zeros((0, 5)), topk=3)
    assert scores.shape == (0, 3) and indices.shape == (0, 3)
    # Features that need no conversion are not copied.
    features = torch.randn(6, 5)
    assert ExactIndex(features).features.data_ptr() == features.data_ptr()
    # Autograd inputs are fine; the results carry no graph.
    features.requires_grad_(True)
    scores, _ = build_index(features, device='cpu').search(features[:2], 3)
    assert not scores.requires_grad


def test_exact_save_load(tmp_path):
    rng = np.random.default_rng(4)
    gallery = rng.standard_normal((30, 8)).astype(np.float32)
    queries = rng.standard_normal((4, 8)).astype(np.float32)
    index = build_index(gallery)
    path = tmp_path / 'gallery.index'
    index.save(path)
    loaded = load_index(path)
    assert loaded.kind == 'exact'
    np.testing.assert_array_equal(loaded.features, index.features)
    for got, want in zip(loaded.search(queries, 5), index.search(queries,
                                                                  5)):
        np.testing.assert_array_equal(got, want)
    # Other block sizes: the same ranking (scores may differ in the last
    # bit: BLAS rounds differently for other matrix shapes).
    loaded = load_index(path, max_block_elements=10)
    assert loaded.max_block_elements == 10
    scores, indices = loaded.search(queries, 5)
    np.testing.assert_array_equal(indices, index.search(queries, 5)[1])
    np.testing.assert_allclose(scores, index.search(queries, 5)[0],
                               rtol=1e-6)


@pytest.mark.parametrize('features, message', [
    (np.zeros(5), '2-D'),
    (np.zeros((2, 3, 4)), '2-D'),
    (np.zeros((0, 4)), 'at least one row'),
    (np.zeros((4, 0)), 'at least one column'),
    (np.array([[0., 1.], [np.nan, 0.]]), 'row 1 holds NaN or inf'),
    (np.array([[np.inf, 1.]]), 'row 0'),
])
@pytest.mark.parametrize('kind', INDEX_KINDS)
def test_bad_features(features, message, kind):
    if kind != 'exact':
        pytest.importorskip('faiss')
    with pytest.raises(ValueError, match=message):
        build_index(features, kind=kind)


def test_bad_arguments():
    index = build_index(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match='dimension 3.*4-d'):
        index.search(np.zeros((2, 3)), 1)
    with pytest.raises(ValueError, match=r'queries\[None\]'):
        index.search(np.zeros(4), 1)
    with pytest.raises(ValueError, match='queries` must be finite'):
        index.search(np.full((1, 4), np.nan), 1)
    for topk in (0, -1, True, 2.0, None):
        with pytest.raises(ValueError, match='`topk` must be a positive'):
            index.search(np.zeros((1, 4)), topk)
    with pytest.raises(TypeError, match='real numbers'):
        build_index(np.array([['a', 'b']]))
    with pytest.raises(TypeError, match='real numbers'):
        build_index(torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="Unknown index kind 'hnsw'"):
        build_index(np.eye(4), kind='hnsw')
    with pytest.raises(TypeError, match='Unknown option.*nprobe'):
        build_index(np.eye(4), nprobe=3)
    with pytest.raises(ValueError, match='max_block_elements'):
        build_index(np.eye(4), max_block_elements=0)


def test_missing_faiss_message(monkeypatch):
    monkeypatch.setitem(sys.modules, 'faiss', None)  # import fails
    for kind in ('faiss-flat', 'faiss-ivf'):
        with pytest.raises(ImportError, match=r'pip install faiss-cpu '
                           r'\(or faiss-gpu\)'):
            build_index(np.eye(4), kind=kind)


def test_default_nlist():
    assert default_nlist(1) == 1
    assert default_nlist(100) == 2  # at most N // 39
    assert default_nlist(10_000) == 100
    assert default_nlist(1_000_000) == 1000
    assert INDEX_KINDS == ('exact', 'faiss-flat', 'faiss-ivf')


# --------------------------------------------------------------------------
# FAISS
# --------------------------------------------------------------------------
@pytest.fixture
def faiss():
    return pytest.importorskip('faiss')


@pytest.fixture
def random_problem():
    """Random unit vectors whose top-11 scores are > 2e-5 apart, so that
    float rounding (~1e-7) cannot reorder them."""
    rng = np.random.default_rng(11)
    gallery = normalized(rng.standard_normal((3000, 48)))
    queries = normalized(rng.standard_normal((40, 48)))
    ref_scores, _ = full_sort(queries, gallery, 11)
    assert np.min(-np.diff(ref_scores, axis=1)) > 2e-5
    return gallery, queries


@pytest.mark.parametrize('num_queries', [1, 40])  # FAISS: SIMD and BLAS
def test_faiss_flat_equals_exact(faiss, random_problem, num_queries):
    gallery, queries = random_problem
    queries = queries[:num_queries]
    exact_scores, exact_indices = build_index(gallery).search(queries, 10)
    index = build_index(torch.from_numpy(gallery), kind='faiss-flat')
    assert (index.kind, index.ntotal, index.dim) == ('faiss-flat', 3000, 48)
    scores, indices = index.search(queries, 10)
    assert scores.dtype == np.float32 and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, exact_indices)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    scores, indices = index.search(torch.from_numpy(queries), 5000)
    assert isinstance(indices, torch.Tensor) and indices.shape == (
        num_queries, 3000)


def test_faiss_results_order_ties_by_index(faiss):
    gallery = np.repeat(np.eye(3, dtype=np.float32), 6, axis=0)[::-1].copy()
    queries = np.array([[1., .5, 0.], [0., 0., 1.]], np.float32)
    for kind, options in (('faiss-flat', {}), ('faiss-ivf', {'nlist': 1})):
        _, indices = build_index(gallery, kind, **options).search(queries,
                                                                  18)
        np.testing.assert_array_equal(indices,
                                      full_sort(queries, gallery, 18)[1])


def test_faiss_ivf_full_probe_equals_exact(faiss, random_problem):
    gallery, queries = random_problem
    exact_scores, exact_indices = build_index(gallery).search(queries, 10)
    index = build_index(gallery, kind='faiss-ivf', nlist=20, nprobe=20)
    assert (index.nlist, index.nprobe) == (20, 20)
    scores, indices = index.search(queries, 10)
    np.testing.assert_array_equal(indices, exact_indices)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    index.nprobe = 1000  # clamped to nlist
    assert index.nprobe == 20


def test_faiss_ivf_recall_on_clustered_data(faiss):
    rng = np.random.default_rng(6)
    centres = normalized(rng.standard_normal((40, 64)))
    gallery = clustered(rng, 8000, 64, centres, noise=1.0)
    queries = clustered(rng, 200, 64, centres, noise=1.0)
    _, truth = build_index(gallery).search(queries, 10)
    index = build_index(gallery, kind='faiss-ivf', nprobe=4)
    assert index.nlist == 89  # round(sqrt(8000))
    _, found = index.search(queries, 10)
    assert recall(found, truth) > 0.8
    index.nprobe = 1
    assert recall(index.search(queries, 10)[1], truth) > 0.5
    # Seeded: the same options give the same index.
    again = build_index(gallery, kind='faiss-ivf', nprobe=1)
    np.testing.assert_array_equal(again.search(queries, 10)[1],
                                  index.search(queries, 10)[1])


def test_faiss_ivf_missing_results_and_options(faiss):
    rng = np.random.default_rng(7)
    gallery = normalized(rng.standard_normal((200, 8)))
    index = build_index(gallery, kind='faiss-ivf', nlist=50, nprobe=1,
                        train_size=10**6, niter=5, seed=3)
    scores, indices = index.search(gallery[:5], 100)
    assert indices.shape == (5, 100)
    missing = indices < 0
    assert missing.any() and np.all(np.isneginf(scores[missing]))
    # The missing places come last; the found rows are distinct.
    assert np.all(np.diff(missing.astype(int), axis=1) >= 0)
    assert indices[0, 0] == 0 and scores[0, 0] == pytest.approx(1, abs=1e-6)
    with pytest.raises(ValueError, match='must not exceed'):
        build_index(gallery, kind='faiss-ivf', nlist=201)
    for name in ('nlist', 'nprobe', 'train_size', 'niter', 'num_threads'):
        with pytest.raises(ValueError, match=f'`{name}` must be a positive'):
            build_index(gallery, kind='faiss-ivf', **{name: 0})
    with pytest.raises(TypeError, match="'faiss-flat'.*nprobe"):
        build_index(gallery, kind='faiss-flat', nprobe=3)


def test_faiss_settings_are_restored(faiss, random_problem):
    gallery, queries = random_problem
    threads = faiss.omp_get_max_threads()
    threshold = faiss.cvar.distance_compute_blas_threshold
    results = []
    # 40 queries: BLAS (default), SIMD scan, FAISS's own choice.
    for blas_min_queries in (20, 41, None):
        index = build_index(gallery, kind='faiss-flat', num_threads=1,
                            blas_min_queries=blas_min_queries)
        results.append(index.search(queries, 10))
        assert faiss.omp_get_max_threads() == threads
        assert faiss.cvar.distance_compute_blas_threshold == threshold
    for scores, indices in results[1:]:
        np.testing.assert_array_equal(indices, results[0][1])
        np.testing.assert_allclose(scores, results[0][0], atol=1e-5)
    with pytest.raises(ValueError, match='blas_min_queries'):
        build_index(gallery, kind='faiss-flat', blas_min_queries=0)


def test_faiss_save_load(faiss, tmp_path, random_problem):
    gallery, queries = random_problem
    flat = build_index(gallery, kind='faiss-flat')
    flat.save(tmp_path / 'flat.faiss')
    loaded = load_index(tmp_path / 'flat.faiss')
    assert loaded.kind == 'faiss-flat' and loaded.ntotal == 3000
    for got, want in zip(loaded.search(queries, 10),
                         flat.search(queries, 10)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match='faiss-ivf indexes only'):
        load_index(tmp_path / 'flat.faiss', nprobe=2)

    ivf = build_index(gallery, kind='faiss-ivf', nlist=20, nprobe=3)
    ivf.save(str(tmp_path / 'ivf.faiss'))
    loaded = load_index(tmp_path / 'ivf.faiss')
    assert (loaded.kind, loaded.nlist, loaded.nprobe) == ('faiss-ivf', 20, 3)
    for got, want in zip(loaded.search(queries, 10), ivf.search(queries,
                                                                 10)):
        np.testing.assert_array_equal(got, want)
    assert load_index(tmp_path / 'ivf.faiss', nprobe=7).nprobe == 7

    l2 = faiss.IndexFlatL2(4)
    faiss.write_index(l2, str(tmp_path / 'l2.faiss'))
    with pytest.raises(ValueError, match='not the inner product'):
        load_index(tmp_path / 'l2.faiss')
