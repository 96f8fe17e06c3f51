"""Search a gallery of person images with a text description.

``python tools/retrieve.py CONFIG CHECKPOINT --gallery DIR --query "a man in
a blue shirt ..." --topk 10 [--out result.png]``

The gallery is a folder of images (searched recursively), a feature file
written by ``--save-features`` (or ``Gallery.save``), or, with
``--gallery-split test``, the test (or val) split of the config's dataset,
whose person ids are known. The ranking is printed; ``--out`` also writes a
picture of the query above its top-k images with their scores, framed
green (same person) or red (another person) when the person ids of the
gallery and of the query (``--query-pid``) are known. Gallery features are
cached (see ``--cache-dir``) and reused while the checkpoint and the images
are unchanged.

``--backend onnxruntime`` encodes with the ONNX export of ``tools/export.py
... --onnx`` (``--onnx-dir``, by default the checkpoint's folder) through
the same pipeline and tokenizer; the model is not built and the checkpoint
may be left out::

    python tools/retrieve.py exported/config.py --backend onnxruntime \
        --onnx-dir exported --gallery DIR --query "..."
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from mmtpr.apis import INDEX_KINDS, TPRInferencer
from mmtpr.utils.cli import add_debug_flag, run_tool
from mmtpr.utils.fileio import check_regular_file


def add_backend_options(parser):
    parser.add_argument('--backend', choices=['pytorch', 'onnxruntime'],
                        default='pytorch',
                        help='what encodes: the PyTorch model (default) or '
                        'its ONNX export on ONNX Runtime (CPU)')
    parser.add_argument('--onnx-dir', metavar='DIR',
                        help='the ONNX export of tools/export.py --onnx '
                        '(default: the folder of the checkpoint)')
    parser.add_argument('--threads', type=int,
                        help='ONNX Runtime intra-op threads (default: all '
                        'cores)')


def check_backend_options(parser, args):
    if args.checkpoint is None and (args.backend == 'pytorch'
                                    or args.onnx_dir is None):
        parser.error('the checkpoint is required, unless --backend '
                     'onnxruntime with --onnx-dir')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Rank a gallery of person images for a text query')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint (full or PETL-only); optional with '
                        '--backend onnxruntime and --onnx-dir')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--gallery', metavar='DIR_OR_FILE',
                        help='a folder of images or a gallery feature file')
    source.add_argument('--gallery-split', choices=['train', 'val', 'test'],
                        help="the config dataset's split as the gallery")
    parser.add_argument('--query', required=True, nargs='+',
                        help='one or more descriptions (quote each)')
    parser.add_argument('--query-pid', type=int, nargs='+',
                        help='person id of each query (with --gallery-split'
                        '): frames matches green and others red')
    parser.add_argument('--topk', type=int, default=10,
                        help='images per query (default: %(default)s)')
    parser.add_argument('--out', metavar='PNG',
                        help='write a picture of the result: PNG for one '
                        'query, PNG_0, PNG_1, ... (before the extension) '
                        'for several')
    parser.add_argument('--index', choices=INDEX_KINDS, default='exact',
                        help='search index (default: exact brute force)')
    parser.add_argument('--nprobe', type=int,
                        help='cells probed by --index faiss-ivf')
    parser.add_argument('--save-features', metavar='FILE',
                        help='also save the gallery features to FILE (.pth)')
    parser.add_argument('--gallery-root', metavar='DIR',
                        help='where the images of a --gallery feature file '
                        "are (default: the root it records, if inside the "
                        "file's own folder)")
    parser.add_argument('--cache-dir',
                        help='gallery feature cache (default: '
                        '$MMTPR_CACHE_DIR or ~/.cache/mmtpr/galleries); '
                        "'' disables it")
    parser.add_argument('--device', help='cpu or cuda (default: cuda if '
                        'available)')
    parser.add_argument('--batch-size', type=int, default=32)
    add_backend_options(parser)
    parser.add_argument('--domain', type=int, default=0,
                        help='domain prompt of a DM-Adapter model trained '
                        'on several domains (default: %(default)s)')
    parser.add_argument('--skip-bad-images', action='store_true',
                        help='leave out (and report) gallery images that '
                        'cannot be read, instead of stopping')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    check_backend_options(parser, args)
    if args.query_pid is not None:
        if args.gallery_split is None:
            parser.error('--query-pid needs --gallery-split (a folder '
                         'gallery has no person ids)')
        if len(args.query_pid) != len(args.query):
            parser.error(f'{len(args.query_pid)} --query-pid for '
                         f'{len(args.query)} --query')
    return args


def out_path(out: str, index: int, total: int) -> str:
    if total == 1:
        return out
    root, ext = osp.splitext(out)
    return f'{root}_{index}{ext or ".png"}'


def main(argv=None):
    args = parse_args(argv)
    if args.checkpoint is not None:
        check_regular_file(args.checkpoint, 'checkpoint')
    inferencer = TPRInferencer(
        args.config, args.checkpoint, device=args.device,
        batch_size=args.batch_size, cfg_options=args.cfg_options,
        cache_dir=args.cache_dir, domain=args.domain,
        on_bad_image='skip' if args.skip_bad_images else 'error',
        backend=args.backend, onnx_dir=args.onnx_dir, threads=args.threads)
    gallery = (inferencer.dataset_gallery(args.gallery_split)
               if args.gallery_split else
               inferencer.load_gallery(args.gallery, args.gallery_root))
    if args.save_features:
        gallery.save(args.save_features)
        print(f'gallery features saved to {args.save_features}')
    options = {} if args.nprobe is None else dict(nprobe=args.nprobe)
    results = inferencer.search(args.query, gallery, topk=args.topk,
                                index=args.index, **options)
    for q, result in enumerate(results):
        query_pid = None if args.query_pid is None else args.query_pid[q]
        print(f'\nquery: {result["query"]}'
              + ('' if query_pid is None else f' (person {query_pid})'))
        matches = None
        if query_pid is not None and result['pids'] is not None:
            matches = [pid == query_pid for pid in result['pids']]
        for rank, (path, score) in enumerate(
                zip(result['paths'], result['scores'])):
            pid = '' if result['pids'] is None else \
                f'  person {result["pids"][rank]}'
            mark = '' if matches is None else (
                '  match' if matches[rank] else '  -')
            print(f'{rank + 1:4d}  {score:.4f}  {path}{pid}{mark}')
        if args.out:
            path = out_path(args.out, q, len(results))
            picture = inferencer.visualizer.draw_text_query(
                result['query'], result['paths'], result['scores'], matches,
                name=f'query_{q}', out_file=path)
            print(f'picture written to {path} ({picture.shape[1]}x'
                  f'{picture.shape[0]})')
    return results


if __name__ == '__main__':
    run_tool(main)
