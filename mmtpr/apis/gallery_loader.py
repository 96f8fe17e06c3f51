"""Galleries encoded by one model: folders, feature files and dataset
configs turned into :class:`~mmtpr.apis.gallery.Gallery` objects, through
an on-disk cache bound to the model and to every image."""
import hashlib
import json
import os.path as osp
from typing import Callable, List, Optional, Tuple, Union

import torch
from mmengine.logging import print_log

from mmtpr.registry import DATASETS
from mmtpr.utils.errors import DataError, MissingFileError

from .gallery import Gallery, file_stats, list_images, read_cache

GalleryLike = Union[str, dict, Gallery]
EncodePaths = Callable[[List[str]], Tuple[torch.Tensor, List[str]]]


class GalleryLoader:
    """Builds the galleries of one model.

    Args:
        encode_paths (callable): ``paths -> (features, kept paths)``, the
            model's image encoder (unreadable images left out when the
            caller skips bad images).
        model_id (str): the model's identity; cache entries and feature
            files of another model are not used.
        cache_dir (str): where gallery features are cached; '' disables
            the cache.
        on_bad_image (str): 'error' or 'skip' (for unreadable entries of a
            folder).
    """

    def __init__(self, encode_paths: EncodePaths, model_id: str,
                 cache_dir: str, on_bad_image: str = 'error') -> None:
        self.encode_paths = encode_paths
        self.model_id = model_id
        self.cache_dir = cache_dir
        self.on_bad_image = on_bad_image

    def cache_path(self, key: str) -> str:
        """The cache file of ``key`` (a folder or a dataset) for this
        model."""
        name = hashlib.sha256(f'{self.model_id}:{key}'.encode()).hexdigest()
        return osp.join(self.cache_dir, f'{name[:24]}.pth')

    def cached(self, key: str, paths: List[str], root: str,
               pids: Optional[List[int]]) -> Gallery:
        """Features of ``paths`` from the cache when valid, else encoded
        (and cached)."""
        stats = file_stats(paths)
        cache = self.cache_path(key) if self.cache_dir else None
        if cache is not None:
            cached = read_cache(cache, self.model_id, paths, stats, root)
            if cached is not None:
                print_log(f'gallery: reusing the cached features of '
                          f'{len(paths)} images ({cache})', logger='current')
                cached.pids = pids
                return cached
        print_log(f'gallery: encoding {len(paths)} images', logger='current')
        feats, kept = self.encode_paths(paths)
        if len(kept) != len(paths):
            keep = set(kept)
            stats = [s for p, s in zip(paths, stats) if p in keep]
            pids = None if pids is None else [
                pid for p, pid in zip(paths, pids) if p in keep]
        gallery = Gallery(feats, kept, root, pids, self.model_id, stats)
        if cache is not None:
            try:
                gallery.save(cache)
            except OSError as err:
                print_log(f'gallery: not cached ({cache}: {err})',
                          logger='current')
        return gallery

    def load(self, gallery: GalleryLike,
             root: Optional[str] = None) -> Gallery:
        """A folder of images, a feature file of this model (its images
        under ``root``, see :meth:`Gallery.load`), a dataset config or a
        :class:`Gallery` as a :class:`Gallery`."""
        if isinstance(gallery, Gallery):
            return gallery
        if isinstance(gallery, dict):
            return self.from_dataset(gallery)
        if not isinstance(gallery, str):
            raise TypeError('gallery must be a folder, a feature file, a '
                            'dataset config or a Gallery, got '
                            f'{type(gallery).__name__}')
        if not osp.lexists(gallery):
            raise MissingFileError(f"gallery '{gallery}' is neither a folder "
                                   'nor a feature file: it does not exist')
        if osp.isdir(gallery):
            paths, skipped = list_images(gallery, self.on_bad_image)
            for path, reason in skipped:
                print_log(f'gallery: skipping {path}: {reason}',
                          logger='current')
            return self.cached(f'folder:{osp.abspath(gallery)}', paths,
                               gallery, None)
        loaded = Gallery.load(gallery, root)
        if loaded.model_id != self.model_id:
            raise DataError(
                f"gallery feature file '{gallery}' was computed by another "
                'model or checkpoint; encode the images again (pass their '
                'folder) with this one')
        return loaded

    def from_dataset(self, dataset_cfg: dict) -> Gallery:
        """The images and person ids of a dataset config."""
        dataset_cfg = dict(dataset_cfg, pipeline=[], test_mode=True)
        dataset = DATASETS.build(dataset_cfg)
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        root = dataset.data_prefix.get('img_path') or dataset.data_root
        key = f'dataset:{json.dumps(dataset_cfg, sort_keys=True, default=str)}'
        return self.cached(key, [info['img_path'] for info in infos], root,
                           [int(info['pid']) for info in infos])
