"""A search page in the browser: type a description, see the ranked
gallery.

``python tools/webui.py CONFIG CHECKPOINT --gallery DIR_OR_FEATURES
[--port 7860]`` encodes the gallery once (reusing the validated feature
cache, see ``--cache-dir``), then serves a Gradio page at
http://127.0.0.1:7860 that answers each query from the features. With
``--gallery-split test`` the gallery is the config dataset's split, whose
person ids are known (frames coloured per identity). Only this machine can
reach the page unless ``--host 0.0.0.0`` (every interface) or ``--share``
(a public link through Gradio's share servers) is given. Needs the
``webui`` extra: ``pip install -e ".[webui]"``. See docs/webui.md.
"""
import argparse

from mmengine.config import DictAction

from mmtpr.apis import INDEX_KINDS, TPRInferencer
from mmtpr.apis.search_app import (
    build_search_app,
    import_gradio,
    launch_search_app,
)
from mmtpr.utils.cli import add_debug_flag, run_tool
from mmtpr.utils.fileio import check_regular_file

LOCAL_HOSTS = ('127.0.0.1', 'localhost', '::1')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Serve a search page over a gallery of person images')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint (full or PETL-only)')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--gallery', metavar='DIR_OR_FILE',
                        help='a folder of images or a gallery feature file')
    parser.add_argument('--gallery-root', metavar='DIR',
                        help='where the images of a --gallery feature file '
                        "are (default: the root it records, if inside the "
                        "file's own folder)")
    source.add_argument('--gallery-split', choices=['train', 'val', 'test'],
                        help="the config dataset's split as the gallery "
                        '(person ids known)')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to bind (default: %(default)s, this '
                        'machine only; 0.0.0.0 serves every interface)')
    parser.add_argument('--port', type=int, default=7860,
                        help='port (default: %(default)s)')
    parser.add_argument('--share', action='store_true',
                        help="also open a public link through Gradio's "
                        'share servers (anyone with the link can search)')
    parser.add_argument('--topk', type=int, default=10,
                        help='initial top-k of the page (default: '
                        '%(default)s)')
    parser.add_argument('--example', action='append', metavar='TEXT',
                        help='an example description (repeat for more; '
                        'default: three built-in ones)')
    parser.add_argument('--index', choices=INDEX_KINDS, default='exact',
                        help='search index (default: exact brute force)')
    parser.add_argument('--cache-dir',
                        help='gallery feature cache (default: '
                        '$MMTPR_CACHE_DIR or ~/.cache/mmtpr/galleries); '
                        "'' disables it")
    parser.add_argument('--device', help='cpu or cuda (default: cuda if '
                        'available)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--domain', type=int, default=0,
                        help='domain prompt of a DM-Adapter model for the '
                        "gallery and the page's default (default: "
                        '%(default)s)')
    parser.add_argument('--skip-bad-images', action='store_true',
                        help='leave out (and report) gallery images that '
                        'cannot be read, instead of stopping')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    if not 0 < args.port < 65536:
        parser.error(f'--port must be in 1..65535, got {args.port}')
    return args


def build(args):
    """The inferencer, its gallery (encoded once) and the page."""
    import_gradio()  # fail before loading the model when it is missing
    check_regular_file(args.checkpoint, 'checkpoint')
    inferencer = TPRInferencer(
        args.config, args.checkpoint, device=args.device,
        batch_size=args.batch_size, cfg_options=args.cfg_options,
        cache_dir=args.cache_dir, domain=args.domain,
        on_bad_image='skip' if args.skip_bad_images else 'error')
    gallery = (inferencer.dataset_gallery(args.gallery_split)
               if args.gallery_split else
               inferencer.load_gallery(args.gallery, args.gallery_root))
    return build_search_app(inferencer, gallery, topk=args.topk,
                            examples=args.example, index=args.index)


def main(argv=None, block=True):
    args = parse_args(argv)
    app = build(args)
    if args.host not in LOCAL_HOSTS:
        print(f'note: serving on {args.host}: anyone who can reach this '
              'machine can search the gallery')
    if args.share:
        print('note: --share opens a public link: anyone with it can '
              'search the gallery')
    launch_search_app(app, args.host, args.port, args.share, block=block)
    return app


if __name__ == '__main__':
    run_tool(main)
