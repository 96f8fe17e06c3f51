"""Shared fixtures of the security tests: a tiny trained run (config,
checkpoints, data), a folder "outside" the work dir with victims and a
marker path, and log capture."""
import glob
import logging
import os
import os.path as osp
import shutil
import sys
import tempfile

import pytest
import torch
from conftest import build_runner, tiny_cfg

from .hostile import snapshot


def pytest_collection_finish(session):
    """Start the subprocesses of test_exact_resume_demo.py in the
    background when its tests are selected: they then run while the
    in-process tests do (two cores, two kinds of work)."""
    if session.config.option.collectonly or not any(
            item.path.name == 'test_exact_resume_demo.py'
            for item in session.items):
        return
    from .test_exact_resume_demo import BACKGROUND
    factory = getattr(session.config, '_tmp_path_factory', None)
    base = factory.mktemp('exact_resume') if factory is not None else \
        tempfile.mkdtemp(prefix='mmtpr_exact_resume_')
    BACKGROUND.start(base)


def pytest_sessionfinish(session):
    module = sys.modules.get(f'{__package__}.test_exact_resume_demo')
    if module is not None:
        module.BACKGROUND.stop()


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    """A tiny run of the demo config (1-layer CLIP, SynthPedes 12/4/4 ids)
    trained for 2 epochs: its config file, data, and work dir with
    ``epoch_1.pth``, ``epoch_2.pth`` and a best checkpoint."""
    base = tmp_path_factory.mktemp('security_run')
    data_root = str(base / 'synth')
    work_dir = str(base / 'work')
    cfg = tiny_cfg(work_dir, data_root, max_epochs=2)
    config = str(base / 'tiny.py')
    cfg.dump(config)
    torch.manual_seed(0)
    build_runner(cfg).train()
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        assert osp.isfile(osp.join(work_dir, name)), os.listdir(work_dir)
    best = glob.glob(osp.join(work_dir, 'best_*.pth'))
    assert len(best) == 1, os.listdir(work_dir)
    return dict(base=base, config=config, cfg=cfg, data_root=data_root,
                work_dir=work_dir, epoch_1=osp.join(work_dir, 'epoch_1.pth'),
                epoch_2=osp.join(work_dir, 'epoch_2.pth'), best=best[0])


class Outside:
    """A folder outside every work dir: a victim file, a victim folder and
    the path of a marker that hostile input tries to create."""

    def __init__(self, root):
        self.root = str(root)
        os.makedirs(self.root)
        self.victim = osp.join(self.root, 'victim.txt')
        with open(self.victim, 'w') as f:
            f.write('precious\n')
        self.victim_dir = osp.join(self.root, 'victim_dir')
        os.makedirs(osp.join(self.victim_dir, 'sub'))
        with open(osp.join(self.victim_dir, 'sub', 'data.txt'), 'w') as f:
            f.write('precious too\n')
        self.marker = osp.join(self.root, 'MARKER')
        self.before = snapshot(self.root)

    def check(self):
        """Nothing ran (no marker), nothing here was deleted or written."""
        assert not osp.lexists(self.marker), 'the hostile payload ran'
        assert snapshot(self.root) == self.before


@pytest.fixture
def outside(tmp_path):
    place = Outside(tmp_path / 'outside')
    yield place
    place.check()


@pytest.fixture
def fresh_work(tmp_path, trained):
    """A new work dir holding a copy of the trained run's epoch 1."""

    def make(name='work'):
        work = tmp_path / name
        work.mkdir()
        shutil.copy(trained['epoch_1'], work / 'epoch_1.pth')
        return str(work)

    return make


class LogRecords(logging.Handler):
    """Collects the messages of MMEngine's current logger."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    @property
    def text(self):
        return '\n'.join(self.messages)


@pytest.fixture
def mm_log():
    """Call ``mm_log.attach()`` after building a runner or inferencer; its
    ``text`` then holds what MMEngine's current logger printed."""
    from mmengine.logging import MMLogger
    handler = LogRecords()
    attached = []

    def attach():
        logger = MMLogger.get_current_instance()
        logger.addHandler(handler)
        attached.append(logger)
        return handler

    handler.attach = attach
    yield handler
    for logger in attached:
        logger.removeHandler(handler)


def run_logs(work_dir):
    """The text of every log file MMEngine wrote under ``work_dir``."""
    text = []
    for path in sorted(glob.glob(osp.join(str(work_dir), '*', '*.log'))):
        with open(path, errors='replace') as f:
            text.append(f.read())
    return '\n'.join(text)
