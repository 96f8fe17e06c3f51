"""Parameter-efficient transfer learning techniques, injected into CLIP by
module replacement (:class:`PETLAttention`, :class:`PETLBlock`)."""
from .adapter import LNAdapter
from .attention import PETLAttention
from .block import PETLBlock
from .lora import KVLoRA
from .prefix import ScaledPrefix
from .utils import PETLModule, freeze_except_petl, petl_blocks, resolve_layers

__all__ = [
    'KVLoRA', 'LNAdapter', 'PETLAttention', 'PETLBlock', 'PETLModule',
    'ScaledPrefix', 'freeze_except_petl', 'petl_blocks', 'resolve_layers'
]
