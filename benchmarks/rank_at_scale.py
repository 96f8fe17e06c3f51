"""Time and peak memory of :func:`mmtpr.evaluation.rank` at the sizes of the
real test splits, next to a straightforward full-argsort implementation::

    python benchmarks/rank_at_scale.py [--chunk-size N]

One run measures both implementations at both sizes (random data, 512-d
features, 1,000 person ids):

- ``cuhk``: CUHK-PEDES test, 6,156 text queries x 3,074 gallery images
  (about 2 captions per image, about 3 images per id);
- ``icfg``: ICFG-PEDES test, 19,848 queries x 19,848 images (1 caption per
  image, each id on about 19.8 images).

The features are random unit vectors plus a shared per-id direction, so
the metrics are neither 0 nor 100. Every (implementation, size) runs in
its own child process, which builds the same float32 cosine similarity
from a fixed seed (the input, which both sides need and which is not
counted), then ranks it. "peak extra MB" is the peak resident memory of
the child while ranking, above its memory once the inputs are built: the
peak is reset with ``/proc/self/clear_refs`` after building them (Linux),
and read from ``VmHWM`` in ``/proc/self/status``. The children run one
after the other, so their times compare on a quiet machine; on a shared
one, compare the ratios of one run.

The reference is the computation ``rank``'s docstring defines, written
the obvious way: a full stable ``argsort`` of the (Q, G) similarity, a
(Q, G) relevance matrix in ranked order, its cumulative sum, precision at
every rank, AP/INP/R@k. At the ICFG size it needs about 10 GB on top of
the 1.6 GB similarity.

The script asserts that, at both sizes, R@k are exactly equal (both
compute ``100 * hits / Q`` from the same integer counts) and mAP/mINP
agree within 1e-9 (percent): the per-query AP and INP are the same
float64 terms, but the reference sums AP's terms over all G ranks and
averages with numpy's pairwise summation, while ``rank`` sums over the
positives and accumulates the chunks in another order, which can change
the last bits. It also asserts that ``rank`` stays under 2 GB extra
memory at the ICFG size.
"""
import argparse
import gc
import hashlib
import json
import subprocess
import sys
import time

NUM_IDS = 1000
DIM = 512
SEED = 0
TOPK = (1, 5, 10)
SIZES = {
    # name: (number of gallery images, number of text queries)
    'cuhk': (3074, 6156),
    'icfg': (19848, 19848),
    'tiny': (300, 600),  # a smoke run (--sizes tiny)
}
IMPLS = ('rank', 'reference')
RANK_LIMIT_MB = 2048
# mAP and mINP (percent) may differ in the last bits; see the docstring.
MAP_TOLERANCE = 1e-9


