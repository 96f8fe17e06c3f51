import numpy as np
import pytest
import torch

from mmtpr.evaluation import rank

# Hand-worked example: 3 queries x 5 gallery items.
#   gallery pids: g0=1, g1=2, g2=1, g3=3, g4=2
HAND_SIM = [
    [0.2, 0.9, 0.1, 0.5, 0.3],  # q0, pid 1
    [0.1, 0.8, 0.7, 0.2, 0.6],  # q1, pid 2
    [0.9, 0.1, 0.3, 0.4, 0.2],  # q2, pid 3
]
HAND_QUERY_PIDS = [1, 2, 3]
HAND_GALLERY_PIDS = [1, 2, 1, 3, 2]
# q0: order g1 g3 g4 g0 g2 -> M = 0 0 0 1 1
#     AP = (1/4 + 2/5) / 2 = 0.325, INP = 2/5 = 0.4, first hit at rank 4
# q1: order g1 g2 g4 g3 g0 -> M = 1 0 1 0 0
#     AP = (1/1 + 2/3) / 2 = 5/6, INP = 2/3, first hit at rank 1
# q2: order g0 g3 g2 g4 g1 -> M = 0 1 0 0 0
#     AP = (1/2) / 1 = 1/2, INP = 1/2, first hit at rank 2
# R1 = 1/3, R2 = 2/3, R5 = 3/3
# mAP = (0.325 + 5/6 + 1/2) / 3, mINP = (0.4 + 2/3 + 1/2) / 3
HAND_EXPECTED = {
    'R1': 100 / 3,
    'R2': 200 / 3,
    'R5': 100.0,
    'mAP': 100 * (0.325 + 5 / 6 + 0.5) / 3,
    'mINP': 100 * (0.4 + 2 / 3 + 0.5) / 3,
}


def reference_rank(sim, query_pids, gallery_pids, topk):
    """Straightforward numpy implementation, one query at a time."""
    sim = np.asarray(sim, dtype=np.float64)
    query_pids = np.asarray(query_pids)
    gallery_pids = np.asarray(gallery_pids)
    num_gallery = sim.shape[1]
    hits = {k: [] for k in topk}
    aps, inps = [], []
    for q in range(sim.shape[0]):
        # Stable ascending sort of -sim: descending, ties by gallery index.
        order = np.argsort(-sim[q], kind='stable')
        matches = gallery_pids[order] == query_pids[q]
        cum = np.cumsum(matches)
        num_pos = matches.sum()
        positions = np.arange(1, num_gallery + 1)
        aps.append((matches * cum / positions).sum() / num_pos)
        inps.append(num_pos / (np.flatnonzero(matches)[-1] + 1))
        for k in topk:
            hits[k].append(matches[:k].any())
    result = {f'R{k}': 100 * np.mean(hits[k]) for k in topk}
    result['mAP'] = 100 * np.mean(aps)
    result['mINP'] = 100 * np.mean(inps)
    return result


def assert_results(actual, expected):
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert isinstance(actual[key], float), key
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_hand_worked_example():
    result = rank(
        torch.tensor(HAND_SIM),
        torch.tensor(HAND_QUERY_PIDS),
        torch.tensor(HAND_GALLERY_PIDS),
        topk=(1, 2, 5))
    assert_results(result, HAND_EXPECTED)
    assert result['mAP'] == pytest.approx(55.2777777777778)
    assert result['mINP'] == pytest.approx(52.2222222222222)


@pytest.mark.parametrize('chunk_size', [1, 2, 3, 1024])
def test_hand_worked_example_numpy_and_chunks(chunk_size):
    result = rank(
        np.array(HAND_SIM, dtype=np.float64),
        np.array(HAND_QUERY_PIDS, dtype=np.int32),
        np.array(HAND_GALLERY_PIDS),
        topk=[1, 2, 5],
        chunk_size=chunk_size)
    assert_results(result, HAND_EXPECTED)


