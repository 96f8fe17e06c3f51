"""Models of mmtpr: backbones, PETL techniques, heads, losses, retrievers."""
from .backbones import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .retrievers import *  # noqa: F401,F403
