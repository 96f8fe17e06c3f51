"""``python launch_tool.py TOOL ARGS...``: run ``TOOL`` (tools/train.py or
tools/test.py) with ``mmtpr.utils.setup_dist(cfg)`` called on its config
right before ``Runner.from_cfg``, which is what the tools do once they are
wired to it. Test-only; a no-op wrapper for tools that already call it."""
import runpy
import sys

from mmengine.runner import Runner

from mmtpr.utils import setup_dist

_from_cfg = Runner.from_cfg.__func__


def _from_cfg_with_setup(cls, cfg):
    setup_dist(cfg)
    return _from_cfg(cls, cfg)


if __name__ == '__main__':
    Runner.from_cfg = classmethod(_from_cfg_with_setup)
    tool = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(tool, run_name='__main__')
