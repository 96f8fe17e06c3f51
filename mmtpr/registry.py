"""The registries of mmtpr: the only place where they are defined.

Each registry is a child of the corresponding MMPretrain registry (which are
children of MMEngine's root registries), with scope ``mmtpr``. A config with
``default_scope = 'mmtpr'`` therefore resolves mmtpr's own components first,
then MMPretrain's, then MMEngine's (and MMCV's transforms, which register into
MMEngine's root).
"""
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import Registry
from mmpretrain import registry as mmpretrain_registry


def _child(name: str, parent: Registry, location: str) -> Registry:
    return Registry(name, parent=parent, scope='mmtpr', locations=[location])


RUNNERS = _child('runner', mmpretrain_registry.RUNNERS, 'mmtpr.engine')
RUNNER_CONSTRUCTORS = _child('runner constructor',
                             mmpretrain_registry.RUNNER_CONSTRUCTORS,
                             'mmtpr.engine')
LOOPS = _child('loop', mmpretrain_registry.LOOPS, 'mmtpr.engine')
HOOKS = _child('hook', mmpretrain_registry.HOOKS, 'mmtpr.engine')
LOG_PROCESSORS = _child('log processor', mmpretrain_registry.LOG_PROCESSORS,
                        'mmtpr.engine')
OPTIMIZERS = _child('optimizer', mmpretrain_registry.OPTIMIZERS,
                    'mmtpr.engine')
OPTIM_WRAPPERS = _child('optim_wrapper', mmpretrain_registry.OPTIM_WRAPPERS,
                        'mmtpr.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child(
    'optimizer wrapper constructor',
    mmpretrain_registry.OPTIM_WRAPPER_CONSTRUCTORS, 'mmtpr.engine')
PARAM_SCHEDULERS = _child('parameter scheduler',
                          mmpretrain_registry.PARAM_SCHEDULERS,
                          'mmtpr.engine')

DATASETS = _child('dataset', mmpretrain_registry.DATASETS, 'mmtpr.datasets')
DATA_SAMPLERS = _child('data sampler', mmpretrain_registry.DATA_SAMPLERS,
                       'mmtpr.datasets')
TRANSFORMS = _child('transform', mmpretrain_registry.TRANSFORMS,
                    'mmtpr.datasets')

MODELS = _child('model', mmpretrain_registry.MODELS, 'mmtpr.models')
MODEL_WRAPPERS = _child('model_wrapper', mmpretrain_registry.MODEL_WRAPPERS,
                        'mmtpr.models')
WEIGHT_INITIALIZERS = _child('weight initializer',
                             mmpretrain_registry.WEIGHT_INITIALIZERS,
                             'mmtpr.models')
BATCH_AUGMENTS = _child('batch augment', mmpretrain_registry.BATCH_AUGMENTS,
                        'mmtpr.models')
TASK_UTILS = _child('task util', mmpretrain_registry.TASK_UTILS,
                    'mmtpr.models')

METRICS = _child('metric', mmpretrain_registry.METRICS, 'mmtpr.evaluation')
EVALUATORS = _child('evaluator', mmpretrain_registry.EVALUATORS,
                    'mmtpr.evaluation')

# Functions named in configs (e.g. a dataloader's worker_init_fn).
FUNCTIONS = _child('function', MMENGINE_FUNCTIONS, 'mmtpr.datasets')

VISUALIZERS = _child('visualizer', mmpretrain_registry.VISUALIZERS,
                     'mmtpr.visualization')
VISBACKENDS = _child('vis_backend', mmpretrain_registry.VISBACKENDS,
                     'mmtpr.visualization')

# PETL techniques (KVLoRA, ScaledPrefix, LNAdapter, ...): a domain registry
# of its own, since they are not standalone models but modules that
# OpenCLIPBackbone injects into CLIP's blocks.
PETL = Registry('petl technique', scope='mmtpr',
                locations=['mmtpr.models.petl'])
