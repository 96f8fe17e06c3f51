"""Parameter-efficient transfer learning techniques, injected into CLIP by
module replacement (:class:`PETLAttention`, :class:`PETLBlock`)."""
from .adapter import LNAdapter
from .attention import PETLAttention
from .block import PETLBlock
from .lora import KVLoRA
from .moa import MixtureOfAdapters
from .prefix import ScaledPrefix
from .utils import PETLModule, freeze_except_petl, petl_blocks, resolve_layers

__all__ = [
    'KVLoRA', 'LNAdapter', 'MixtureOfAdapters', 'PETLAttention',
    'PETLBlock', 'PETLModule', 'ScaledPrefix', 'freeze_except_petl',
    'petl_blocks', 'resolve_layers'
]
