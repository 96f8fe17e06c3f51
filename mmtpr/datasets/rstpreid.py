"""RSTPReid (Zhu et al., ACM MM 2021)."""
from typing import Any, Dict

from mmtpr.registry import DATASETS

from .base_tpr_dataset import BaseTPRDataset


@DATASETS.register_module()
class RSTPReid(BaseTPRDataset):
    """RSTPReid: 4,101 persons, 20,505 images, 2 captions each.

    On disk (docs/methods.md §5)::

        data_root/                 e.g. data/RSTPReid
        |-- data_captions.json     list of records, one per image
        `-- imgs/                  flat folder of .jpg files

    A record is ``{"id": int, "img_path": "<file under imgs/>",
    "captions": [str, str], "split": "train" | "val" | "test"}`` (note
    ``img_path``, not ``file_path``). Published sizes: train 3,701 ids /
    18,505 images / 37,010 captions; val and test 200 ids / 1,000 images /
    2,000 captions each.

    Args:
        data_root (str): the RSTPReid folder.
        split (str): 'train', 'val' or 'test'. Defaults to 'train'.
        ann_file (str): Defaults to 'data_captions.json'.
        **kwargs: see :class:`BaseTPRDataset`.
    """

    LAYOUT_HINT = ('data_root/data_captions.json (a JSON list of records '
                   "with 'split', 'captions', 'img_path', 'id') and the "
                   'images under data_root/imgs/')

    PATH_KEY = 'img_path'
    PUBLISHED_SIZES = dict(
        train=(3701, 18505, 37010), val=(200, 1000, 2000),
        test=(200, 1000, 2000))

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 ann_file: str = 'data_captions.json',
                 **kwargs) -> None:
        super().__init__(
            data_root=data_root, split=split, ann_file=ann_file, **kwargs)

    @classmethod
    def default_ann_file(cls, data_root: str) -> str:
        return 'data_captions.json'

    def parse_record(self, index: int, record: Any) -> Dict[str, Any]:
        """Read one data_captions.json record."""
        return self.parse_cuhk_style_record(index, record, 'img_path')
