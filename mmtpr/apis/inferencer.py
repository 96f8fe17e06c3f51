"""Text-based person search with a trained model, from Python."""
import copy
import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.utils import ProgressBar

from mmtpr.registry import DATASETS, MODELS, TRANSFORMS
from mmtpr.utils.checkpoint import atomic_write_bytes
from mmtpr.utils.petl_checkpoint import load_petl_checkpoint

from .index import build_index

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif',
                    '.tiff')
GALLERY_FORMAT = 'mmtpr-gallery-v1'
# transforms of a test pipeline that work on captions, not images
_TEXT_STEPS = ('TokenizeCaption', 'MaskCaption', 'PackTPRInputs')


def list_images(folder: str) -> List[str]:
    """The image files under ``folder`` (recursively), sorted."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f"gallery folder '{folder}' not found")
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths.extend(
            osp.join(root, name) for name in sorted(files)
            if osp.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise ValueError(f"gallery folder '{folder}' holds no image "
                         f'({", ".join(IMAGE_EXTENSIONS)})')
    return paths


def _file_stats(paths: Sequence[str]) -> List[List[int]]:
    stats = []
    for path in paths:
        stat = os.stat(path)
        stats.append([stat.st_size, stat.st_mtime_ns])
    return stats


class Gallery:
    """Normalised image features with their image paths (and person ids).

    Args:
        features (Tensor): (N, D) L2-normalised float32 features.
        paths (list[str]): the N image paths.
        pids (list[int], optional): their person ids, when known.
        model_id (str): the identity of the model that computed the
            features (see :attr:`TPRInferencer.model_id`).
        stats (list, optional): (size, mtime) of each image when encoded,
            to tell whether a cache is still valid.
    """

    def __init__(self,
                 features: torch.Tensor,
                 paths: Sequence[str],
                 pids: Optional[Sequence[int]] = None,
                 model_id: str = '',
                 stats: Optional[Sequence[Sequence[int]]] = None) -> None:
        if features.dim() != 2 or features.shape[0] != len(paths):
            raise ValueError(f'features must be (N, D) with N = {len(paths)}'
                             f' paths, got {tuple(features.shape)}')
        if pids is not None and len(pids) != len(paths):
            raise ValueError(f'{len(pids)} pids for {len(paths)} images')
        self.features = features.float().contiguous()
        self.paths = list(paths)
        self.pids = None if pids is None else [int(p) for p in pids]
        self.model_id = model_id
        self.stats = None if stats is None else [list(s) for s in stats]
        self._indexes: Dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def index(self, kind: str = 'exact', **options):
        """The search index of ``kind`` over the features (built once per
        kind and options)."""
        key = json.dumps([kind, sorted(options.items())], default=str)
        if key not in self._indexes:
            self._indexes[key] = build_index(self.features, kind=kind,
                                             **options)
        return self._indexes[key]

    def save(self, path: str) -> str:
        """Write the gallery (features, paths, pids, model identity) to
        ``path`` atomically; returns the path."""
        import io
        buffer = io.BytesIO()
        torch.save(
            dict(format=GALLERY_FORMAT, features=self.features,
                 paths=self.paths, pids=self.pids, model_id=self.model_id,
                 stats=self.stats), buffer)
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        atomic_write_bytes(buffer.getvalue(), path)
        return path

    @classmethod
    def load(cls, path: str) -> 'Gallery':
        """Read a gallery written by :meth:`save`."""
        if not osp.isfile(path):
            raise FileNotFoundError(f"gallery feature file '{path}' not "
                                    'found')
        try:
            data = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as err:
            raise ValueError(f"'{path}' is not a readable gallery feature "
                             f'file ({type(err).__name__}: {err})') from err
        if not isinstance(data, dict) or data.get('format') != \
                GALLERY_FORMAT:
            raise ValueError(f"'{path}' is not an mmtpr gallery feature "
                             f'file (expected format {GALLERY_FORMAT})')
        return cls(data['features'], data['paths'], data['pids'],
                   data['model_id'], data['stats'])


# sha256 of files by (path, size, mtime): a checkpoint is hashed once
_DIGESTS: Dict[tuple, str] = {}


def _digest_file(path: str) -> str:
    """sha256 of a file's content, cached by (path, size, mtime)."""
    stat = os.stat(path)
    key = (osp.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 22), b''):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


