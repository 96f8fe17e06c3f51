"""Runner, loops, hooks, optimizer wrappers and schedulers of mmtpr."""
from .hooks import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
from .schedulers import *  # noqa: F401,F403
