"""Datasets and transforms of mmtpr."""
# Registers MMPretrain's transforms (RandomCrop, ...) in the parent
# registry, so that configs with default_scope='mmtpr' can name them.
import mmpretrain.datasets.transforms  # noqa: F401

from .annotation import AnnotationError
from .base_tpr_dataset import BaseTPRDataset
from .cuhk_pedes import CUHKPEDES
from .icfg_pedes import ICFGPEDES
from .rstpreid import RSTPReid
from .synth_pedes import SynthPedes, prepare_synth_pedes
from .transforms import *  # noqa: F401,F403
from .worker_init import worker_seed_from_torch

__all__ = ['AnnotationError', 'BaseTPRDataset', 'CUHKPEDES', 'ICFGPEDES',
           'RSTPReid', 'SynthPedes', 'prepare_synth_pedes',
           'worker_seed_from_torch']
