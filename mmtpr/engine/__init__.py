"""Hooks, schedulers and other training-loop components of mmtpr."""
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .schedulers import *  # noqa: F401,F403
