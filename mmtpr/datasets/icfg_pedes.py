"""ICFG-PEDES (Ding et al., 2021)."""
import os.path as osp
from typing import Any, Dict, Optional

from mmtpr.registry import DATASETS

from .base_tpr_dataset import BaseTPRDataset

ICFG_ANN_FILES = ('ICFG-PEDES.json', 'ICFG_PEDES.json')


@DATASETS.register_module()
class ICFGPEDES(BaseTPRDataset):
    """ICFG-PEDES: 4,102 persons, 54,522 images, one caption each.

    On disk (docs/methods.md §5)::

        data_root/                 e.g. data/ICFG-PEDES
        |-- ICFG-PEDES.json        (or ICFG_PEDES.json: both are accepted)
        `-- imgs/                  train/..., test/... (NOT the split)

    Records have the CUHK-PEDES schema (``split``, ``captions``,
    ``file_path``, ``id``); ``split`` is 'train' or 'test' only, so there is
    **no validation split**. Published sizes: train 3,102 ids / 34,674
    images; test 1,000 ids / 19,848 images (4,855 query + 14,993 gallery
    in the ReID protocol).

    Args:
        data_root (str): the ICFG-PEDES folder.
        split (str): 'train' or 'test' ('val' has no records). Defaults to
            'train'.
        ann_file (str, optional): None finds ``ICFG-PEDES.json`` or
            ``ICFG_PEDES.json``. Defaults to None.
        **kwargs: see :class:`BaseTPRDataset`.
    """

    LAYOUT_HINT = ('data_root/ICFG-PEDES.json or data_root/ICFG_PEDES.json '
                   "(a JSON list of records with 'split', 'captions', "
                   "'file_path', 'id') and the images under data_root/imgs/")

    PATH_KEY = 'file_path'
    PUBLISHED_SIZES = dict(train=(3102, 34674, 34674),
                           test=(1000, 19848, 19848))

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 ann_file: Optional[str] = None,
                 **kwargs) -> None:
        if ann_file is None:
            ann_file = self.default_ann_file(data_root)
        super().__init__(
            data_root=data_root, split=split, ann_file=ann_file, **kwargs)

    @classmethod
    def default_ann_file(cls, data_root: str) -> str:
        """``ICFG-PEDES.json`` or ``ICFG_PEDES.json``, whichever exists."""
        found = [name for name in ICFG_ANN_FILES
                 if osp.isfile(osp.join(data_root, name))]
        return found[0] if found else ICFG_ANN_FILES[0]

    def parse_record(self, index: int, record: Any) -> Dict[str, Any]:
        """Read one ICFG-PEDES record."""
        return self.parse_cuhk_style_record(index, record, 'file_path')
