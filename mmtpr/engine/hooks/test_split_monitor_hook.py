"""Evaluate the test split every epoch, as the papers did, for comparison
only: never for model selection."""
import json
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmtpr.registry import HOOKS
from mmtpr.utils.fileio import atomic_write_bytes

from .random_state_hook import get_random_states, set_random_states

LABEL = 'test split, NOT for model selection'
WARNING = ('The test split was evaluated after every epoch and its best '
           "epoch is reported: the protocol of the papers' reference code "
           '(model selection on the test split), which overstates what a '
           'model selected without the test split achieves. It is recorded '
           'only to compare with published tables; mmtpr selects on the '
           'validation split.')


@HOOKS.register_module()
class TestSplitMonitorHook(Hook):
    """Also evaluate the test split after every validation, loudly labelled
    as not for model selection.

    The papers' reference code evaluates the test split every epoch and
    reports the best test epoch. mmtpr selects its checkpoint on the
    validation split; to compare with published tables, this hook
    (``tools/train.py --monitor-test``) also evaluates the test split after
    each validation and, at the end of training, reports the best test
    epoch next to the validation-selected epoch and its test metrics. It
    never touches the checkpoints or the validation metrics, and the
    evaluation does not consume random numbers (the training continues
    exactly as without the hook).

    Everything it writes is labelled: log lines carry
    ``[test split, NOT for model selection]``, scalars are named
    ``test_monitor/...``, and ``out_file`` (in the work dir) holds a
    ``warning`` field next to the per-epoch results.

    Args:
        val_key (str): the validation metric of the checkpoint selection.
            Defaults to 'tpr/R1'.
        out_file (str): JSON file written in the work dir.
            Defaults to 'test_monitor.json'.

    Example:
        >>> custom_hooks = [dict(type='TestSplitMonitorHook')]
    """

    priority = 'LOW'

    def __init__(self, val_key: str = 'tpr/R1',
                 out_file: str = 'test_monitor.json') -> None:
        self.val_key = val_key
        self.out_file = out_file
        self._loader = None
        self._evaluator = None
        self.history: List[Dict] = []

    def before_train(self, runner) -> None:
        if not runner.cfg.get('test_dataloader') or \
                not runner.cfg.get('test_evaluator'):
            raise ValueError('TestSplitMonitorHook needs test_dataloader and '
                             'test_evaluator in the config')
        self._loader = runner.build_dataloader(runner.cfg.test_dataloader)
        self._evaluator = runner.build_evaluator(runner.cfg.test_evaluator)
        self._evaluator.dataset_meta = getattr(self._loader.dataset,
                                               'metainfo', None)
        runner.logger.warning(f'TestSplitMonitorHook: {WARNING}')

    @torch.no_grad()
    def _evaluate(self, runner) -> Dict[str, float]:
        states = get_random_states()
        try:
            for batch in self._loader:
                outputs = runner.model.test_step(batch)
                self._evaluator.process(data_samples=outputs,
                                        data_batch=batch)
            return self._evaluator.evaluate(len(self._loader.dataset))
        finally:
            set_random_states(states)

    def after_train_epoch(self, runner) -> None:
        # configs without validation (ICFG-PEDES) still get the monitor
        if runner.val_loop is None:
            self._record(runner, None, runner.epoch + 1)

    def after_val_epoch(self, runner,
                        metrics: Optional[Dict[str, float]] = None) -> None:
        self._record(runner, metrics, runner.epoch)

    def _record(self, runner, metrics: Optional[Dict[str, float]],
                epoch: int) -> None:
        test = {k.split('/')[-1]: float(v)
                for k, v in self._evaluate(runner).items()}
        entry = dict(epoch=epoch, test=test,
                     val=float((metrics or {}).get(self.val_key, 'nan')))
        self.history = [h for h in self.history
                        if h['epoch'] != epoch] + [entry]
        runner.logger.info(
            f'[{LABEL}] epoch {epoch}: ' + '  '.join(
                f'{k}: {v:.2f}' for k, v in test.items()))
        runner.visualizer.add_scalars(
            {f'test_monitor/{k}': v for k, v in test.items()},
            step=runner.iter)

    def summary(self) -> Dict:
        """The best test epoch, the best validation epoch and every epoch's
        results, with the warning."""
        if not self.history:
            return dict(warning=WARNING, epochs=[])
        best_test = max(self.history, key=lambda h: (h['test'].get('R1', 0),
                                                     -h['epoch']))
        validated = [h for h in self.history if h['val'] == h['val']]
        best_val = max(validated or self.history[-1:],
                       key=lambda h: (h['val'], -h['epoch']))
        return dict(warning=WARNING,
                    best_test_epoch=best_test,
                    val_selected_epoch=best_val,
                    epochs=self.history)

    def after_train(self, runner) -> None:
        summary = self.summary()
        if not summary['epochs']:
            return
        best_test, best_val = (summary['best_test_epoch'],
                               summary['val_selected_epoch'])
        print_log(
            f"[{LABEL}] papers' protocol, best TEST epoch "
            f"{best_test['epoch']}: test R1 {best_test['test'].get('R1'):.2f}"
            f"; mmtpr's protocol, best VAL epoch {best_val['epoch']}: test "
            f"R1 {best_val['test'].get('R1'):.2f}", logger='current')
        path = osp.join(runner.work_dir, self.out_file)
        atomic_write_bytes(json.dumps(summary, indent=2).encode(), path)
