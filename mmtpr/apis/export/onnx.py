"""Export the two towers of a model to ONNX, checked with ONNX Runtime.

:func:`export_onnx` (``tools/export.py ... --onnx``) reads the export that
:func:`~mmtpr.apis.export.export_pytorch` wrote (``DIR/config.py``,
``DIR/model.pth``: KV-LoRA already merged) and writes beside it:

- ``DIR/image_encoder.onnx``: normalised float32 images ``images`` (B, 3,
  H, W) -> ``features`` (B, D);
- ``DIR/text_encoder.onnx``: int64 token ids ``texts`` (T, L) ->
  ``features`` (T, D);
- ``DIR/onnx.json``: what the ONNX Runtime backend needs (input names,
  image size, context length, domains) and each file's SHA-256.

The batch size is dynamic. A model whose routers know several domains
(DM-Adapter trained on several domain prompts) takes a second input,
``domains`` (B,) int64, so that a deployed model routes by domain.
Prefixes, adapters and mixtures of adapters are traced as they run; a
mixture's top-k becomes ONNX ``TopK``, which orders ties by the lower
index as mmtpr's stable sort does (:meth:`MixtureOfAdapters.route`).

Both graphs are checked before anything is written: ONNX Runtime runs them
at batch 1 and 3 on random inputs (every domain used) and their features
must equal the PyTorch model's within ``atol``. A graph that fails is
refused and no file is left behind. Files are written atomically, the
metadata last.
"""
import contextlib
import hashlib
import io
import json
import os
import os.path as osp
import warnings
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config

import mmtpr
from mmtpr.registry import MODELS
from mmtpr.utils.checkpoint import load_state_dict_file
from mmtpr.utils.errors import CheckpointError, ConfigError, MissingFileError
from mmtpr.utils.fileio import atomic_write_bytes, read_bounded
from mmtpr.utils.model_record import META_KEY, model_record

from .pytorch import random_inputs

OPSET = 17
FORMAT = 'mmtpr-onnx'
META_FILE = 'onnx.json'
FILES = {'image': 'image_encoder.onnx', 'text': 'text_encoder.onnx'}
INPUTS = {'image': 'images', 'text': 'texts'}
CHECK_BATCHES = (1, 3)
INSTALL_HINT = 'pip install -e ".[onnx]"'


def require(module: str):
    """Import ``module`` ('onnx' or 'onnxruntime') or say how to install
    it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f'the ONNX export and the onnxruntime backend need '
                          f'the {module!r} package: {INSTALL_HINT}') from None


class TowerGraph(nn.Module):
    """One tower of an :class:`OpenCLIPBackbone` as a module of tensors
    alone, to be traced: ``(inputs[, domains]) -> features``.

    Args:
        backbone (nn.Module): the backbone.
        tower (str): 'image' or 'text'.
    """

    def __init__(self, backbone: nn.Module, tower: str) -> None:
        super().__init__()
        self.backbone, self.tower = backbone, tower

    def forward(self, inputs: torch.Tensor,
                domains: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.tower == 'image':
            return self.backbone.encode_image(inputs, domains)
        return self.backbone.encode_text(inputs, domains)


def domain_input(backbone: nn.Module) -> bool:
    """Whether the graphs of ``backbone`` take ``domains``: its routers
    know several domains."""
    return backbone.num_domains > 1


@contextlib.contextmanager
def _tracing() -> Iterator[None]:
    # nn.MultiheadAttention's fused fast path (frozen blocks in eval mode)
    # has no ONNX export; its composite path computes the same.
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            warnings.filterwarnings('ignore', message='.*legacy TorchScript')
            warnings.filterwarnings('ignore', category=DeprecationWarning,
                                    module=r'torch\.onnx')
            warnings.filterwarnings('ignore', message='.*aten::index')
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def export_tower(backbone: nn.Module, tower: str, example: torch.Tensor,
                 domains: Optional[torch.Tensor] = None) -> bytes:
    """Trace one tower into ONNX bytes (dynamic batch, opset 17)."""
    require('onnx')
    names = [INPUTS[tower]] + ([] if domains is None else ['domains'])
    args = (example, ) if domains is None else (example, domains)
    buffer = io.BytesIO()
    graph = TowerGraph(backbone, tower).eval()
    with _tracing():
        torch.onnx.export(
            graph, args, buffer, dynamo=False, opset_version=OPSET,
            input_names=names, output_names=['features'],
            dynamic_axes={n: {0: 'batch'} for n in names + ['features']})
    return buffer.getvalue()


def ort_session(model: Union[str, bytes], threads: Optional[int] = None):
    """An ``onnxruntime.InferenceSession`` on the CPU; ``threads`` sets
    ``intra_op_num_threads`` (None: ONNX Runtime's default)."""
    ort = require('onnxruntime')
    options = ort.SessionOptions()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f'threads must be >= 1, got {threads}')
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(model, options,
                                providers=['CPUExecutionProvider'])


