"""Gallery search at scale: brute force against FAISS flat and IVF::

    python benchmarks/search_scale.py [--sizes 10k,100k,1M] [--queries 100]
        [--nprobe 16,64] [--nlist N] [--repeats 100] [--max-seconds 5]
        [--threads T]

For each gallery size N it builds the three kinds of
:func:`mmtpr.apis.index.build_index` over the same N random unit
vectors (512-d float32 by default) and measures:

- ``build s``: building the index (FAISS: copying the features in; IVF:
  k-means training on a sample plus assigning every row to a cell).
  ``'exact'`` only wraps the features, so ~0;
- ``1-query ms``: the median latency of ``search(one_query, topk=10)``
  over ``--repeats`` different queries, stopping early once a kind has
  spent ``--max-seconds`` on them (at 1M a brute-force query reads the
  whole 2 GB gallery; ``n`` says how many ran);
- ``batch ms/q``: one ``search`` of all ``--queries`` queries at once
  (best of up to 3 runs within ``--max-seconds``), divided by the number
  of queries, and the resulting queries per second;
- ``recall@10``: the share of the exact top-10 (the ``'exact'`` kind on
  the same queries) that a kind returns; 1 for the exact kinds;
- ``index MB``: memory the index holds (``'exact'`` shares the features
  tensor).

Speed-ups are ``exact time / kind time`` for the same size.

The features imitate a person gallery: N / ``--images-per-id``
identities, each a unit centre with attributes shared across identities
(the centres span a random ``--rank``-dimensional subspace), each image
its identity's centre plus Gaussian noise of norm about ``--noise``,
normalised. A query is drawn the same way from a random identity (a text
near one person's images). The nearest neighbours are thus structured,
and IVF's recall is neither 1 nor that of uniform noise. Every IVF
``--nprobe`` value is measured on the same built index. One index lives
at a time; the features are generated in chunks from a fixed seed.
"""
import argparse
import math
import os
import platform
import statistics
import time

import numpy as np
import torch

from mmtpr.apis.index import build_index, default_nlist

TOPK = 10


def parse_size(text):
    """'10k' -> 10000, '1M' -> 1000000, '2500' -> 2500."""
    text = text.strip()
    scale = {'k': 10**3, 'm': 10**6}.get(text[-1:].lower(), 1)
    number = text[:-1] if scale > 1 else text
    return int(float(number) * scale)


def format_size(size):
    if size % 10**6 == 0:
        return f'{size // 10**6}M'
    if size % 10**3 == 0:
        return f'{size // 10**3}k'
    return str(size)


def make_centres(num_ids, args):
    """Unit identity centres in a random ``args.rank``-d subspace."""
    gen = torch.Generator().manual_seed(args.seed)
    basis = torch.randn(args.rank, args.dim, generator=gen)
    centres = torch.randn(num_ids, args.rank, generator=gen) @ basis
    return torch.nn.functional.normalize(centres, dim=1)


