"""SynthPedes: a generated dataset in the CUHK-PEDES format."""
import json
import os
import os.path as osp
from typing import Sequence, Tuple

from mmengine.logging import print_log

from mmtpr.registry import DATASETS

from .cuhk_pedes import CUHKPEDES
from .synth import SYNTH_META_FILE, generate_synth_pedes


@DATASETS.register_module()
class SynthPedes(CUHKPEDES):
    """A synthetic person-retrieval dataset, read by the CUHK-PEDES parser.

    Cartoon pedestrians whose identities differ by visible attributes
    (clothing kinds and colours, shoes, bag, hat, hair), two captions per
    image naming them, disjoint train / val / test identities. If
    ``data_root`` does not exist it is generated there (deterministically
    for ``seed``); if it exists it must hold a SynthPedes dataset generated
    with the same settings, else an error says so: existing files are never
    overwritten. The files are then read by :class:`CUHKPEDES`, the same
    code that reads the real dataset.

    Args:
        data_root (str): where the dataset is (or will be) written.
        split (str): 'train', 'val' or 'test'. Defaults to 'train'.
        num_ids (tuple): identities in (train, val, test).
            Defaults to (400, 50, 50).
        images_per_id (int): Defaults to 4.
        image_size (tuple): (height, width) of the written images.
            Defaults to (192, 64).
        seed (int): generation seed. Defaults to 0.
        **kwargs: see :class:`BaseTPRDataset`.

    Example:
        >>> dict(type='SynthPedes', data_root='data/synth_pedes',
        ...      split='train', pipeline=train_pipeline)
    """

    # Sizes depend on the generation settings: nothing is published.
    PUBLISHED_SIZES = {}

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 num_ids: Sequence[int] = (400, 50, 50),
                 images_per_id: int = 4,
                 image_size: Tuple[int, int] = (192, 64),
                 seed: int = 0,
                 **kwargs) -> None:
        self.generation_args = dict(
            num_ids=list(num_ids),
            images_per_id=images_per_id,
            image_size=list(image_size),
            seed=seed)
        prepare_synth_pedes(data_root, **self.generation_args)
        super().__init__(data_root=data_root, split=split, **kwargs)


def prepare_synth_pedes(data_root: str, **generation_args) -> None:
    """Generate SynthPedes into ``data_root`` unless it is already there.

    Raises:
        FileExistsError: ``data_root`` exists but holds something else, or a
            SynthPedes dataset generated with other settings.
    """
    meta_path = osp.join(data_root, SYNTH_META_FILE)
    if not osp.exists(data_root) or (osp.isdir(data_root)
                                     and not os.listdir(data_root)):
        if osp.isdir(data_root):
            os.rmdir(data_root)  # empty: the generator renames into place
        print_log(f'SynthPedes: generating {generation_args} into '
                  f'{data_root}', logger='current')
        try:
            generate_synth_pedes(data_root, **generation_args)
        except FileExistsError:
            if not osp.isfile(meta_path):  # not a concurrent generator's
                raise
    if not osp.isfile(meta_path):
        raise FileExistsError(
            f"'{data_root}' exists but is not a SynthPedes dataset (no "
            f'{SYNTH_META_FILE}); choose another data_root: mmtpr does not '
            'write into existing folders')
    with open(meta_path) as f:
        meta = json.load(f)
    found = {k: meta.get(k) for k in generation_args}
    wanted = {k: (list(v) if isinstance(v, tuple) else v)
              for k, v in generation_args.items()}
    if found != wanted:
        raise FileExistsError(
            f"'{data_root}' holds a SynthPedes dataset generated with "
            f'{found}, but {wanted} was asked for; delete that folder or '
            'choose another data_root')