def test_default_topk_and_int_topk():
    result = rank(HAND_SIM, HAND_QUERY_PIDS, HAND_GALLERY_PIDS)
    # G = 5 < 10: R10 counts hits in the whole gallery.
    assert list(result) == ['R1', 'R5', 'R10', 'mAP', 'mINP']
    assert result['R5'] == result['R10'] == 100.0
    result = rank(HAND_SIM, HAND_QUERY_PIDS, HAND_GALLERY_PIDS, topk=2)
    assert list(result) == ['R2', 'mAP', 'mINP']
    assert result['R2'] == pytest.approx(200 / 3)


def test_topk_larger_than_gallery():
    sim = torch.tensor([[0.9, 0.8, 0.1]])
    # The only positive is last: it is still within the top 100.
    result = rank(sim, [4], [1, 2, 4], topk=(1, 3, 100))
    assert_results(result, {
        'R1': 0.0,
        'R3': 100.0,
        'R100': 100.0,
        'mAP': 100 / 3,
        'mINP': 100 / 3
    })


def test_tie_positive_and_negative():
    sim = torch.tensor([[0.5, 0.5, 0.1]])
    # g0 is negative, g1 positive, tied: g0 (lower index) ranks first.
    result = rank(sim, [7], [5, 7, 9], topk=(1, 2))
    assert_results(result, {
        'R1': 0.0,
        'R2': 100.0,
        'mAP': 50.0,
        'mINP': 50.0
    })
    # Swap g0 and g1: the positive now has the lower index and wins.
    result = rank(sim, [7], [7, 5, 9], topk=(1, 2))
    assert_results(result, {
        'R1': 100.0,
        'R2': 100.0,
        'mAP': 100.0,
        'mINP': 100.0
    })


def test_tie_all_equal_scores_follow_gallery_order():
    sim = torch.zeros(1, 6)
    gallery_pids = torch.tensor([0, 3, 0, 3, 0, 0])
    # Ranked order is the gallery order: M = 0 1 0 1 0 0.
    # AP = (1/2 + 2/4) / 2 = 1/2, INP = 2/4.
    result = rank(sim, [3], gallery_pids, topk=(1, 2))
    assert_results(result, {
        'R1': 0.0,
        'R2': 100.0,
        'mAP': 50.0,
        'mINP': 50.0
    })
    # Permute the gallery (and the pids with it): order follows the new
    # indices. M = 1 0 0 0 0 1: AP = (1/1 + 2/6) / 2 = 2/3, INP = 2/6.
    perm = torch.tensor([1, 0, 2, 4, 5, 3])
    result = rank(sim[:, perm], [3], gallery_pids[perm], topk=(1, 2))
    assert_results(result, {
        'R1': 100.0,
        'R2': 100.0,
        'mAP': 100 * 2 / 3,
        'mINP': 100 / 3
    })


def test_permutation_without_ties_does_not_change_results():
    rng = np.random.default_rng(1)
    sim = rng.standard_normal((9, 14))
    gallery_pids = rng.integers(0, 4, 14)
    query_pids = gallery_pids[rng.integers(0, 14, 9)]
    perm = rng.permutation(14)
    expected = rank(sim, query_pids, gallery_pids)
    result = rank(sim[:, perm], query_pids, gallery_pids[perm])
    assert_results(result, expected)


