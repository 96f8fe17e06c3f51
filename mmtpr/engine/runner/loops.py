"""The training loop of mmtpr's runs."""
import torch
from mmengine.runner import EpochBasedTrainLoop

from mmtpr.registry import LOOPS


@LOOPS.register_module()
class TPRTrainLoop(EpochBasedTrainLoop):
    """MMEngine's epoch-based training loop that validates a resumed epoch.

    MMEngine saves an epoch's checkpoint when the epoch's training ends,
    *before* the epoch is validated. A run killed during that validation
    (or while it saved the best checkpoint) resumes from the next epoch, so
    the validation is lost and the best checkpoint can differ from the
    uninterrupted run's. This loop, when it starts from a resumed epoch on
    which validation is due, validates that epoch first. Validation is
    deterministic and does not consume random numbers
    (:class:`~mmtpr.engine.hooks.RandomStateHook`), so if the validation had
    finished before the interruption, running it again gives the same
    metrics and the same best checkpoint; either way the run ends as the
    uninterrupted one.

    Args: those of :class:`mmengine.runner.EpochBasedTrainLoop`.

    Example:
        >>> train_cfg = dict(type='TPRTrainLoop', max_epochs=60,
        ...                  val_interval=1)
    """

    def _val_due(self) -> bool:
        self._decide_current_val_interval()
        return (self.runner.val_loop is not None
                and self._epoch >= self.val_begin
                and (self._epoch % self.val_interval == 0
                     or self._epoch == self._max_epochs))

    def run(self) -> torch.nn.Module:
        """Launch training (validating a resumed epoch first)."""
        self.runner.call_hook('before_train')
        if self._epoch > 0 and self._val_due():
            self.runner.logger.info(
                f'Validating the resumed epoch {self._epoch} (its '
                'validation may not have finished before the interruption)')
            self.runner.val_loop.run()
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch()
            if self._val_due():
                self.runner.val_loop.run()
        self.runner.call_hook('after_train')
        return self.runner.model
