"""Text-based person search with a trained model, from Python."""
import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log
from mmengine.utils import track_iter_progress

from mmtpr.datasets.transforms import CaptionTransform, PackTPRInputs
from mmtpr.models.petl.checkpoint import load_petl_checkpoint
from mmtpr.registry import MODELS, TRANSFORMS
from mmtpr.utils.config import load_config
from mmtpr.utils.errors import (
    ConfigError,
    DataError,
    MMTPRError,
)
from mmtpr.utils.fileio import sha256_file
from mmtpr.utils.model_record import model_record

from .encoders import ModelEncoder, OnnxEncoder
from .gallery import Gallery, list_images
from .gallery_loader import GalleryLike, GalleryLoader


class TPRInferencer(BaseInferencer):
    """Encode images and captions with a trained model and search galleries.

    An MMEngine inferencer: built from a config and a checkpoint (a full one,
    or a PETL-only one loaded over the pretrained CLIP that the config's
    ``model.backbone.pretrained`` names; loaded with ``weights_only=True``
    and strictly, see :func:`~mmtpr.models.petl.load_petl_checkpoint`).
    Images and captions go through the config's test pipeline, split by
    transform type (:class:`~mmtpr.datasets.transforms.CaptionTransform`),
    and through the model's own API (data preprocessor, ``mode='tensor'``).
    Features are L2-normalised, so scores are cosine similarities.

    ``inferencer(queries, gallery=..., topk=10, show_dir=None)`` returns
    ``dict(predictions=[...], visualization=[...])``, MMEngine's inferencer
    protocol; :meth:`search` returns the predictions alone.

    A gallery (see :meth:`load_gallery`) is a folder of images, a dataset
    config, a feature file or a :class:`Gallery`. Folder and dataset
    features are cached on disk, bound to the model (:attr:`model_id`), the
    image list and each image's size and modification time
    (:mod:`mmtpr.apis.gallery`); an invalid entry is re-encoded.

    Args:
        config (str | Config): the config file (or a loaded config).
        checkpoint (str, optional): the checkpoint. None keeps the weights
            the config builds (e.g. the pretrained CLIP alone).
        device (str, optional): None picks 'cuda' when available.
        batch_size (int): images / captions encoded at a time.
            Defaults to 32.
        cfg_options (dict, optional): config overrides. Defaults to None.
        cache_dir (str, optional): where gallery features are cached. None
            means ``$MMTPR_CACHE_DIR`` or ``~/.cache/mmtpr/galleries``; ''
            disables the cache.
        domain (int): the default domain for domain-aware routers
            (DM-Adapter with several domain prompts). Defaults to 0.
        show_progress (bool): progress bars while encoding. Defaults to
            True.
        on_bad_image (str): 'error' (default) stops at a gallery image that
            cannot be read; 'skip' leaves it out and reports it.
        load_strict (bool): refuse a checkpoint that does not fit the
            config. Defaults to True.
        backend (str): 'pytorch' (the model, the default) or
            'onnxruntime': the ONNX files of ``onnx_dir`` on the CPU,
            without building the model (no CLIP weights needed; the
            checkpoint is not read).
        onnx_dir (str, optional): the export folder of
            ``tools/export.py --onnx``; defaults to the checkpoint's folder.
        threads (int, optional): ONNX Runtime's intra-op threads.

    Example:
        >>> from mmtpr.apis import TPRInferencer
        >>> inferencer = TPRInferencer('configs/up_person/clip_b16_cuhk.py',
        ...                            'work_dirs/up_person/best.pth')
        >>> results = inferencer.search(
        ...     'a woman in a red coat with a black bag', 'my_gallery/',
        ...     topk=5)
        >>> results[0]['paths'], results[0]['scores']
    """

    preprocess_kwargs = {'domain'}
    forward_kwargs = {'gallery', 'topk', 'index', 'index_options'}
    visualize_kwargs = {'show_dir'}
    postprocess_kwargs: set = set()

    def __init__(self,
                 config: Union[str, Config],
                 checkpoint: Optional[str] = None,
                 device: Optional[str] = None,
                 batch_size: int = 32,
                 cfg_options: Optional[dict] = None,
                 cache_dir: Optional[str] = None,
                 domain: int = 0,
                 show_progress: bool = True,
                 on_bad_image: str = 'error',
                 load_strict: bool = True,
                 backend: str = 'pytorch',
                 onnx_dir: Optional[str] = None,
                 threads: Optional[int] = None) -> None:
        if isinstance(config, str):
            cfg = load_config(config, cfg_options)
        else:
            cfg = config.copy()
            if cfg_options:
                cfg.merge_from_dict(cfg_options)
        if batch_size < 1:
            raise ConfigError(f'batch_size must be >= 1, got {batch_size}')
        if on_bad_image not in ('error', 'skip'):
            raise ConfigError("on_bad_image must be 'error' or 'skip', got "
                              f'{on_bad_image!r}')
        self.batch_size, self.domain = int(batch_size), int(domain)
        self.on_bad_image, self.load_strict = on_bad_image, load_strict
        self.checkpoint, self.backend = checkpoint, backend
        if backend not in ('pytorch', 'onnxruntime'):
            raise ConfigError("backend must be 'pytorch' or 'onnxruntime', "
                              f'got {backend!r}')
        if device is None:
            device = 'cuda' if torch.cuda.is_available() and \
                backend == 'pytorch' else 'cpu'
        super().__init__(model=cfg, weights=checkpoint, device=device,
                         scope='mmtpr', show_progress=show_progress)
        if backend == 'onnxruntime':
            self.encoder = OnnxEncoder.beside(checkpoint, onnx_dir, self.cfg,
                                              device, threads)
        else:
            self.encoder = ModelEncoder(self.model)
        self.model_id = self._model_id()
        if cache_dir is None:
            cache_dir = os.environ.get('MMTPR_CACHE_DIR') or osp.join(
                osp.expanduser('~'), '.cache', 'mmtpr', 'galleries')
        self.cache_dir = cache_dir

    # -- BaseInferencer's construction steps --------------------------------
    def _init_model(self, cfg: Config, weights: Optional[str],
                    device: str = 'cpu') -> torch.nn.Module:
        """Build the model of ``cfg`` (a config is required: nothing is
        ever read from a checkpoint's stored config) and load ``weights``;
        None for the onnxruntime backend, which builds no model."""
        if not cfg.get('model'):
            raise ConfigError('TPRInferencer needs a config with a model')
        if self.backend == 'onnxruntime':
            return None
        model = MODELS.build(cfg.model)
        if weights is not None:
            load_petl_checkpoint(model, weights, strict=self.load_strict,
                                 record=model_record(cfg.model))
        return model.to(device).eval()

    def _init_pipeline(self, cfg: Config) -> Compose:
        """The captions' pipeline (for queries); the images' pipeline is
        :attr:`image_pipeline`. Both come from the test pipeline, split by
        transform type."""
        loader = cfg.get('test_dataloader') or {}
        steps = (loader.get('dataset') or {}).get('pipeline') or \
            cfg.get('test_pipeline')
        if not steps:
            raise ConfigError('the config has no test pipeline '
                              '(test_dataloader.dataset.pipeline)')
        built = [TRANSFORMS.build(dict(step)) for step in steps]
        self.image_pipeline = Compose(
            [t for t in built if not isinstance(t, CaptionTransform)])
        return Compose([t for t in built if isinstance(
            t, (CaptionTransform, PackTPRInputs))])

    def _init_collate(self, cfg: Config):
        return pseudo_collate

    def _init_visualizer(self, cfg: Config):
        from mmtpr.visualization import TPRVisualizer
        return TPRVisualizer.get_or_build(cfg.get('visualizer'))

    def _inputs_to_list(self, inputs) -> list:
        return [inputs] if isinstance(inputs, str) else list(inputs)

    def _model_id(self) -> str:
        """The model's identity: its config record, the checkpoint's
        content and the pretrained file it loads (path, size, mtime), or for
        the onnxruntime backend the ONNX files' digest, and the domain its
        galleries are encoded in (it routes their images)."""
        parts: List[Any] = [model_record(self.cfg.model),
                            ['domain', self.domain]]
        if self.backend == 'onnxruntime':
            parts.append(['onnxruntime', self.encoder.digest])
        elif self.checkpoint is not None:
            parts.append(sha256_file(self.checkpoint))
        pretrained = self.cfg.model.get('backbone', {}).get('pretrained')
        if self.backend == 'pytorch' and isinstance(pretrained, str) and \
                osp.isfile(pretrained):
            info = os.stat(pretrained)
            parts.append([osp.abspath(pretrained), info.st_size,
                          info.st_mtime_ns])
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    # -- encoding -------------------------------------------------------------
    def _batches(self, items: list, batch_size: Optional[int]) -> list:
        size = batch_size or self.batch_size
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        if self.show_progress and len(chunks) > 1:
            return list(track_iter_progress(chunks))
        return chunks

    def _image_sample(self, path: str, domain: int) -> Optional[dict]:
        try:
            return self.image_pipeline(dict(img_path=path, domain=domain))
        except MMTPRError as err:
            if self.on_bad_image == 'skip':
                print_log(f'skipping gallery image: {err}', logger='current')
                return None
            raise

    def _encode_paths(self, paths: Sequence[str],
                      batch_size: Optional[int] = None,
                      domain: Optional[int] = None
                      ) -> Tuple[torch.Tensor, List[str]]:
        """Features of the readable images of ``paths`` and those paths."""
        domain = self.domain if domain is None else int(domain)
        feats, kept = [], []
        for chunk in self._batches(list(paths), batch_size):
            samples = [(p, self._image_sample(p, domain)) for p in chunk]
            samples = [(p, s) for p, s in samples if s is not None]
            if not samples:
                continue
            batch = pseudo_collate([s for _, s in samples])
            feats.append(F.normalize(self.encoder.images(batch).float(),
                                     dim=-1).cpu())
            kept.extend(p for p, _ in samples)
        if not kept:
            raise DataError('no readable image to encode')
        return torch.cat(feats), kept

    def encode_images(self, images: Union[str, Sequence[str]],
                      batch_size: Optional[int] = None,
                      domain: Optional[int] = None) -> torch.Tensor:
        """Encode images (a folder, or a list of paths) into (N, D)
        L2-normalised float32 features on the CPU."""
        paths = list_images(images)[0] if isinstance(images, str) else \
            list(images)
        if not paths:
            raise DataError('no image to encode')
        feats, kept = self._encode_paths(paths, batch_size, domain)
        if len(kept) != len(paths):
            raise DataError(f'{len(paths) - len(kept)} of the images could '
                            'not be read')
        return feats

    def encode_texts(self, texts: Union[str, Sequence[str]],
                     batch_size: Optional[int] = None,
                     domain: Optional[int] = None) -> torch.Tensor:
        """Encode captions into (N, D) L2-normalised float32 features."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) and t.strip()
                                for t in texts):
            raise DataError('queries must be non-empty strings, got '
                            f'{texts!r}')
        domain = self.domain if domain is None else int(domain)
        feats = []
        size = batch_size or self.batch_size
        for start in range(0, len(texts), size):
            batch = pseudo_collate([
                self.pipeline(dict(captions=[t], domain=domain))
                for t in texts[start:start + size]])
            feats.append(F.normalize(self.encoder.texts(batch).float(),
                                     dim=-1).cpu())
        return torch.cat(feats)

    # -- galleries ------------------------------------------------------------
    @property
    def galleries(self) -> GalleryLoader:
        """Turns folders, feature files and dataset configs into galleries
        encoded by this model, through the cache."""
        return GalleryLoader(lambda paths: self._encode_paths(paths),
                             self.model_id, self.cache_dir, self.on_bad_image)

    def _cache_path(self, key: str) -> str:
        return self.galleries.cache_path(key)

    def load_gallery(self, gallery: GalleryLike,
                     root: Optional[str] = None) -> Gallery:
        """Turn ``gallery`` into a :class:`Gallery`: a folder of images, a
        feature file written by :meth:`Gallery.save` (it must come from
        this model: same :attr:`model_id`; ``root`` says where its images
        are, see :meth:`Gallery.load`), a dataset config (its images and
        person ids) or a :class:`Gallery`."""
        return self.galleries.load(gallery, root)

    def dataset_gallery(self, split: str = 'test') -> Gallery:
        """The gallery of the config's ``{split}_dataloader`` dataset."""
        loader = self.cfg.get(f'{split}_dataloader')
        if not loader:
            raise ConfigError(f'the config has no {split}_dataloader')
        return self.galleries.from_dataset(dict(loader['dataset']))

    # -- search ---------------------------------------------------------------
    def search(self,
               query: Union[str, Sequence[str]],
               gallery: GalleryLike,
               topk: int = 10,
               index: str = 'exact',
               domain: Optional[int] = None,
               **index_options) -> List[Dict[str, Any]]:
        """Rank the gallery's images for each query text.

        Args:
            query (str | Sequence[str]): one or several descriptions.
            gallery: see :meth:`load_gallery`. Pass a loaded
                :class:`Gallery` to search it repeatedly: its indexes are
                built once and kept with it.
            topk (int): images returned per query. Defaults to 10.
            index (str): 'exact' (brute force, the default and the
                reference), 'faiss-flat' or 'faiss-ivf'; see
                :func:`mmtpr.apis.build_index`.
            domain (int, optional): the queries' domain (default: the
                inferencer's).
            **index_options: options of the index (e.g. ``nprobe``).

        Returns:
            list[dict]: one per query: ``query``, ``indices`` (gallery rows,
            best first), ``paths``, ``scores`` (cosine similarities) and
            ``pids`` (None when the gallery's person ids are unknown).
        """
        queries = [query] if isinstance(query, str) else list(query)
        gallery = self.load_gallery(gallery)
        feats = self.encode_texts(queries, domain=domain)
        return self._rank(queries, feats, gallery, topk, index,
                          index_options)

    @staticmethod
    def _rank(queries: List[str], feats: torch.Tensor, gallery: Gallery,
              topk: int, index: str, options: dict) -> List[dict]:
        scores, indices = gallery.index(index, **options).search(feats, topk)
        paths, results = gallery.paths, []
        for q, text in enumerate(queries):
            rows = [int(i) for i in indices[q] if int(i) >= 0]
            results.append(dict(
                query=text, indices=rows, paths=[paths[i] for i in rows],
                scores=[float(s) for s in scores[q][:len(rows)]],
                pids=None if gallery.pids is None else
                [gallery.pids[i] for i in rows]))
        return results

    # -- MMEngine's inferencer protocol ---------------------------------------
    def preprocess(self, inputs: list, batch_size: int = 1,
                   domain: Optional[int] = None):
        """Chunks of query texts (searched by :meth:`forward`)."""
        for start in range(0, len(inputs), batch_size):
            yield dict(texts=inputs[start:start + batch_size], domain=domain)

    def forward(self, inputs: dict, gallery: Optional[GalleryLike] = None,
                topk: int = 10, index: str = 'exact',
                index_options: Optional[dict] = None) -> List[dict]:
        """Search ``gallery`` for a chunk of queries."""
        if gallery is None:
            raise ConfigError('pass gallery=... (a folder, a feature file, a '
                              'dataset config or a Gallery)')
        gallery = self.load_gallery(gallery)
        feats = self.encode_texts(inputs['texts'], domain=inputs['domain'])
        return self._rank(inputs['texts'], feats, gallery, topk, index,
                          index_options or {})

    def visualize(self, inputs: list, preds: List[dict],
                  show_dir: Optional[str] = None) -> Optional[List[str]]:
        """Draw each query above its ranked images into ``show_dir``."""
        if show_dir is None:
            return None
        return [self.visualizer.draw_text_query(
            pred['query'], pred['paths'], pred['scores'],
            out_file=osp.join(show_dir, f'query_{i:03d}.png'),
            name=f'query_{i:03d}') for i, pred in enumerate(preds)]

    def postprocess(self, preds: List[dict], visualization=None,
                    return_datasample: bool = False) -> dict:
        return dict(predictions=preds, visualization=visualization)
