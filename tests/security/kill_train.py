"""Run ``tools/train.py`` and SIGKILL it at a chosen moment, as a crash
or an out-of-memory kill would (see test_exact_resume_demo.py).

``python kill_train.py MOMENT EPOCH TRAIN_ARGS...`` where MOMENT is

- ``after_checkpoint``: right after the checkpoint of epoch EPOCH is
  written (CheckpointHook.after_train_epoch returned);
- ``during_val``: during the validation of epoch EPOCH, after its first
  batch was processed;
- ``during_best_save``: inside the atomic write of the EPOCH-th best
  checkpoint (``best_*.pth``) of the run, with half of its bytes written
  to the temp file.

The process must die there: if the moment never comes, it exits with
status 3 after training.
"""
import importlib.util
import os
import os.path as osp
import signal
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def after_checkpoint(epoch):
    from mmengine.hooks import CheckpointHook
    original = CheckpointHook.after_train_epoch

    def patched(self, runner):
        original(self, runner)
        if runner.epoch + 1 == epoch:
            assert osp.isfile(osp.join(runner.work_dir,
                                       f'epoch_{epoch}.pth'))
            die()

    CheckpointHook.after_train_epoch = patched


def during_val(epoch):
    from mmengine.runner import ValLoop
    original = ValLoop.run_iter

    def patched(self, idx, data_batch):
        original(self, idx, data_batch)
        if self.runner.epoch == epoch:
            die()

    ValLoop.run_iter = patched


def during_best_save(count):
    from mmtpr.utils import fileio
    original_write = fileio.atomic_write_bytes
    original_chunks = fileio._write_chunks
    state = dict(path=None, best_writes=0)

    def write(data, path):
        state['path'] = os.fspath(path)
        if osp.basename(state['path']).startswith('best_'):
            state['best_writes'] += 1
        return original_write(data, path)

    def chunks(file, data):
        name = osp.basename(state['path'] or '')
        if name.startswith('best_') and state['best_writes'] == count:
            view = memoryview(data)
            file.write(view[:len(view) // 2])
            file.flush()
            os.fsync(file.fileno())
            die()
        return original_chunks(file, data)

    fileio.atomic_write_bytes = write
    fileio._write_chunks = chunks


def main():
    moment, number = sys.argv[1], int(sys.argv[2])
    dict(after_checkpoint=after_checkpoint, during_val=during_val,
         during_best_save=during_best_save)[moment](number)
    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(ROOT, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(sys.argv[3:])
    print(f'kill_train: the moment {moment} {number} never came',
          file=sys.stderr)
    sys.exit(3)


if __name__ == '__main__':
    main()