class TPRInferencer:
    """Encode images and captions with a trained model and search galleries.

    Built from a config and a checkpoint (a full one, or a PETL-only one
    that is loaded over the pretrained CLIP named by the config's
    ``model.backbone.pretrained``); the images go through the config's test
    pipeline (loading and resizing; the model's data preprocessor
    normalises them) and the captions through its tokenizer settings.
    Features are L2-normalised, so scores are cosine similarities.

    A gallery (see :meth:`load_gallery`) is a folder of images, a dataset
    (its images and person ids), a saved feature file, or a
    :class:`Gallery`. The features of a folder or a dataset are cached on
    disk (``cache_dir``) together with the model's identity
    (:attr:`model_id`: the checkpoint's content and the model config) and
    the image list with each file's size and modification time; the cache
    is reused only when both match, and recomputed otherwise.

    Args:
        config (str | Config): the config file (or a loaded config).
        checkpoint (str, optional): the checkpoint. None keeps the weights
            the config builds (e.g. the pretrained CLIP alone).
        device (str, optional): None picks 'cuda' when available, else
            'cpu'.
        batch_size (int): images / captions encoded at a time.
            Defaults to 32.
        cfg_options (dict, optional): config overrides, as
            ``--cfg-options``. Defaults to None.
        cache_dir (str, optional): where gallery features are cached.
            None means ``$MMTPR_CACHE_DIR`` or ``~/.cache/mmtpr/galleries``;
            '' disables the cache.
        domain (int): the domain index for domain-aware routers
            (DM-Adapter with several domains). Defaults to 0.
        show_progress (bool): progress bars while encoding. Defaults to
            True.

    Example:
        >>> from mmtpr.apis import TPRInferencer
        >>> inferencer = TPRInferencer(
        ...     'configs/up_person/clip_b16_cuhk.py',
        ...     'work_dirs/clip_b16_cuhk/best_tpr_R1_epoch_50.pth')
        >>> results = inferencer.search(
        ...     'a woman in a red coat with a black bag', 'my_gallery/',
        ...     topk=5)
        >>> results[0]['paths'], results[0]['scores']
    """

    def __init__(self,
                 config: Union[str, Config],
                 checkpoint: Optional[str] = None,
                 device: Optional[str] = None,
                 batch_size: int = 32,
                 cfg_options: Optional[dict] = None,
                 cache_dir: Optional[str] = None,
                 domain: int = 0,
                 show_progress: bool = True) -> None:
        cfg = (Config.fromfile(config) if isinstance(config, str) else
               copy.deepcopy(config))
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        self.cfg = cfg
        init_default_scope(cfg.get('default_scope', 'mmtpr'))
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.batch_size = int(batch_size)
        self.domain = int(domain)
        self.show_progress = show_progress
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.device = torch.device(device)

        self.model = MODELS.build(cfg.model)
        self.checkpoint = checkpoint
        if checkpoint is not None:
            load_petl_checkpoint(self.model, checkpoint)
        self.model.to(self.device).eval()
        self.model_id = self._model_id()

        pipeline = self._test_pipeline(cfg)
        self.image_pipeline = Compose([
            TRANSFORMS.build(step) for step in pipeline
            if step['type'] not in _TEXT_STEPS
        ])
        tokenize = [step for step in pipeline
                    if step['type'] == 'TokenizeCaption']
        tokenize = dict(tokenize[0]) if tokenize else dict(
            type='TokenizeCaption',
            context_length=self.model.backbone.context_length)
        self.tokenizer = TRANSFORMS.build(tokenize)

        if cache_dir is None:
            cache_dir = os.environ.get('MMTPR_CACHE_DIR') or osp.join(
                osp.expanduser('~'), '.cache', 'mmtpr', 'galleries')
        self.cache_dir = cache_dir

    # -- construction helpers ------------------------------------------------
    @staticmethod
    def _test_pipeline(cfg: Config) -> List[dict]:
        loader = cfg.get('test_dataloader') or {}
        dataset = loader.get('dataset') or {}
        pipeline = dataset.get('pipeline') or cfg.get('test_pipeline')
        if not pipeline:
            raise ValueError('the config has no test pipeline '
                             '(test_dataloader.dataset.pipeline)')
        return [dict(step) for step in pipeline]

    def _model_id(self) -> str:
        """Identity of the model: the checkpoint's content, the model
        config and the pretrained file it loads (path, size, mtime)."""
        parts = [self.cfg.model.to_dict() if hasattr(self.cfg.model,
                                                     'to_dict')
                 else dict(self.cfg.model)]
        if self.checkpoint is not None:
            parts.append(_digest_file(self.checkpoint))
        pretrained = self.cfg.model.get('backbone', {}).get('pretrained')
        if isinstance(pretrained, str) and osp.isfile(pretrained):
            stat = os.stat(pretrained)
            parts.append([osp.abspath(pretrained), stat.st_size,
                          stat.st_mtime_ns])
        text = json.dumps(parts, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def _progress(self, total: int) -> Optional[ProgressBar]:
        if self.show_progress and total > self.batch_size:
            return ProgressBar(total)
        return None

    def _domains(self, num: int) -> Optional[torch.Tensor]:
        if self.domain == 0:
            return None
        return torch.full((num, ), self.domain, dtype=torch.long,
                          device=self.device)

    # -- encoding ------------------------------------------------------------
    def _load_image(self, path: str) -> torch.Tensor:
        results = self.image_pipeline(dict(img_path=path))
        if results is None or results.get('img') is None:
            raise ValueError(f"cannot read image '{path}'")
        img = results['img']
        if img.ndim == 2:
            img = img[..., None].repeat(3, axis=2)
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

    def _encode(self, items: list, batch_size: Optional[int],
                encode_batch) -> torch.Tensor:
        """Run ``encode_batch`` over ``items`` in batches, with a progress
        bar; returns the L2-normalised float32 features on the CPU."""
        batch_size = batch_size or self.batch_size
        progress = self._progress(len(items))
        feats = []
        with torch.no_grad():
            for start in range(0, len(items), batch_size):
                chunk = items[start:start + batch_size]
                out = encode_batch(chunk, self._domains(len(chunk)))
                feats.append(F.normalize(out.float(), dim=-1).cpu())
                if progress is not None:
                    progress.update(len(chunk))
        if progress is not None:
            print()
        return torch.cat(feats)

    def _encode_image_batch(self, paths: List[str],
                            domains: Optional[torch.Tensor]) -> torch.Tensor:
        batch = torch.stack([self._load_image(p) for p in paths])
        batch = self.model.data_preprocessor.normalize_images(
            batch.to(self.device))
        return self.model.backbone.encode_image(batch, domains)

    def _encode_text_batch(self, texts: List[str],
                           domains: Optional[torch.Tensor]) -> torch.Tensor:
        tokens = self.tokenizer(dict(captions=texts))['text']
        tokens = torch.as_tensor(np.asarray(tokens), dtype=torch.long,
                                 device=self.device)
        return self.model.backbone.encode_text(tokens, domains)

    def encode_images(self, images: Union[str, Sequence[str]],
                      batch_size: Optional[int] = None) -> torch.Tensor:
        """Encode images: a folder (all images under it, sorted) or a list
        of paths. Returns (N, D) L2-normalised float32 features on the
        CPU."""
        paths = list_images(images) if isinstance(images, str) else list(
            images)
        if not paths:
            raise ValueError('no image to encode')
        return self._encode(paths, batch_size, self._encode_image_batch)

    def encode_texts(self, texts: Union[str, Sequence[str]],
                     batch_size: Optional[int] = None) -> torch.Tensor:
        """Encode captions. Returns (N, D) L2-normalised float32 features on
        the CPU."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) and t.strip()
                                for t in texts):
            raise ValueError('texts must be non-empty strings, got '
                             f'{texts!r}')
        return self._encode(texts, batch_size, self._encode_text_batch)

    # -- galleries -----------------------------------------------------------
    def _cache_path(self, key: str) -> str:
        name = hashlib.sha1(key.encode()).hexdigest()[:20]
        return osp.join(self.cache_dir, f'{name}.pth')

    def _cached(self, key: str, paths: List[str],
                pids: Optional[List[int]]) -> Gallery:
        """Features of ``paths`` from the cache when valid, else encoded
        (and cached)."""
        stats = _file_stats(paths)
        cache = self._cache_path(key) if self.cache_dir else None
        if cache is not None and osp.isfile(cache):
            try:
                cached = Gallery.load(cache)
            except (ValueError, KeyError) as err:
                print_log(f'ignoring unreadable gallery cache {cache}: '
                          f'{err}', logger='current')
            else:
                if (cached.model_id == self.model_id
                        and cached.paths == paths and cached.stats == stats):
                    print_log(f'gallery: reusing the cached features of '
                              f'{len(paths)} images ({cache})',
                              logger='current')
                    cached.pids = pids
                    return cached
                reason = ('another model or checkpoint'
                          if cached.model_id != self.model_id else
                          'the images changed')
                print_log(f'gallery cache {cache} is stale ({reason}): '
                          're-encoding', logger='current')
        print_log(f'gallery: encoding {len(paths)} images',
                  logger='current')
        gallery = Gallery(self.encode_images(paths), paths, pids,
                          self.model_id, stats)
        if cache is not None:
            gallery.save(cache)
        return gallery

    def load_gallery(self, gallery: Union[str, dict, Gallery]) -> Gallery:
        """Turn ``gallery`` into a :class:`Gallery`.

        Args:
            gallery (str | dict | Gallery): a folder of images; a feature
                file written by :meth:`Gallery.save` (``.pth``), which must
                come from this model (same :attr:`model_id`); a dataset
                config (e.g. ``dict(type='CUHKPEDES', data_root=...,
                split='test')``), whose images and person ids are used; or
                a :class:`Gallery`.
        """
        if isinstance(gallery, Gallery):
            return gallery
        if isinstance(gallery, dict):
            return self._dataset_gallery(gallery)
        if not isinstance(gallery, str):
            raise TypeError('gallery must be a folder, a feature file, a '
                            f'dataset config or a Gallery, got '
                            f'{type(gallery).__name__}')
        if osp.isdir(gallery):
            paths = list_images(gallery)
            return self._cached(f'folder:{osp.abspath(gallery)}', paths,
                                None)
        if osp.isfile(gallery):
            loaded = Gallery.load(gallery)
            if loaded.model_id != self.model_id:
                raise ValueError(
                    f"gallery feature file '{gallery}' was computed by "
                    'another model or checkpoint; encode the images again '
                    '(pass their folder) with this one')
            return loaded
        raise FileNotFoundError(f"gallery '{gallery}' is neither a folder "
                                'nor a feature file')

    def _dataset_gallery(self, dataset_cfg: dict) -> Gallery:
        dataset_cfg = dict(dataset_cfg, pipeline=[], test_mode=True)
        dataset = DATASETS.build(dataset_cfg)
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        paths = [info['img_path'] for info in infos]
        pids = [int(info['pid']) for info in infos]
        key = f'dataset:{json.dumps(dataset_cfg, sort_keys=True, default=str)}'
        return self._cached(key, paths, pids)

    def dataset_gallery(self, split: str = 'test') -> Gallery:
        """The gallery of the config's ``{split}_dataloader`` dataset."""
        loader = self.cfg.get(f'{split}_dataloader')
        if not loader:
            raise ValueError(f'the config has no {split}_dataloader')
        return self._dataset_gallery(dict(loader['dataset']))

    # -- search --------------------------------------------------------------
    def search(self,
               query: Union[str, Sequence[str]],
               gallery: Union[str, dict, Gallery],
               topk: int = 10,
               index: str = 'exact',
               **index_options) -> List[Dict[str, Any]]:
        """Rank the gallery's images for each query text.

        Args:
            query (str | Sequence[str]): one or several descriptions.
            gallery: see :meth:`load_gallery`. Pass a loaded
                :class:`Gallery` to search it repeatedly: its indexes are
                built once and kept with it.
            topk (int): images returned per query. Defaults to 10.
            index (str): 'exact' (brute force, the default and the
                reference), 'faiss-flat' (exact, FAISS) or 'faiss-ivf'
                (approximate, for very large galleries); see
                :func:`mmtpr.apis.build_index`.
            **index_options: options of the index (e.g. ``nprobe``).

        Returns:
            list[dict]: one per query, with ``query``, ``indices`` (gallery
            rows, best first), ``paths``, ``scores`` (cosine similarities)
            and ``pids`` (None when the gallery's person ids are unknown).
        """
        queries = [query] if isinstance(query, str) else list(query)
        gallery = self.load_gallery(gallery)
        feats = self.encode_texts(queries)
        scores, indices = gallery.index(index, **index_options).search(
            feats, topk)
        results = []
        for q, text in enumerate(queries):
            rows = [int(i) for i in indices[q] if int(i) >= 0]
            results.append(
                dict(query=text,
                     indices=rows,
                     paths=[gallery.paths[i] for i in rows],
                     scores=[float(s) for s in scores[q][:len(rows)]],
                     pids=None if gallery.pids is None else
                     [gallery.pids[i] for i in rows]))
        return results
