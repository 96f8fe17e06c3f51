"""Export a trained model as one self-contained inference checkpoint.

``python tools/export.py CONFIG CHECKPOINT --out DIR [--onnx]
[--cfg-options ...]``

Merges what can be merged (KV-LoRA into the attention's in-projection),
writes ``DIR/model.pth`` and ``DIR/config.py`` (no pretrained CLIP file
needed) and checks that the export gives the trained model's features;
``--onnx`` also writes the image and text encoders as ONNX graphs, checked
with ONNX Runtime (``DIR/image_encoder.onnx``, ``DIR/text_encoder.onnx``,
``DIR/onnx.json``); see :mod:`mmtpr.apis.export`.
"""
import argparse

from mmengine.config import DictAction

from mmtpr.apis.export import export_onnx, export_pytorch
from mmtpr.utils.cli import add_debug_flag, run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Merge what can be merged and write a self-contained '
        'inference checkpoint and config')
    parser.add_argument('config', help='the training config')
    parser.add_argument('checkpoint',
                        help='a checkpoint of that config (full or '
                        'PETL-only)')
    parser.add_argument('--out', required=True, metavar='DIR',
                        help='where model.pth and config.py are written')
    parser.add_argument('--no-merge', action='store_true',
                        help='keep every technique as it is (still '
                        'self-contained)')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip reloading the export and comparing '
                        'features')
    parser.add_argument(
        '--atol', type=float, default=None,
        help='feature tolerance of the verification (torch.allclose atol '
        'and rtol); default 1e-5, or 1e-2 with a half-precision '
        'frozen_dtype')
    parser.add_argument(
        '--onnx', action='store_true',
        help='also export both encoders to ONNX, checked with ONNX Runtime '
        '(needs pip install -e ".[onnx]")')
    parser.add_argument(
        '--onnx-atol', type=float, default=1e-4,
        help='largest feature difference between ONNX Runtime and PyTorch '
        '(default: %(default)s); graphs that differ more are not written')
    parser.add_argument(
        '--force', action='store_true',
        help='export a PETL-only checkpoint even if it was trained on other '
        'frozen weights than the pretrained CLIP of the config')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. '
        'model.backbone.pretrained=checkpoints/ViT-B-16.pt')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    meta = export_pytorch(args.config, args.checkpoint, args.out,
                          merge=not args.no_merge, check=not args.no_verify,
                          atol=args.atol, force=args.force,
                          cfg_options=args.cfg_options)
    if args.onnx:
        meta['onnx'] = export_onnx(args.out, atol=args.onnx_atol)
        meta['summary'] += meta['onnx']['summary']
    print('\n'.join(meta['summary']))
    return meta


if __name__ == '__main__':
    run_tool(main)
