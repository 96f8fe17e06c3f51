"""A hook that kills its own process with SIGKILL right after the
checkpoint of an epoch is written, to test resuming an interrupted run.

Loaded by test configs through ``custom_imports`` (with ``tests`` on
``PYTHONPATH``)."""
import os
import signal

from mmengine.hooks import Hook

from mmtpr.registry import HOOKS


@HOOKS.register_module()
class KillAfterCheckpointHook(Hook):
    """SIGKILL the process at the end of training epoch ``epoch`` (1-based),
    after :class:`CheckpointHook` (priority VERY_LOW) saved it and before
    the epoch's validation.

    Args:
        epoch (int): the epoch after whose checkpoint to die.
    """

    priority = 'LOWEST'

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)
