"""Loading configs in the tools."""
from typing import Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read the config at ``path``, merge ``cfg_options`` (as
    ``--cfg-options``) and set its default scope ('mmtpr' if it names
    none)."""
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmtpr'))
    return cfg