@pytest.mark.parametrize('chunk_size', [1, 2, 5, 7, 23, 24, 1000])
@pytest.mark.parametrize('with_ties', [False, True])
def test_matches_reference(chunk_size, with_ties):
    rng = np.random.default_rng(0)
    num_queries, num_gallery = 23, 37
    gallery_pids = rng.integers(0, 8, num_gallery)
    # Queries take their ids from the gallery, so each has a positive.
    query_pids = gallery_pids[rng.integers(0, num_gallery, num_queries)]
    if with_ties:
        # Few distinct values: many ties, decided by the tie rule.
        sim = rng.integers(0, 4, (num_queries, num_gallery)) / 4
    else:
        sim = rng.standard_normal((num_queries, num_gallery))
    sim = sim.astype(np.float32)
    topk = (1, 3, 5, 10, 50)
    expected = reference_rank(sim, query_pids, gallery_pids, topk)
    result = rank(
        torch.from_numpy(sim),
        torch.from_numpy(query_pids),
        torch.from_numpy(gallery_pids),
        topk=topk,
        chunk_size=chunk_size)
    assert_results(result, expected)


def test_no_positive_raises():
    sim = torch.rand(4, 3)
    with pytest.raises(ValueError, match=r'2 of 4 queries have no positive'
                       r'.*Query indices: \[1, 3\]'):
        rank(sim, [1, 8, 2, 9], [1, 2, 2])


def test_no_positive_lists_first_few():
    sim = torch.rand(30, 2)
    with pytest.raises(ValueError, match=r'30 of 30 queries.*'
                       r'\[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \.\.\.\]'):
        rank(sim, torch.full((30, ), 5), [1, 2])


def test_shape_errors():
    sim = torch.rand(3, 5)
    with pytest.raises(ValueError, match=r'query_pids.*\(3,\).*got shape'
                       r' \(4,\)'):
        rank(sim, [1, 2, 3, 4], [1, 2, 3, 1, 2])
    with pytest.raises(ValueError, match=r'gallery_pids.*\(5,\).*got shape'
                       r' \(4,\)'):
        rank(sim, [1, 2, 3], [1, 2, 3, 1])
    with pytest.raises(ValueError, match=r'query_pids.*\(3,\).*\(3, 1\)'):
        rank(sim, [[1], [2], [3]], [1, 2, 3, 1, 2])
    with pytest.raises(ValueError, match='must be 2-D'):
        rank(torch.rand(5), [1], [1, 2, 3, 1, 2])
    with pytest.raises(ValueError, match='must be 2-D'):
        rank(torch.rand(1, 3, 5), [1], [1, 2, 3, 1, 2])


def test_empty_errors():
    with pytest.raises(ValueError, match='at least one query'):
        rank(torch.rand(0, 5), [], [1, 2, 3, 1, 2])
    with pytest.raises(ValueError, match='at least one query'):
        rank(torch.rand(3, 0), [1, 2, 3], [])


def test_nan_error():
    sim = torch.rand(5, 4)
    sim[3, 2] = float('nan')
    with pytest.raises(ValueError, match=r'NaN.*\[3\]'):
        rank(sim, [1, 1, 1, 1, 1], [1, 2, 3, 4], chunk_size=2)


@pytest.mark.parametrize('topk', [0, (1, 0), (-1, ), (1.5, ), (True, ), '1'])
def test_topk_errors(topk):
    with pytest.raises(ValueError, match='topk'):
        rank(HAND_SIM, HAND_QUERY_PIDS, HAND_GALLERY_PIDS, topk=topk)


@pytest.mark.parametrize('chunk_size', [0, -3, 2.0])
def test_chunk_size_errors(chunk_size):
    with pytest.raises(ValueError, match='chunk_size'):
        rank(HAND_SIM, HAND_QUERY_PIDS, HAND_GALLERY_PIDS,
             chunk_size=chunk_size)


def test_float_pids_error():
    with pytest.raises(TypeError, match='integer'):
        rank(HAND_SIM, [1.0, 2.0, 3.0], HAND_GALLERY_PIDS)


def test_does_not_modify_inputs_and_ignores_grad():
    sim = torch.tensor(HAND_SIM, requires_grad=True)
    before = sim.detach().clone()
    result = rank(sim, HAND_QUERY_PIDS, HAND_GALLERY_PIDS, topk=(1, 2, 5))
    assert_results(result, HAND_EXPECTED)
    assert torch.equal(sim.detach(), before)
