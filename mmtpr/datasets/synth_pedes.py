"""SynthPedes: a generated dataset in the CUHK-PEDES format."""
import os
import os.path as osp
from typing import Sequence, Tuple, Union

from mmengine.logging import print_log

from mmtpr.registry import DATASETS

from .cuhk_pedes import CUHKPEDES
from .synth import (
    SYNTH_META_FILE,
    generate_synth_pedes,
    synth_meta_diff,
    synth_settings,
)


@DATASETS.register_module()
class SynthPedes(CUHKPEDES):
    """A synthetic person-retrieval dataset, read by the CUHK-PEDES parser.

    Cartoon pedestrians whose identities differ by visible attributes
    (clothing kinds and colours, shoes, bag, hat, hair), two captions per
    image naming them, disjoint train / val / test identities. With
    ``generate=True`` a missing ``data_root`` is generated there
    (deterministically for the settings); without it, a missing
    ``data_root`` is an error, so that a mistyped path does not silently
    create and evaluate a new dataset. An existing ``data_root`` must hold
    a SynthPedes dataset generated with the same settings, else an error
    names both: existing files are never overwritten. The files are then
    read by :class:`CUHKPEDES`, the same code that reads the real dataset.

    ``caption_style`` and ``camera`` make domains that differ on both sides,
    like real TPR datasets: how the annotators write and what the camera
    sees (see :mod:`mmtpr.datasets.synth.captions` and
    :mod:`mmtpr.datasets.synth.camera`).

    Args:
        data_root (str): where the dataset is (or will be) written.
        split (str): 'train', 'val' or 'test'. Defaults to 'train'.
        num_ids (tuple): identities in (train, val, test).
            Defaults to (400, 50, 50).
        images_per_id (int): Defaults to 4.
        image_size (tuple): (height, width) of the written images.
            Defaults to (192, 64).
        seed (int): generation seed. Defaults to 0.
        caption_style (str): the annotator: 'standard' (full sentences of
            15-45 words), 'terse' (keyword lists and short clauses of 8-24
            words, shoes and bag often first) or 'detailed' (28-55 words
            with garment details and other synonyms, gender last).
            Defaults to 'standard'.
        camera (str | dict): the camera: a preset, 'standard' (full
            resolution, no cast or blur, 40% back views), 'cctv' (half
            resolution, cold cast, slight blur, 60% back views) or
            'streetlight' (0.6 resolution, warm cast, stronger blur, 70%
            back views), or a dict of the factors ``scale``,
            ``color_cast``, ``blur`` and ``back_view_prob``, missing ones
            taken from 'standard'. Defaults to 'standard'.
        generate (bool): generate the dataset if ``data_root`` does not
            exist (or is an empty folder). Defaults to False.
        **kwargs: see :class:`BaseTPRDataset`.

    Example:
        >>> dict(type='SynthPedes', data_root='data/synth_pedes',
        ...      split='train', generate=True, pipeline=train_pipeline)
        >>> # another domain: other annotators, another camera
        >>> dict(type='SynthPedes', data_root='data/synth_pedes_cctv',
        ...      split='test', caption_style='terse', camera='cctv',
        ...      seed=1, generate=True, pipeline=test_pipeline)
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
                 caption_style: str = 'standard',
                 camera: Union[str, dict] = 'standard',
                 generate: bool = False,
                 **kwargs) -> None:
        self.generation_args = synth_settings(
            num_ids=num_ids,
            images_per_id=images_per_id,
            image_size=image_size,
            seed=seed,
            caption_style=caption_style,
            camera=camera)
        prepare_synth_pedes(data_root, generate=generate,
                            **self.generation_args)
        super().__init__(data_root=data_root, split=split, **kwargs)

    @classmethod
    def check_files(cls, dataset_cfg: dict) -> None:
        """As :meth:`BaseTPRDataset.check_files`, except that a missing
        ``data_root`` is fine when the config asks to generate it there."""
        root = dataset_cfg.get('data_root') or ''
        if dataset_cfg.get('generate') and not osp.exists(root):
            return
        super().check_files(dataset_cfg)


def prepare_synth_pedes(data_root: str,
                        generate: bool = False,
                        **generation_args) -> None:
    """Check that ``data_root`` holds SynthPedes with these settings,
    generating it first if it is missing and ``generate`` is True.

    Args:
        data_root (str): the dataset folder.
        generate (bool): generate the dataset if ``data_root`` is missing
            or an empty folder. Defaults to False.
        **generation_args: arguments of
            :func:`~mmtpr.datasets.synth.generate_synth_pedes`; only these
            are compared with the folder's ``synth_meta.json``.

    Raises:
        FileNotFoundError: ``data_root`` is missing (or empty) and
            ``generate`` is False.
        FileExistsError: ``data_root`` exists but holds something else, or a
            SynthPedes dataset generated with other settings.
    """
    meta_path = osp.join(data_root, SYNTH_META_FILE)
    if not osp.exists(data_root) or (osp.isdir(data_root)
                                     and not os.listdir(data_root)):
        if not generate:
            raise FileNotFoundError(
                f"SynthPedes data_root '{data_root}' does not exist or is "
                'empty; pass generate=True to generate the dataset there, '
                'or fix data_root')
        if osp.isdir(data_root):
            os.rmdir(data_root)  # empty: the generator renames into place
        print_log(f'SynthPedes: generating {generation_args} into '
                  f'{data_root}', logger='current')
        try:
            generate_synth_pedes(data_root, **generation_args)
        except FileExistsError:
            if not osp.isfile(meta_path):  # not a concurrent generator's
                raise
    diff = synth_meta_diff(data_root, **generation_args)
    if diff is None:
        raise FileExistsError(
            f"'{data_root}' exists but is not a SynthPedes dataset (no "
            f'readable {SYNTH_META_FILE}); choose another data_root: mmtpr '
            'does not write into existing folders')
    if diff:
        found = {key: stored for key, (stored, _) in diff.items()}
        wanted = {key: given for key, (_, given) in diff.items()}
        raise FileExistsError(
            f"'{data_root}' holds a SynthPedes dataset generated with "
            f'{found}, but {wanted} was asked for; delete that folder or '
            'choose another data_root')
