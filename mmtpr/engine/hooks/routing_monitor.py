"""The routing of mixtures of adapters, read for monitoring: which layers
route, what share of the tokens each expert receives, how sure the router
is, and when an expert has collapsed."""
import math
import re
from typing import Dict, List, NamedTuple, Tuple

import torch
import torch.nn as nn
from mmengine.dist import all_reduce

from mmtpr.models.petl.moa import MixtureOfAdapters

# `...visual.transformer.resblocks.3.branch_mlp` is the visual tower, block
# 3; `...transformer.resblocks.5.branch_mlp` (no `visual.`) the text tower.
_BLOCK = re.compile(r'(?:^|\.)(visual\.)?transformer\.resblocks\.(\d+)'
                    r'(?:\.|$)')


class Router(NamedTuple):
    """A mixture of adapters of the model, with its place."""
    name: str
    tower: str
    layer: str
    module: MixtureOfAdapters


class RoutingStats(NamedTuple):
    """The routing of one layer in the last training forward."""
    name: str
    tower: str
    layer: str
    fractions: List[float]  # share of the assignments per expert, sums to 1
    entropy: float  # mean router entropy over the tokens


def _label(name: str) -> Tuple[str, str]:
    """Module name -> (tower, layer), e.g. ('visual', '3')."""
    match = _BLOCK.search(name)
    if match is None:
        return 'other', name.replace('.', '_')
    return ('visual' if match.group(1) else 'text'), match.group(2)


def find_routers(model: nn.Module) -> List[Router]:
    """Every :class:`MixtureOfAdapters` of ``model``, in model order."""
    routers, seen = [], set()
    for name, module in model.named_modules():
        if isinstance(module, MixtureOfAdapters):
            tower, layer = _label(name)
            if (tower, layer) in seen:  # two routers in one block
                layer = f'{layer}_{name.rsplit(".", 1)[-1]}'
            seen.add((tower, layer))
            routers.append(Router(name, tower, layer, module))
    return routers


def routing_stats(routers: List[Router]) -> List[RoutingStats]:
    """The statistics of every router that has routed, averaged over the
    ranks (one transfer and one all-reduce for all of them)."""
    found = [(r, r.module.routing) for r in routers if r.module.routing]
    if not found:
        return []
    device = found[0][1]['fraction'].device
    flat = torch.cat([
        torch.cat([routing['fraction'].detach().float().reshape(-1),
                   routing['entropy'].detach().float().reshape(1)]).to(device)
        for _, routing in found])
    all_reduce(flat, op='mean')  # no-op outside distributed training
    values = flat.cpu().tolist()
    stats, start = [], 0
    for router, routing in found:
        n = routing['fraction'].numel()
        stats.append(RoutingStats(router.name, router.tower, router.layer,
                                  values[start:start + n],
                                  values[start + n]))
        start += n + 1
    return stats


def routing_scalars(stats: List[RoutingStats]
                    ) -> Tuple[Dict[str, float], Dict[str, float]]:
    """(per-layer, per-tower) scalars: ``moa/{tower}_{layer}/expert{e}``,
    ``moa/{tower}_{layer}/entropy``; ``moa/{tower}/entropy_mean``,
    ``moa/{tower}/min_fraction``."""
    layer_scalars: Dict[str, float] = {}
    tower_entropy: Dict[str, List[float]] = {}
    tower_min: Dict[str, float] = {}
    for stat in stats:
        prefix = f'moa/{stat.tower}_{stat.layer}'
        for e, fraction in enumerate(stat.fractions):
            layer_scalars[f'{prefix}/expert{e}'] = fraction
        layer_scalars[f'{prefix}/entropy'] = stat.entropy
        tower_entropy.setdefault(stat.tower, []).append(stat.entropy)
        tower_min[stat.tower] = min(tower_min.get(stat.tower, math.inf),
                                    min(stat.fractions))
    tower_scalars: Dict[str, float] = {}
    for tower, entropies in tower_entropy.items():
        tower_scalars[f'moa/{tower}/entropy_mean'] = \
            sum(entropies) / len(entropies)
        tower_scalars[f'moa/{tower}/min_fraction'] = tower_min[tower]
    return layer_scalars, tower_scalars


class CollapseDetector:
    """Tells when an expert's share stays below ``threshold`` for
    ``patience`` consecutive checks, once per collapse (it tells again only
    after the expert recovered, i.e. a check at or above the threshold, and
    collapsed again). ``threshold=0`` never tells.

    Args:
        threshold (float): share below which an expert counts as collapsed.
        patience (int): consecutive collapsed checks before telling.
        interval (int): iterations between checks (for the message).
    """

    def __init__(self, threshold: float, patience: int,
                 interval: int) -> None:
        self.threshold, self.patience = threshold, patience
        self.interval = interval
        # (tower, layer, expert) -> (consecutive low checks, first step)
        self._low: Dict[Tuple[str, str, int], Tuple[int, int]] = {}

    def update(self, step: int, stats: List[RoutingStats]) -> List[str]:
        """Record one check at iteration ``step``; returns the messages of
        the collapses detected now."""
        messages = []
        for stat in stats:
            for e, fraction in enumerate(stat.fractions):
                key = (stat.tower, stat.layer, e)
                if fraction >= self.threshold:
                    self._low.pop(key, None)  # recovered
                    continue
                count, first = self._low.get(key, (0, step))
                count += 1
                self._low[key] = (count, first)
                if count == self.patience:
                    messages.append(
                        f'routing collapse in the {stat.tower} tower, layer '
                        f'{stat.layer} ({stat.name}): expert {e} received '
                        f'{fraction:.4f} of the token assignments, below '
                        f'collapse_threshold={self.threshold}, for '
                        f'{count * self.interval} iterations ({count} '
                        f'consecutive checks, iterations {first}-{step})')
        return messages
