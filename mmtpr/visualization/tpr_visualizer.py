"""The visualizer of text-based person retrieval results."""
import os.path as osp
from datetime import datetime
from typing import List, Optional, Sequence

import numpy as np
from mmpretrain.visualization import UniversalVisualizer

from mmtpr.registry import VISUALIZERS
from mmtpr.utils.errors import DataError

from .retrieval import draw_retrieval, save_picture, spaced_queries

_RESULT_KEYS = ('captions', 'gallery_img_paths', 'topk_indices',
                'topk_scores', 'topk_pids', 'query_pids')


@VISUALIZERS.register_module()
class TPRVisualizer(UniversalVisualizer):
    """MMPretrain's ``UniversalVisualizer`` with pictures of text queries
    above their ranked gallery images.

    Each picture shows the query, then the top-k images in rank order with
    rank and score; when person ids are known, images of the query's person
    are framed green and others red (grey when unknown). Pictures go to
    ``out_file`` and to every vis backend of the visualizer (e.g.
    ``LocalVisBackend``, ``TensorboardVisBackend``, W&B) through
    :meth:`add_image`, so ``tools/test.py --show-dir``,
    ``tools/retrieve.py`` and the inferencer all reach the backends that
    the config's ``visualizer`` lists.

    Args: those of :class:`mmpretrain.visualization.UniversalVisualizer`.

    Example:
        >>> visualizer = dict(type='TPRVisualizer',
        ...                   vis_backends=[dict(type='LocalVisBackend')])
    """

    @classmethod
    def get_or_build(cls, cfg: Optional[dict] = None) -> 'TPRVisualizer':
        """The current TPRVisualizer if one exists, else one built from
        ``cfg`` (a visualizer config whose type is TPRVisualizer), else a
        plain one without backends."""
        try:
            return cls.get_current_instance()
        except RuntimeError:  # none created yet
            pass
        stamp = datetime.now().strftime('%Y%m%d_%H%M%S_%f')
        cfg = dict(cfg or {})
        kind = cfg.get('type')
        if kind in (cls.__name__, f'mmtpr.{cls.__name__}', cls):
            cfg['name'] = f"{cfg.get('name', 'tpr_visualizer')}-{stamp}"
            return VISUALIZERS.build(cfg)
        return cls.get_instance(f'tpr_visualizer-{stamp}')

    def draw_text_query(self,
                        query: str,
                        image_paths: Sequence[str],
                        scores: Sequence[float],
                        matches: Optional[Sequence[bool]] = None,
                        title: Optional[str] = None,
                        name: str = 'query',
                        step: int = 0,
                        out_file: Optional[str] = None,
                        show: bool = False) -> np.ndarray:
        """Draw ``query`` above its ranked ``image_paths``; returns the RGB
        picture, also sent to the vis backends as image ``name`` at
        ``step`` and written to ``out_file`` (PNG) if given."""
        picture = draw_retrieval(query, image_paths, scores, matches,
                                 title=title)
        image = np.asarray(picture)
        self.add_image(name, image, step)
        if out_file is not None:
            save_picture(picture, out_file)
        if show:
            self.show(image, win_name=name)
        return image

    def draw_test_results(self, results: dict, out_dir: Optional[str],
                          num: int = 20, topk: int = 10,
                          step: int = 0) -> List[str]:
        """Pictures of ``num`` test queries evenly spaced over the split,
        from the per-query results that ``TPRMetric(out_file=...)`` writes
        (``tools/test.py --out``); each to ``out_dir/query_{index:05d}.png``
        (if ``out_dir``) and to the vis backends. Returns the files."""
        for key in _RESULT_KEYS:
            if results.get(key) is None:
                raise DataError(f"the results have no '{key}'; pictures "
                                'need the captions and image paths of the '
                                'test samples')
        written = []
        for q in spaced_queries(len(results['query_pids']), num):
            indices = list(results['topk_indices'][q])[:topk]
            query_pid = int(results['query_pids'][q])
            out_file = None if out_dir is None else osp.join(
                out_dir, f'query_{q:05d}.png')
            self.draw_text_query(
                str(results['captions'][q]),
                [results['gallery_img_paths'][int(i)] for i in indices],
                [float(s) for s in list(results['topk_scores'][q])[:topk]],
                [int(p) == query_pid for p in
                 list(results['topk_pids'][q])[:topk]],
                title=f'query {q} (person {query_pid})',
                name=f'query_{q:05d}', step=step, out_file=out_file)
            if out_file is not None:
                written.append(out_file)
        return written


def add_tensorboard(cfg) -> None:
    """Add MMEngine's ``TensorboardVisBackend`` to the config's visualizer
    (``tools/train.py --tensorboard``): losses, learning rate, validation
    metrics and the routing monitor's scalars are then written as
    TensorBoard event files under the work dir's ``vis_data/``.

    Raises:
        ConfigError: the ``tensorboard`` package is not installed.
    """
    from mmtpr.utils.errors import ConfigError
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError('--tensorboard needs the tensorboard package: '
                          'pip install tensorboard (or pip install -e '
                          '".[tensorboard]")') from None
    visualizer = dict(cfg.get('visualizer') or dict(type='TPRVisualizer'))
    backends = [dict(b) for b in visualizer.get('vis_backends') or []]
    if not any(b.get('type') == 'TensorboardVisBackend' for b in backends):
        backends.append(dict(type='TensorboardVisBackend'))
    visualizer['vis_backends'] = backends
    cfg.visualizer = visualizer