def example_inputs(model: nn.Module, num: int
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random images, captions of several lengths and every domain."""
    images, texts = random_inputs(model, num)
    domains = torch.arange(num) % model.backbone.num_domains
    return images, texts, domains


def check_tower(model: nn.Module, tower: str, session, atol: float,
                batches: Tuple[int, ...] = CHECK_BATCHES) -> float:
    """Run ``session`` at each batch size and compare its features with
    the model's; returns the largest absolute difference.

    Raises:
        CheckpointError: a difference is larger than ``atol``.
    """
    backbone = model.backbone
    images, texts, domains = example_inputs(model, max(batches))
    example = images if tower == 'image' else texts
    use_domains = domain_input(backbone)
    graph, worst = TowerGraph(backbone, tower).eval(), 0.0
    for num in batches:
        feed = {INPUTS[tower]: example[:num].numpy()}
        if use_domains:
            feed['domains'] = domains[:num].numpy()
        with torch.no_grad():
            expected = graph(example[:num], domains[:num]
                             if use_domains else None).float().numpy()
        got = session.run(['features'], feed)[0]
        diff = float(np.abs(got - expected).max()) if got.shape == \
            expected.shape else float('inf')
        worst = max(worst, diff)
        if not diff <= atol:
            raise CheckpointError(
                f'ONNX Runtime gives other {tower} features than PyTorch at '
                f'batch {num}: max |diff| {diff:.3g} > {atol:g} (shapes '
                f'{got.shape} and {expected.shape})')
    return worst


def _onnx_meta(backbone: nn.Module, digests: Dict[str, str],
               sizes: Dict[str, int], diffs: Dict[str, float], atol: float,
               record: Optional[dict]) -> dict:
    extra = ['domains'] if domain_input(backbone) else []
    meta = dict(
        format=FORMAT, format_version=1, mmtpr_version=mmtpr.__version__,
        torch_version=torch.__version__, opset=OPSET,
        image_size=list(backbone.image_size),
        context_length=backbone.context_length,
        embed_dim=backbone.embed_dim, num_domains=backbone.num_domains,
        checks_domains=any(len(m) for m in backbone._petl_modules.values()),
        files={t: dict(file=FILES[t], inputs=[INPUTS[t]] + extra,
                       sha256=digests[t], bytes=sizes[t]) for t in FILES},
        verified=dict(atol=atol, batch_sizes=list(CHECK_BATCHES), **diffs))
    if record is not None:
        meta[META_KEY] = record
    return meta


def _remove(paths: List[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def write_onnx(model: nn.Module, out_dir: str, atol: float = 1e-4,
               threads: Optional[int] = None,
               record: Optional[dict] = None) -> dict:
    """Export both towers of ``model`` into ``out_dir`` after checking
    them with ONNX Runtime (see the module docstring).

    Args:
        model (nn.Module): a float32 TPR retriever with an
            OpenCLIPBackbone, in eval mode (merge KV-LoRA before).
        out_dir (str): where the files go.
        atol (float): largest absolute feature difference allowed.
            Defaults to 1e-4.
        threads (int, optional): ONNX Runtime threads of the check.
        record (dict, optional): the model's config record, kept in the
            metadata so that the backend can refuse another config.

    Returns:
        dict: the metadata written to ``onnx.json``.
    """
    backbone = model.eval().backbone
    paths = [osp.join(out_dir, FILES[t]) for t in FILES]
    meta_path = osp.join(out_dir, META_FILE)
    # graphs of an earlier export would not be this model's: the folder
    # ends with a checked export or none
    _remove([meta_path] + paths)
    if getattr(backbone, 'frozen_dtype', None) is not None:
        raise ConfigError('the ONNX export is float32: export a model built '
                          'with model.backbone.frozen_dtype=None')
    images, texts, domains = example_inputs(model, 2)
    domains = domains if domain_input(backbone) else None
    graphs, diffs = {}, {}
    for tower, example in (('image', images), ('text', texts)):
        graphs[tower] = export_tower(backbone, tower, example, domains)
        session = ort_session(graphs[tower], threads)
        diffs[tower] = check_tower(model, tower, session, atol)
        del session
    meta = _onnx_meta(backbone, {t: hashlib.sha256(g).hexdigest()
                                 for t, g in graphs.items()},
                      {t: len(g) for t, g in graphs.items()}, diffs, atol,
                      record)
    try:
        for tower, path in zip(FILES, paths):
            atomic_write_bytes(graphs.pop(tower), path)
        atomic_write_bytes(json.dumps(meta, indent=2).encode(), meta_path)
    except BaseException:
        _remove(paths + [meta_path])
        raise
    return meta


def load_exported(out_dir: str) -> Tuple[Config, nn.Module]:
    """The model of ``DIR/config.py`` with ``DIR/model.pth`` loaded
    strictly (an export of :func:`export_pytorch`)."""
    config_path = osp.join(out_dir, 'config.py')
    model_path = osp.join(out_dir, 'model.pth')
    for path in (config_path, model_path):
        if not osp.isfile(path):
            raise MissingFileError(
                f"'{path}' does not exist: the ONNX export reads the "
                'export of tools/export.py (config.py and model.pth)')
    cfg = Config.fromfile(config_path)
    model = MODELS.build(cfg.model).eval()
    state_dict = load_state_dict_file(model_path)['state_dict']
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"'{model_path}' does not load strictly into the model of "
            f"'{config_path}' ({len(result.missing_keys)} missing, "
            f'{len(result.unexpected_keys)} unexpected keys)')
    return cfg, model


def export_onnx(out_dir: str, atol: float = 1e-4,
                threads: Optional[int] = None) -> dict:
    """Export the model exported into ``out_dir`` (``config.py`` and
    ``model.pth``) to ONNX beside it, checked with ONNX Runtime.

    Returns:
        dict: the metadata of :func:`write_onnx` plus ``summary`` (lines
        saying what was written and checked).
    """
    cfg, model = load_exported(out_dir)
    try:
        meta = write_onnx(model, out_dir, atol, threads,
                          model_record(cfg.model))
    except CheckpointError as err:
        raise CheckpointError(f'{err}\nNo ONNX file was written to '
                              f'{out_dir}.') from None
    lines = []
    for tower in FILES:
        info = meta['files'][tower]
        lines.append(f"  onnx:   {osp.join(out_dir, info['file'])} "
                     f"({info['bytes'] / 2**20:.1f} MiB, inputs "
                     f"{', '.join(info['inputs'])})")
    verified = meta['verified']
    lines.append(f'  onnx verified with ONNX Runtime at batch 1 and 3: max '
                 f"|feature diff| image {verified['image']:.2g}, text "
                 f"{verified['text']:.2g} (tolerance {atol:g})")
    meta['summary'] = lines
    return meta


def read_onnx_meta(onnx_dir: str) -> dict:
    """The metadata of an ONNX export in ``onnx_dir``, checked."""
    path = osp.join(onnx_dir, META_FILE)
    if not osp.exists(path):
        raise MissingFileError(
            f"'{path}' does not exist: export the model with "
            '`python tools/export.py CONFIG CHECKPOINT --out DIR --onnx`')
    try:
        meta = json.loads(read_bounded(path, 1 << 20, 'ONNX metadata'))
    except ValueError as err:
        raise CheckpointError(f"'{path}' is not valid JSON: {err}") from None
    if not isinstance(meta, dict) or meta.get('format') != FORMAT or \
            meta.get('format_version') != 1:
        raise CheckpointError(f"'{path}' is not the metadata of an mmtpr "
                              'ONNX export (format_version 1)')
    return meta
