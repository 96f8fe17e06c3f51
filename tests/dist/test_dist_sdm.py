"""SDM over the global batch in 2 processes (gloo, CPU), against one process
with the whole batch: loss values and PETL gradients through mmengine's
MMDistributedDataParallel, equal and unequal per-rank batches, gather=False;
the gather helper itself; and DefaultSampler + collect_results ordering."""
import os.path as osp

import pytest
import torch
from dist_helpers import (
    GLOBAL_PIDS,
    build_retriever,
    global_batch,
    loss_and_grads,
    rows,
    spawn,
)
from mmengine.dist import collect_results
from mmengine.model import MMDistributedDataParallel

from mmtpr.utils import all_gather_with_grad, is_multiprocess

# name -> (rows of rank 0, rows of rank 1), SDMHead's gather argument
CASES = {
    'equal': ((4, 4), None),
    'unequal': ((3, 5), None),
    'unequal_forced': ((3, 5), True),
    'local': ((4, 4), False),
    'local_unequal': ((3, 5), False),
}
TOL = 1e-5


def _training_steps(rank, world_size, out_dir):
    results = dict(multiprocess=is_multiprocess())
    batch = global_batch()
    for name, (sizes, gather) in CASES.items():
        model = build_retriever(gather)
        # as Runner.wrap_model does (device_ids=None: a CPU module)
        ddp = MMDistributedDataParallel(module=model, device_ids=None,
                                        broadcast_buffers=False)
        start = sum(sizes[:rank])
        loss, log_vars, grads = loss_and_grads(
            ddp, rows(batch, start, start + sizes[rank]))
        results[name] = dict(loss=loss,
                             logged=log_vars['loss_sdm'].detach().item(),
                             grads=grads, gathers=model.head.gathers())

    # the gather helper: rank r holds r + 2 rows of width 3
    n = rank + 2
    x = (torch.arange(n * 3, dtype=torch.float32).view(n, 3) +
         100 * rank).requires_grad_()
    y = all_gather_with_grad(x)
    weight = torch.arange(y.numel(), dtype=torch.float32).view_as(y)
    (y * weight).sum().backward()
    pids = all_gather_with_grad(torch.tensor([rank] * n))
    results['gather'] = dict(y=y.detach(), x_grad=x.grad, weight=weight,
                             pids=pids)

    # mmengine's sharding and collection on a dataset of odd size
    from mmengine.dataset import DefaultSampler
    sampler = DefaultSampler(list(range(9)), shuffle=False)
    indices = list(sampler)
    collected = collect_results(indices, 9, 'cpu',
                                tmpdir=osp.join(out_dir, 'collect'))
    results['sampler'] = dict(indices=indices, collected=collected)
    torch.save(results, osp.join(out_dir, f'rank{rank}.pth'))


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp('dist_sdm'))
    spawn(_training_steps, 2, out_dir)
    return [torch.load(osp.join(out_dir, f'rank{r}.pth'), weights_only=False)
            for r in range(2)]


def single_process(*row_ranges):
    """Loss of each row range of the global batch, and the gradients of
    their MEAN, in one process."""
    model = build_retriever()
    batch = global_batch()
    losses = [model(*rows(batch, a, b)[:2],
                    data_samples=rows(batch, a, b)[2], mode='loss')
              ['loss_sdm'] for a, b in row_ranges]
    torch.stack(losses).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.requires_grad}
    return [v.item() for v in losses], grads


def assert_grads_equal(got, expected):
    assert set(got) == set(expected)
    assert any('lora' in n for n in got) and any('adapter' in n for n in got)
    assert 'head.log_logit_scale' in got
    for name, grad in expected.items():
        assert grad.abs().max() > 0, name  # the comparison means something
        diff = (got[name] - grad).abs().max().item()
        assert diff <= TOL, (name, diff)


def test_workers_saw_a_multiprocess_run(ranks):
    assert all(r['multiprocess'] for r in ranks)
    assert [r['equal']['gathers'] for r in ranks] == [True, True]
    assert [r['local']['gathers'] for r in ranks] == [False, False]


@pytest.mark.parametrize('case', ['equal', 'unequal', 'unequal_forced'])
def test_gathered_sdm_equals_one_process_with_the_whole_batch(ranks, case):
    """N processes x B_r pairs: the loss on every rank and the parameter
    gradients after DDP's averaging are those of one process with all
    sum_r B_r pairs, for unequal B_r too."""
    (loss,), grads = single_process((0, len(GLOBAL_PIDS)))
    for r in ranks:
        assert r[case]['loss'] == pytest.approx(loss, abs=TOL)
        assert r[case]['logged'] == pytest.approx(loss, abs=TOL)
        assert_grads_equal(r[case]['grads'], grads)


@pytest.mark.parametrize('case', ['local', 'local_unequal'])
def test_gather_false_gives_the_local_batch_loss(ranks, case):
    """Without gathering each rank has the SDM of its own rows, and DDP
    gives the gradient of the plain mean of the per-rank losses (each rank
    weighted 1/N, whatever its batch size) - not the global-batch one."""
    sizes = CASES[case][0]
    halves = [(0, sizes[0]), (sizes[0], sum(sizes))]
    local_losses, mean_grads = single_process(*halves)
    (global_loss, ), global_grads = single_process((0, len(GLOBAL_PIDS)))
    for r, expected in zip(ranks, local_losses):
        assert r[case]['loss'] == pytest.approx(expected, abs=TOL)
        assert abs(r[case]['loss'] - global_loss) > 1e-3
        assert_grads_equal(r[case]['grads'], mean_grads)
    diff = (ranks[0][case]['grads']['head.log_logit_scale'] -
            global_grads['head.log_logit_scale']).abs().item()
    assert diff > 1e-3


def test_all_gather_with_grad_pads_slices_and_sums_gradients(ranks):
    expected = torch.cat([
        torch.arange(n * 3, dtype=torch.float32).view(n, 3) + 100 * r
        for r, n in enumerate((2, 3))])
    for rank, r in enumerate(ranks):
        g = r['gather']
        assert torch.equal(g['y'], expected)  # no padding rows left
        assert g['pids'].tolist() == [0, 0, 1, 1, 1]
        # backward SUMS the 2 ranks' (equal) gradients of the own rows
        start = 0 if rank == 0 else 2
        own = g['weight'][start:start + rank + 2]
        assert torch.equal(g['x_grad'], 2 * own)


def test_gather_is_a_no_op_in_one_process():
    x = torch.randn(3, 2, requires_grad=True)
    assert not is_multiprocess()
    assert all_gather_with_grad(x) is x


def test_default_sampler_shards_and_collect_results_restores_order(ranks):
    """9 samples on 2 ranks: DefaultSampler (round_up=True) gives rank r the
    indices r, r + 2, ... and pads rank 1 with index 0; collect_results
    interleaves the parts back into dataset order and cuts the padding."""
    assert ranks[0]['sampler']['indices'] == [0, 2, 4, 6, 8]
    assert ranks[1]['sampler']['indices'] == [1, 3, 5, 7, 0]
    assert ranks[0]['sampler']['collected'] == list(range(9))
    assert ranks[1]['sampler']['collected'] is None


def test_head_gather_option_in_one_process():
    from mmtpr.registry import MODELS
    for gather in (None, True, False):
        head = MODELS.build(dict(type='SDMHead', gather=gather))
        assert head.gather is gather and not head.gathers()
    with pytest.raises(TypeError, match="gather must be None, True or "
                       "False, got 'yes'"):
        MODELS.build(dict(type='SDMHead', gather='yes'))
