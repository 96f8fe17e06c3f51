"""CUHK-PEDES (Li et al., CVPR 2017)."""
from typing import Any, Dict

from mmtpr.registry import DATASETS

from .base_tpr_dataset import BaseTPRDataset


@DATASETS.register_module()
class CUHKPEDES(BaseTPRDataset):
    """CUHK-PEDES: 13,003 persons, 40,206 images, about 2 captions each.

    On disk (docs/methods.md §5)::

        data_root/                 e.g. data/CUHK-PEDES
        |-- reid_raw.json          list of records, one per image
        `-- imgs/                  cam_a/, cam_b/, CUHK01/, CUHK03/, Market/,
                                   test_query/, train_query/, ...

    A record is ``{"split": "train" | "test" | "val", "captions": [str],
    "file_path": "<path under imgs/>", "processed_tokens": [...],
    "id": int}``; a split other than 'train' and 'test' counts as 'val', as
    in IRRA. Published sizes (ids / images / captions): train 11,003 /
    34,054 / 68,126; val 1,000 / 3,078 / 6,158; test 1,000 / 3,074 / 6,156.

    Args:
        data_root (str): the CUHK-PEDES folder.
        split (str): 'train', 'val' or 'test'. Defaults to 'train'.
        ann_file (str): Defaults to 'reid_raw.json'.
        **kwargs: see :class:`BaseTPRDataset`.

    Example:
        >>> dataset = dict(type='CUHKPEDES', data_root='data/CUHK-PEDES',
        ...                split='test', pipeline=test_pipeline)
    """

    LAYOUT_HINT = ('data_root/reid_raw.json (a JSON list of records with '
                   "'split', 'captions', 'file_path', 'id') and the images "
                   'under data_root/imgs/')

    PATH_KEY = 'file_path'
    PUBLISHED_SIZES = dict(
        train=(11003, 34054, 68126), val=(1000, 3078, 6158),
        test=(1000, 3074, 6156))

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 ann_file: str = 'reid_raw.json',
                 **kwargs) -> None:
        super().__init__(
            data_root=data_root, split=split, ann_file=ann_file, **kwargs)

    @classmethod
    def default_ann_file(cls, data_root: str) -> str:
        return 'reid_raw.json'

    def parse_record(self, index: int, record: Any) -> Dict[str, Any]:
        """Read one reid_raw.json record."""
        return self.parse_cuhk_style_record(index, record, 'file_path')
