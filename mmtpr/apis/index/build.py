"""Building an index of a given kind."""
import inspect

from .base import INDEX_KINDS, ArrayLike, BaseIndex
from .exact import ExactIndex
from .faiss_index import FaissFlatIndex, FaissIVFIndex


def _check_options(cls, options: dict, what: str) -> None:
    """Raise a TypeError naming the options ``cls`` does not take."""
    accepted = [name for name, param in
                inspect.signature(cls.__init__).parameters.items()
                if param.kind == param.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f'Unknown option(s) for {what}: '
                        f'{", ".join(unknown)}; it takes '
                        f'{", ".join(accepted) or "none"}.')


_INDEX_CLASSES = {
    'exact': ExactIndex,
    'faiss-flat': FaissFlatIndex,
    'faiss-ivf': FaissIVFIndex,
}


def build_index(features: ArrayLike, kind: str = 'exact',
                **options) -> BaseIndex:
    """Build a top-k inner-product index over a gallery.

    Args:
        features (Tensor | np.ndarray): Gallery features, shape ``(N, D)``,
            finite; L2-normalised for cosine similarity. Converted to
            float32.
        kind (str): ``'exact'`` (default; brute force in torch),
            ``'faiss-flat'`` (exact, FAISS) or ``'faiss-ivf'``
            (approximate, FAISS).
        **options: Keyword options of the kind's class:
            :class:`ExactIndex` (``max_block_elements``, ``device``),
            :class:`FaissFlatIndex` (``num_threads``,
            ``blas_min_queries``), :class:`FaissIVFIndex` (``nlist``,
            ``nprobe``, ``train_size``, ``niter``, ``seed``,
            ``num_threads``, ``blas_min_queries``).

    Returns:
        BaseIndex: The index; see :meth:`BaseIndex.search`.

    Raises:
        ValueError: An unknown ``kind``, features that are not 2-D, empty
            or not finite, or a bad option value.
        TypeError: An option the kind does not take.
        ImportError: A FAISS kind without ``faiss`` installed.

    Example:
        >>> index = build_index(gallery_feats, kind='faiss-ivf', nprobe=32)
        >>> scores, indices = index.search(text_feats, topk=10)
    """
    if kind not in _INDEX_CLASSES:
        raise ValueError(f'Unknown index kind {kind!r}; choose one of '
                         f'{", ".join(INDEX_KINDS)}.')
    cls = _INDEX_CLASSES[kind]
    _check_options(cls, options, f'index kind {kind!r}')
    return cls(features, **options)