def make_features(centres, num, args, seed):
    """``num`` unit vectors, each near a random centre, built in chunks."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(num, args.dim)
    chunk = 1 << 16
    for start in range(0, num, chunk):
        rows = out[start:start + chunk]
        labels = torch.randint(0, len(centres), (len(rows), ),
                               generator=gen)
        torch.randn(rows.shape, generator=gen, out=rows)
        rows.mul_(args.noise / math.sqrt(args.dim)).add_(centres[labels])
        rows.div_(rows.norm(dim=1, keepdim=True))
    return out


def index_megabytes(index):
    ntotal, dim = index.ntotal, index.dim
    data = ntotal * dim * 4
    if index.kind == 'faiss-ivf':
        data += ntotal * 8 + index.nlist * dim * 4  # ids + centroids
    return data / 2**20


def time_single(index, queries, args):
    """Median latency (s) of one-query searches and how many ran."""
    index.search(queries[:1], TOPK)  # warm-up
    times = []
    deadline = time.perf_counter() + args.max_seconds
    for i in range(min(args.repeats, len(queries))):
        start = time.perf_counter()
        index.search(queries[i:i + 1], TOPK)
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline and len(times) >= 3:
            break
    return statistics.median(times), len(times)


def time_batch(index, queries, args):
    """Best time (s) of searching all queries at once, and the result."""
    best, result = math.inf, None
    deadline = time.perf_counter() + args.max_seconds
    for _ in range(3):
        start = time.perf_counter()
        result = index.search(queries, TOPK)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return best, result


def recall_at_k(found, truth):
    hits = [len(set(f) & set(t)) for f, t in zip(found.tolist(),
                                                  truth.tolist())]
    return sum(hits) / truth.numel()


def run_size(size, args):
    centres = make_centres(max(1, size // args.images_per_id), args)
    gallery = make_features(centres, size, args, seed=args.seed + 1)
    queries = make_features(centres, args.queries, args, seed=args.seed + 2)
    del centres
    nlist = min(args.nlist or default_nlist(size), size)
    rows, truth = [], None
    for kind, options in (('exact', {}), ('faiss-flat', {}),
                          ('faiss-ivf', {'nlist': nlist})):
        start = time.perf_counter()
        index = build_index(gallery, kind, **options)
        build = time.perf_counter() - start
        for nprobe in (args.nprobe if kind == 'faiss-ivf' else [None]):
            name = kind
            if nprobe is not None:
                index.nprobe = nprobe
                name = f'ivf {index.nlist}/{index.nprobe}'
            single, count = time_single(index, queries, args)
            batch, (_, indices) = time_batch(index, queries, args)
            if truth is None:
                truth = indices
            rows.append(dict(kind=name, build=build, single=single,
                             count=count, batch=batch / len(queries),
                             recall=recall_at_k(indices, truth),
                             megabytes=index_megabytes(index)))
        del index
    return rows


def print_header():
    header = (f'{"N":>5} {"kind":<14} {"build s":>8} {"1-query ms":>10} '
              f'{"n":>4} {"batch ms/q":>10} {"queries/s":>10} '
              f'{"recall@10":>9} {"index MB":>9} {"x 1-query":>9} '
              f'{"x batch":>8}')
    print(header)
    print('-' * len(header))


def print_rows(size, rows):
    exact = rows[0]
    for row in rows:
        print(f'{format_size(size):>5} {row["kind"]:<14} '
              f'{row["build"]:>8.2f} {row["single"] * 1e3:>10.3f} '
              f'{row["count"]:>4} {row["batch"] * 1e3:>10.3f} '
              f'{1 / row["batch"]:>10.0f} {row["recall"]:>9.3f} '
              f'{row["megabytes"]:>9.0f} '
              f'{exact["single"] / row["single"]:>9.1f} '
              f'{exact["batch"] / row["batch"]:>8.1f}', flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default='10k,100k,1M',
                        help='comma-separated gallery sizes (k, M)')
    parser.add_argument('--queries', type=int, default=100,
                        help='number of queries (batch size)')
    parser.add_argument('--nprobe', default='16,64',
                        help='comma-separated IVF nprobe values')
    parser.add_argument('--nlist', type=int, default=None,
                        help='IVF cells (default: default_nlist(N))')
    parser.add_argument('--repeats', type=int, default=100,
                        help='one-query searches timed per kind')
    parser.add_argument('--max-seconds', type=float, default=5.0,
                        help='time budget per kind for the repeats')
    parser.add_argument('--dim', type=int, default=512)
    parser.add_argument('--images-per-id', type=int, default=10)
    parser.add_argument('--rank', type=int, default=64,
                        help='dimension of the subspace of the centres')
    parser.add_argument('--noise', type=float, default=1.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads, which FAISS follows '
                        '(default: torch.get_num_threads())')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [parse_size(s) for s in args.sizes.split(',') if s.strip()]
    args.nprobe = [int(p) for p in args.nprobe.split(',') if p.strip()]

    import faiss
    print(f'{platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} CPUs, torch {torch.__version__} '
          f'({torch.get_num_threads()} threads), faiss {faiss.__version__}, '
          f'numpy {np.__version__}')
    print(f'{args.dim}-d float32 unit vectors, {args.images_per_id} '
          f'images per identity, centres of rank {args.rank}, noise '
          f'{args.noise}; {args.queries} queries, top-{TOPK}; IVF nlist/'
          'nprobe in the kind column\n')
    print_header()
    for size in sizes:
        print_rows(size, run_size(size, args))


if __name__ == '__main__':
    main()