def build_problem(size):
    """The inputs: float32 (Q, G) cosine similarity, query and gallery
    pids (int64 numpy)."""
    import numpy as np
    import torch

    num_gallery, num_queries = SIZES[size]
    rng = np.random.default_rng(SEED)
    # Every id on about G / NUM_IDS images, in random gallery order.
    gallery_pids = rng.permutation(np.arange(num_gallery) % NUM_IDS)
    # Captions per image: the same number for all, one more for the rest.
    captions = np.full(num_gallery, num_queries // num_gallery)
    extra = rng.choice(num_gallery, num_queries % num_gallery,
                       replace=False)
    captions[extra] += 1
    query_pids = np.repeat(gallery_pids, captions)

    gen = torch.Generator().manual_seed(SEED)
    centres = torch.randn(NUM_IDS, DIM, generator=gen)
    signal = 0.35  # R1 ~ 36% at the cuhk size, ~ 62% at the icfg size
    gallery = torch.randn(num_gallery, DIM, generator=gen)
    gallery += signal * centres[torch.from_numpy(gallery_pids)]
    queries = torch.randn(num_queries, DIM, generator=gen)
    queries += signal * centres[torch.from_numpy(query_pids)]
    gallery = torch.nn.functional.normalize(gallery, dim=1)
    queries = torch.nn.functional.normalize(queries, dim=1)
    similarity = queries @ gallery.T
    return similarity, query_pids.astype(np.int64), \
        gallery_pids.astype(np.int64)


def reference_rank(similarity, query_pids, gallery_pids, topk=TOPK):
    """The definitions of ``rank``'s docstring on full (Q, G) matrices."""
    import numpy as np

    sim = similarity.numpy()
    num_queries, num_gallery = sim.shape
    # Descending, equal scores by ascending gallery index (stable).
    order = np.argsort(-sim, axis=1, kind='stable')
    matches = gallery_pids[order] == query_pids[:, None]  # M, (Q, G)
    del order
    cum = np.cumsum(matches, axis=1)  # (Q, G) int64
    num_pos = cum[:, -1]
    precision = cum / np.arange(1, num_gallery + 1)  # (Q, G) float64
    ap = (precision * matches).sum(axis=1) / num_pos
    del precision
    last = num_gallery - 1 - np.argmax(matches[:, ::-1], axis=1)
    inp = num_pos / (last + 1)
    result = {}
    for k in topk:
        hits = int((cum[:, min(k, num_gallery) - 1] > 0).sum())
        result[f'R{k}'] = 100.0 * hits / num_queries
    result['mAP'] = 100.0 * float(ap.mean())
    result['mINP'] = 100.0 * float(inp.mean())
    return result


def _status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def run_child(impl, size, chunk_size):
    """Build the inputs, rank them with ``impl``; return a dict."""
    from mmtpr.evaluation import rank

    similarity, query_pids, gallery_pids = build_problem(size)
    checksum = hashlib.sha1(similarity.numpy().data).hexdigest()
    gc.collect()
    base_kb = _status_kb('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM to the current RSS
    start = time.perf_counter()
    if impl == 'rank':
        metrics = rank(similarity, query_pids, gallery_pids, topk=TOPK,
                       chunk_size=chunk_size)
    else:
        metrics = reference_rank(similarity, query_pids, gallery_pids)
    seconds = time.perf_counter() - start
    peak_kb = _status_kb('VmHWM')
    return dict(impl=impl, size=size, seconds=seconds,
                extra_mb=(peak_kb - base_kb) / 1024,
                input_mb=similarity.numel() * 4 / 2**20,
                metrics=metrics, checksum=checksum)


def spawn(impl, size, chunk_size):
    proc = subprocess.run(
        [sys.executable, __file__, '--child', impl, size, '--chunk-size',
         str(chunk_size)],
        capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f'{impl} at {size} size failed '
                           f'(exit {proc.returncode}):\n{proc.stderr}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_equal(results, size):
    """Assert equal inputs and equal metrics (see the module docstring)."""
    ours, ref = results[(size, 'rank')], results[(size, 'reference')]
    assert ours['checksum'] == ref['checksum'], 'different inputs'
    assert list(ours['metrics']) == list(ref['metrics'])
    for key, value in ref['metrics'].items():
        tolerance = 0.0 if key.startswith('R') else MAP_TOLERANCE
        assert abs(ours['metrics'][key] - value) <= tolerance, (
            size, key, ours['metrics'][key], value)
    worst = max(abs(ours['metrics'][key] - ref['metrics'][key])
                for key in ('mAP', 'mINP'))
    print(f'{size}: R@k identical; mAP and mINP differ by {worst:.1e} '
          f'(<= {MAP_TOLERANCE:g})')


def print_table(results, chunk_size):
    header = (f'{"size":<6}{"Q x G":>16}  {"implementation":<22}'
              f'{"seconds":>9}{"peak extra MB":>15}')
    print()
    print(header)
    print('-' * len(header))
    for size in dict.fromkeys(size for size, _ in results):
        num_gallery, num_queries = SIZES[size]
        shape = f'{num_queries:,} x {num_gallery:,}'
        for impl in IMPLS:
            res = results[(size, impl)]
            name = (f'rank (chunk {chunk_size})'
                    if impl == 'rank' else 'reference (full)')
            print(f'{size:<6}{shape:>16}  {name:<22}{res["seconds"]:>9.2f}'
                  f'{res["extra_mb"]:>15,.0f}')
        ours, ref = results[(size, 'rank')], results[(size, 'reference')]
        print(f'{"":<6}{"":>16}  {"ratio reference/rank":<22}'
              f'{ref["seconds"] / ours["seconds"]:>8.1f}x'
              f'{ref["extra_mb"] / max(ours["extra_mb"], 1):>14.1f}x')
    print()
    for (size, impl), res in results.items():
        values = ', '.join(f'{k} {v:.3f}' for k, v in res['metrics'].items())
        print(f'{size} {impl}: {values} '
              f'(input similarity {res["input_mb"]:,.0f} MB, not counted)')
    print()


def main():
    parser = argparse.ArgumentParser(
        description='Time and peak memory of mmtpr.evaluation.rank next to '
        'a full-argsort reference at the test sizes of CUHK-PEDES and '
        'ICFG-PEDES.',
        epilog='Runs rank and the full-argsort reference at the CUHK-PEDES '
        'and ICFG-PEDES sizes, each in its own process; the reference '
        'needs ~10 GB at the ICFG size.')
    parser.add_argument('--chunk-size', type=int, default=1024,
                        help="rank's chunk_size (default: 1024)")
    parser.add_argument('--sizes', nargs='+', choices=list(SIZES),
                        default=['cuhk', 'icfg'],
                        help='the sizes to run (default: cuhk icfg; tiny is '
                        'a smoke run)')
    parser.add_argument('--child', nargs=2, metavar=('IMPL', 'SIZE'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(*args.child, args.chunk_size)))
        return

    results = {}
    for size in args.sizes:
        for impl in IMPLS:
            print(f'running {impl} at {size} size ...', flush=True)
            results[(size, impl)] = spawn(impl, size, args.chunk_size)
    print_table(results, args.chunk_size)
    for size in args.sizes:
        check_equal(results, size)
    if 'icfg' in args.sizes:
        icfg = results[('icfg', 'rank')]
        assert icfg['extra_mb'] < RANK_LIMIT_MB, icfg['extra_mb']
        print(f'rank at icfg size: {icfg["extra_mb"]:,.0f} MB extra < '
              f'{RANK_LIMIT_MB:,} MB limit: OK')


if __name__ == '__main__':
    main()
