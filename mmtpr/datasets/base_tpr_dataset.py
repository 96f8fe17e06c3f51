"""The common base of text-based person retrieval datasets: splits, items,
id remapping and the build-time image check."""
import logging
import os.path as osp
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.utils import track_iter_progress

from mmtpr.utils.errors import MissingFileError
from mmtpr.utils.fileio import is_within
from mmtpr.utils.image_io import check_image

from .annotation import AnnotationError, AnnotationRecordsMixin

SPLITS = ('train', 'val', 'test')
IMAGE_CHECKS = ('header', 'decode', 'none')
# Checking more images than this shows a progress bar.
_PROGRESS_MIN = 2000
# How many skipped records the log lists one by one.
_MAX_LISTED = 5


class BaseTPRDataset(AnnotationRecordsMixin, BaseDataset):
    """Base class of text-based person retrieval datasets.

    The annotation is one JSON file holding a list of records, one per image,
    each with a split, a person id, an image path and its captions.
    Subclasses only say how to read a record (:meth:`parse_record`); the
    rest is shared:

    - ``test_mode=False`` (training): one item per (image, caption) pair,
      ``dict(img_path, caption, pid, person_id, image_id)``.
    - ``test_mode=True`` (val / test): one item per image with all its
      captions, ``dict(img_path, captions, pid, person_id, image_id)``, so
      that the metric can rank every caption against every image.

    ``pid`` is the person id remapped explicitly (sorted unique raw ids ->
    0..N-1) within the split, ``person_id`` the raw id of the file and
    ``image_id`` the running index of the image within the split.

    Args:
        data_root (str): the dataset folder.
        split (str): 'train', 'val' or 'test'. Defaults to 'train'.
        ann_file (str): annotation file, relative to ``data_root``.
        data_prefix (dict): ``dict(img_path='imgs')``, the image folder
            relative to ``data_root``.
        test_mode (bool, optional): item layout (see above). None means
            ``split != 'train'``. Defaults to None.
        pipeline (list): transforms. Defaults to ().
        domain (int): domain index written into every item, for
            domain-aware routers when several datasets are trained together
            (DM-Adapter with ``num_domains > 1``). Defaults to 0.
        pid_offset (int): added to every remapped ``pid``, so that
            concatenated datasets do not share person ids. Defaults to 0.
        check_images (str): how the images of the split are checked when
            the dataset is built, so that a missing or broken file fails at
            once rather than an hour into training: 'header' (default)
            opens every image and reads its header (format and size;
            about 0.1 ms per image), 'decode' decodes every image (slow,
            catches truncated files), 'none' checks nothing.
        skip_bad_records (bool): False (default) fails on the first bad
            record (a missing or malformed key, a missing or unreadable
            image) with an error naming the file, the record and what was
            expected. True skips such records instead, counts them by
            reason and reports them in the log and in
            ``metainfo['num_skipped']``. Errors of the whole file (missing,
            not JSON, not a list) and an empty split always fail.
        allow_outside_root (bool): image paths must be relative and stay
            inside the image folder: an absolute path, a ``..`` or a
            symbolic link out of the folder is a bad record, unless this is
            True (e.g. for images deliberately linked from elsewhere).
            Defaults to False.
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    #: what the default layout looks like, for error messages
    LAYOUT_HINT = ''
    #: the record key holding the image path, for error messages
    PATH_KEY = 'file_path'
    #: published (ids, images, captions) per split, checked by
    #: ``tools/dataset_stats.py``
    PUBLISHED_SIZES: Dict[str, Tuple[int, int, int]] = {}

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 ann_file: str = '',
                 data_prefix: Optional[dict] = None,
                 test_mode: Optional[bool] = None,
                 pipeline: Sequence = (),
                 domain: int = 0,
                 pid_offset: int = 0,
                 check_images: str = 'header',
                 skip_bad_records: bool = False,
                 allow_outside_root: bool = False,
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
        if check_images not in IMAGE_CHECKS:
            raise ValueError(f'check_images must be one of {IMAGE_CHECKS}, '
                             f"got '{check_images}'")
        self.split = split
        self.check_images = check_images
        self.skip_bad_records = bool(skip_bad_records)
        self.allow_outside_root = bool(allow_outside_root)
        self.domain = int(domain)
        self.pid_offset = int(pid_offset)
        if self.domain < 0 or self.pid_offset < 0:
            raise ValueError('domain and pid_offset must be >= 0, got '
                             f'{domain} and {pid_offset}')
        if test_mode is None:
            test_mode = split != 'train'
        if data_prefix is None:
            data_prefix = dict(img_path='imgs')
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            test_mode=test_mode,
            pipeline=list(pipeline),
            **kwargs)

    # -- what subclasses define ---------------------------------------------
    def parse_record(self, index: int, record: Any) -> Dict[str, Any]:
        """Read one record into ``dict(split, person_id, img_path,
        captions)``; ``img_path`` relative to the image folder."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------
    @classmethod
    def check_files(cls, dataset_cfg: dict) -> None:
        """Check that the data root and the annotation file of a dataset
        config exist, without reading anything (the tools call this before
        building a run, so that a wrong path fails at once, naming the
        expected layout).

        Raises:
            MissingFileError: naming the path and the expected layout.
        """
        data_root = dataset_cfg.get('data_root') or ''
        ann_file = dataset_cfg.get('ann_file')
        if not osp.isdir(data_root):
            raise MissingFileError(
                f"{cls.__name__}: data_root '{data_root}' is not a "
                f'directory. Expected layout: {cls.LAYOUT_HINT}')
        ann_file = ann_file or cls.default_ann_file(data_root)
        path = osp.join(data_root, ann_file)
        if not osp.isfile(path):
            raise MissingFileError(
                f"{cls.__name__}: annotation file '{path}' not found. "
                f'Expected layout: {cls.LAYOUT_HINT}')

    @classmethod
    def default_ann_file(cls, data_root: str) -> str:
        """The annotation file name a dataset of ``data_root`` uses when
        ``ann_file`` is not given."""
        return ''

    def _image_problem(self, path: str, img_root: str) -> Optional[str]:
        """Why the image at ``path`` is unusable, or None if it is fine."""
        if not self.allow_outside_root and img_root and \
                osp.lexists(path) and not is_within(path, img_root):
            return 'is a symbolic link out of the image folder'
        if self.check_images == 'none':
            return None
        problem = check_image(path, decode=self.check_images == 'decode')
        if problem is None:
            return None
        return problem.replace(f"image '{path}' ", '').replace(
            f"'{path}' ", '')

    def _image_problems(self, paths: List[str],
                        img_root: str) -> List[Optional[str]]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            problems = pool.map(lambda p: self._image_problem(p, img_root),
                                paths, chunksize=64)
            if len(paths) < _PROGRESS_MIN:
                return list(problems)
            print_log(f'{type(self).__name__} {self.split}: checking '
                      f'{len(paths)} images ({self.check_images})',
                      logger='current')
            return list(track_iter_progress((problems, len(paths))))

    def _check_images(self, selected: List[dict], img_root: str,
                      skipped: List[Tuple[int, str, str]]) -> List[dict]:
        """Check the images of ``selected``; returns the usable records."""
        if not selected or (self.check_images == 'none' and (
                self.allow_outside_root or not osp.isdir(img_root or '.'))):
            return selected
        if img_root and not osp.isdir(img_root):
            raise MissingFileError(
                f"{type(self).__name__}: image folder '{img_root}' not "
                f'found. Expected layout: {self.LAYOUT_HINT}')
        paths = [osp.join(img_root, rec['img_path']) for rec in selected]
        usable = []
        for rec, path, problem in zip(selected, paths,
                                      self._image_problems(paths, img_root)):
            if problem is None:
                usable.append(rec)
                continue
            message = (f"{self.ann_file}: record {rec['index']}: image "
                       f"'{path}' ('{self.PATH_KEY}': "
                       f"'{rec['img_path']}') {problem}")
            missing = problem.startswith('does not exist') or \
                problem.endswith('does not exist')
            if not self.skip_bad_records:
                if missing:
                    raise MissingFileError(message)
                raise AnnotationError(message, 'image unreadable')
            skipped.append((rec['index'], 'image missing' if missing else
                            'image unreadable', message))
        return usable

    def _report_skipped(self, skipped: List[Tuple[int, str, str]]) -> None:
        if not skipped:
            return
        reasons = Counter(reason for _, reason, _ in skipped)
        listed = '\n'.join(
            f'  {message}' for _, _, message in sorted(skipped)[:_MAX_LISTED])
        more = (f'\n  ... and {len(skipped) - _MAX_LISTED} more'
                if len(skipped) > _MAX_LISTED else '')
        summary = ', '.join(f'{n} {reason}'
                            for reason, n in sorted(reasons.items()))
        print_log(
            f'{type(self).__name__} {self.split}: skipped {len(skipped)} '
            f'bad records of {self.ann_file} (skip_bad_records=True): '
            f'{summary}\n{listed}{more}',
            logger='current',
            level=logging.WARNING)

    def load_data_list(self) -> List[dict]:
        """Parse the annotation file into the items of ``self.split``,
        checking the split's images (see ``check_images``)."""
        skipped: List[Tuple[int, str, str]] = []
        records = self._parse_records(self._read_json(), skipped)
        selected = [r for r in records if r['split'] == self.split]
        if not selected:
            found = sorted({r['split'] for r in records})
            raise AnnotationError(
                f"{self.ann_file}: split '{self.split}' has no records "
                f'(splits present: {found})')
        img_root = self.data_prefix.get('img_path', '')
        selected = self._check_images(selected, img_root, skipped)
        self._report_skipped(skipped)
        if not selected:
            raise AnnotationError(
                f"{self.ann_file}: split '{self.split}' has no usable "
                f'records: all {len(skipped)} were skipped as bad')

        raw_ids = sorted({r['person_id'] for r in selected})
        remap = {raw: self.pid_offset + new for new, raw in
                 enumerate(raw_ids)}
        data_list = []
        num_captions = 0
        for image_id, rec in enumerate(selected):
            common = dict(
                img_path=osp.join(img_root, rec['img_path']),
                pid=remap[rec['person_id']],
                person_id=rec['person_id'],
                image_id=image_id,
                domain=self.domain)
            num_captions += len(rec['captions'])
            if self.test_mode:
                data_list.append(dict(common, captions=rec['captions']))
            else:
                data_list.extend(
                    dict(common, caption=caption)
                    for caption in rec['captions'])
        self._metainfo.update(
            num_pids=len(raw_ids),
            num_images=len(selected),
            num_captions=num_captions,
            num_skipped=len(skipped))
        print_log(
            f'{type(self).__name__} {self.split}: {len(raw_ids)} ids, '
            f'{len(selected)} images, {num_captions} captions',
            logger='current')
        return data_list
