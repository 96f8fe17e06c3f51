"""Parameter-efficient transfer learning techniques, injected into CLIP by
module replacement (:class:`PETLAttention`, :class:`PETLBlock`), and their
checkpoints (:mod:`.checkpoint`)."""
from .adapter import LNAdapter
from .attention import PETLAttention
from .block import PETLBlock
from .checkpoint import (
    check_petl_checkpoint,
    load_petl_checkpoint,
    petl_state_dict_keys,
)
from .lora import KVLoRA
from .moa import MixtureOfAdapters
from .prefix import ScaledPrefix
from .utils import PETLModule, freeze_except_petl, petl_blocks, resolve_layers

__all__ = [
    'KVLoRA', 'LNAdapter', 'MixtureOfAdapters', 'PETLAttention',
    'PETLBlock', 'PETLModule', 'ScaledPrefix', 'check_petl_checkpoint',
    'freeze_except_petl', 'load_petl_checkpoint', 'petl_blocks',
    'petl_state_dict_keys', 'resolve_layers'
]
