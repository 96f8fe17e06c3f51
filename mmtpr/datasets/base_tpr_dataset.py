"""The common parsing of text-based person retrieval annotation files."""
import json
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

SPLITS = ('train', 'val', 'test')


class AnnotationError(ValueError):
    """A TPR annotation file or one of its records is not as expected."""


class BaseTPRDataset(BaseDataset):
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
        **kwargs: other arguments of :class:`mmengine.dataset.BaseDataset`.
    """

    #: what the default layout looks like, for error messages
    LAYOUT_HINT = ''

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 ann_file: str = '',
                 data_prefix: Optional[dict] = None,
                 test_mode: Optional[bool] = None,
                 pipeline: Sequence = (),
                 domain: int = 0,
                 pid_offset: int = 0,
                 **kwargs) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
        self.split = split
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
    def parse_cuhk_style_record(self, index: int, record: Any,
                                path_key: str) -> Dict[str, Any]:
        """Read a record of the IRRA-family schema: ``split``, ``id``,
        ``captions`` and the image path under ``path_key``. A split other
        than 'train' and 'test' counts as 'val', as in the reference."""
        split = self._require(index, record, 'split')
        if not isinstance(split, str):
            raise self._fail(index, f"'split' must be a string, got {split!r}")
        if split not in ('train', 'test'):
            split = 'val'
        img_path = self._require(index, record, path_key)
        if not isinstance(img_path, str) or not img_path:
            raise self._fail(index, f"'{path_key}' must be a non-empty path "
                             f'string, got {img_path!r}')
        return dict(
            split=split,
            person_id=self._person_id(index,
                                      self._require(index, record, 'id')),
            img_path=img_path,
            captions=self._captions(index,
                                    self._require(index, record, 'captions')))

    def _fail(self, index: int, message: str) -> AnnotationError:
        return AnnotationError(f'{self.ann_file}: record {index}: {message}')

    def _require(self, index: int, record: Any, key: str) -> Any:
        if not isinstance(record, dict):
            raise self._fail(
                index, f'expected a JSON object, got {type(record).__name__}')
        if key not in record:
            raise self._fail(
                index, f"missing key '{key}' (keys present: "
                f'{sorted(record)})')
        return record[key]

    def _person_id(self, index: int, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self._fail(index, f"'id' must be an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise self._fail(
                index, f"'id' must be an integer, got {value!r}") from None

    def _captions(self, index: int, value: Any) -> List[str]:
        if not isinstance(value, list) or not value:
            raise self._fail(index, "'captions' must be a non-empty list of "
                             f'strings, got {value!r}')
        for j, caption in enumerate(value):
            if not isinstance(caption, str) or not caption.strip():
                raise self._fail(index, f"'captions'[{j}] must be a "
                                 f'non-empty string, got {caption!r}')
        return list(value)

    def _read_json(self) -> list:
        path = self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(
                f"{type(self).__name__}: annotation file '{path}' not found."
                f' Expected layout: {self.LAYOUT_HINT}')
        try:
            with open(path, encoding='utf-8') as f:
                records = json.load(f)
        except json.JSONDecodeError as err:
            raise AnnotationError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(records, list):
            raise AnnotationError(
                f'{path}: expected a JSON list of records, got '
                f'{type(records).__name__}')
        return records

    def load_data_list(self) -> List[dict]:
        """Parse the annotation file into the items of ``self.split``."""
        records = [
            self.parse_record(i, rec)
            for i, rec in enumerate(self._read_json())
        ]
        selected = [r for r in records if r['split'] == self.split]
        if not selected:
            found = sorted({r['split'] for r in records})
            raise AnnotationError(
                f"{self.ann_file}: split '{self.split}' has no records "
                f'(splits present: {found})')

        raw_ids = sorted({r['person_id'] for r in selected})
        remap = {raw: self.pid_offset + new for new, raw in
                 enumerate(raw_ids)}
        img_root = self.data_prefix.get('img_path', '')
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
            num_captions=num_captions)
        print_log(
            f'{type(self).__name__} {self.split}: {len(raw_ids)} ids, '
            f'{len(selected)} images, {num_captions} captions',
            logger='current')
        return data_list
