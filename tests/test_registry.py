"""mmtpr's registries resolve mmtpr, MMPretrain, MMCV and MMEngine types."""
import pytest
from mmengine.registry import DATASETS as ROOT_DATASETS

from mmtpr import registry


@pytest.mark.parametrize('reg, name, owner_scope', [
    (registry.MODELS, 'TPRRetriever', 'mmtpr'),
    (registry.MODELS, 'OpenCLIPBackbone', 'mmtpr'),
    (registry.MODELS, 'SDMHead', 'mmtpr'),
    (registry.MODELS, 'TPRDataPreprocessor', 'mmtpr'),
    (registry.DATASETS, 'CUHKPEDES', 'mmtpr'),
    (registry.DATASETS, 'SynthPedes', 'mmtpr'),
    (registry.TRANSFORMS, 'TokenizeCaption', 'mmtpr'),
    (registry.TRANSFORMS, 'MaskCaption', 'mmtpr'),
    (registry.TRANSFORMS, 'PackTPRInputs', 'mmtpr'),
    (registry.TRANSFORMS, 'LoadPersonImage', 'mmtpr'),
    (registry.METRICS, 'TPRMetric', 'mmtpr'),
    # MMPretrain's and MMCV's / MMEngine's components through the parents
    (registry.TRANSFORMS, 'RandomCrop', 'mmpretrain'),
    (registry.TRANSFORMS, 'Resize', 'mmcv'),
    (registry.TRANSFORMS, 'RandomFlip', 'mmcv'),
    (registry.MODELS, 'mmpretrain.VisionTransformer', 'mmpretrain'),
    (registry.OPTIMIZERS, 'Adam', 'torch'),
    (registry.OPTIM_WRAPPERS, 'OptimWrapper', 'mmengine'),
    # mmtpr's own, which extends MMEngine's to the CPU
    (registry.OPTIM_WRAPPERS, 'AutocastOptimWrapper', 'mmtpr'),
    (registry.PARAM_SCHEDULERS, 'CosineAnnealingLR', 'mmengine'),
    (registry.HOOKS, 'CheckpointHook', 'mmengine'),
])
def test_names_resolve_through_the_mmtpr_scope(reg, name, owner_scope):
    cls = reg.get(name)
    assert cls is not None, name
    assert cls.__module__.split('.')[0] == owner_scope


def test_registries_are_children_of_mmpretrain():
    assert registry.MODELS.scope == 'mmtpr'
    assert registry.MODELS.parent.scope == 'mmpretrain'
    assert registry.DATASETS.parent.parent is ROOT_DATASETS
