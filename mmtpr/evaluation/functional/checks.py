"""Argument checks shared by the ranking functions, :class:`TPRMetric`
and the search indexes of :mod:`mmtpr.apis`.

Every check raises with the offending value and what was expected, and
returns the value in the form the callers compute with.
"""
from numbers import Integral
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

ArrayLike = Union[Tensor, np.ndarray]

# How many offending indices an error message lists.
MAX_LISTED = 10


def format_list(values: List[Any]) -> str:
    """Format the first :data:`MAX_LISTED` values, then '...'.

    Args:
        values (list): The values, e.g. offending query indices.

    Returns:
        str: Like ``'[1, 3, 8]'`` or ``'[0, 1, ..., 9, ...]'``.
    """
    listed = [str(v) for v in values[:MAX_LISTED]]
    if len(values) > MAX_LISTED:
        listed.append('...')
    return '[' + ', '.join(listed) + ']'


def to_tensor(value: Any, name: str,
              dtype: Optional[torch.dtype] = None) -> Tensor:
    """Convert a tensor, numpy array or sequence to a detached tensor: the
    one converter of mmtpr's ranking and search inputs.

    Tensors keep their device; numpy arrays are wrapped without a copy
    when they are contiguous and writeable.

    Args:
        value (Tensor | np.ndarray | Sequence): The input.
        name (str): Its argument name, for the error message.
        dtype (torch.dtype, optional): Convert to it; the values must then
            be real numbers (not bool, complex or text). Defaults to None
            (keep the dtype).

    Returns:
        Tensor: The detached tensor.

    Raises:
        TypeError: If ``value`` cannot be converted.
    """
    if isinstance(value, Tensor):
        tensor = value.detach()
    else:
        if not isinstance(value, np.ndarray):
            try:
                value = np.asarray(value)
            except (TypeError, ValueError) as err:
                raise TypeError(f'`{name}` must be a torch.Tensor or a '
                                f'numpy array, got {type(value).__name__}.'
                                ) from err
        if value.dtype.kind not in 'fiub' or (
                dtype is not None and value.dtype.kind == 'b'):
            raise TypeError(f'`{name}` must hold real numbers, got dtype '
                            f'{value.dtype}.')
        value = np.ascontiguousarray(value)
        if not value.flags.writeable:  # torch.from_numpy warns otherwise
            value = value.copy()
        tensor = torch.from_numpy(value)
    if dtype is not None:
        if tensor.dtype.is_complex or tensor.dtype == torch.bool:
            raise TypeError(f'`{name}` must hold real numbers, got dtype '
                            f'{tensor.dtype}.')
        tensor = tensor.to(dtype)
    return tensor


def is_integer_dtype(dtype: torch.dtype) -> bool:
    """Whether ``dtype`` holds integers (bool does not count)."""
    return not (dtype.is_floating_point or dtype.is_complex
                or dtype == torch.bool)


def check_positive_int(value: Any, name: str) -> int:
    """Check that ``value`` is a positive int (not a bool).

    Args:
        value (Any): The value, e.g. ``chunk_size``, ``keep_topk``.
        name (str): Its argument name, for the error message.

    Returns:
        int: ``value`` as a Python int.

    Raises:
        ValueError: If ``value`` is not a positive int.
    """
    if (isinstance(value, bool) or not isinstance(value, Integral)
            or value < 1):
        raise ValueError(f'`{name}` must be a positive int, got {value!r}.')
    return int(value)


def check_chunk_size(chunk_size: Any) -> int:
    """Check the number of queries ranked at a time (a positive int)."""
    return check_positive_int(chunk_size, 'chunk_size')


def check_keep_topk(keep_topk: Any) -> int:
    """Check how many gallery items per query are kept (a positive int)."""
    return check_positive_int(keep_topk, 'keep_topk')


def check_topk(topk: Union[int, Sequence[int]]) -> Tuple[int, ...]:
    """Check the cut-offs k of R@k.

    Args:
        topk (int | Sequence[int]): One positive int or a sequence of
            them.

    Returns:
        tuple[int]: The cut-offs in the given order, duplicates dropped.

    Raises:
        ValueError: If ``topk`` is not a positive int or a sequence of
            positive ints.
    """
    if isinstance(topk, Integral) and not isinstance(topk, bool):
        topk = (topk, )
    if not isinstance(topk, Sequence) or isinstance(topk, str):
        raise ValueError('`topk` must be a positive int or a sequence of '
                         f'positive ints, got {topk!r}.')
    checked: List[int] = []
    for k in topk:
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise ValueError('`topk` must contain positive ints only, got '
                             f'{k!r} in {tuple(topk)!r}.')
        if int(k) not in checked:
            checked.append(int(k))
    return tuple(checked)


def check_pids(pids: Any, name: str, expected_len: int,
               expected_what: str) -> Tensor:
    """Check that ``pids`` are integer person ids of the expected length.

    Args:
        pids (Tensor | np.ndarray | Sequence[int]): The person ids.
        name (str): Their argument name, for the error message.
        expected_len (int): The expected number of ids.
        expected_what (str): What that number counts, for the message,
            e.g. ``'queries, similarity.shape[0]'``.

    Returns:
        Tensor: The ids, shape (expected_len, ), int64.

    Raises:
        ValueError: If the shape is not ``(expected_len, )``.
        TypeError: If the ids are not integers.
    """
    pids = to_tensor(pids, name)
    if tuple(pids.shape) != (expected_len, ):
        raise ValueError(
            f'`{name}` must have shape ({expected_len},) (the number of '
            f'{expected_what}), got shape {tuple(pids.shape)}.')
    if not is_integer_dtype(pids.dtype):
        raise TypeError(f'`{name}` must hold integer person ids, got dtype '
                        f'{pids.dtype}.')
    return pids.to(torch.int64)


def check_has_positives(query_pids: Tensor, gallery_pids: Tensor) -> None:
    """Raise ValueError if some query has no positive in the gallery.

    Works on the sorted gallery ids, so it costs O((Q + G) log G) and never
    builds a ``(Q, G)`` matrix.

    Args:
        query_pids (Tensor): Person ids of the queries, shape (Q, ).
        gallery_pids (Tensor): Person ids of the gallery, shape (G, ).
    """
    sorted_gallery = torch.sort(gallery_pids).values
    query_pids = query_pids.to(sorted_gallery.device)
    left = torch.searchsorted(sorted_gallery, query_pids, right=False)
    right = torch.searchsorted(sorted_gallery, query_pids, right=True)
    missing = torch.nonzero(right == left).flatten()
    if missing.numel() > 0:
        raise ValueError(
            f'{missing.numel()} of {query_pids.numel()} queries have no '
            'positive (no gallery item with the same person id), so '
            'mAP/mINP are undefined for them. Query indices: '
            f'{format_list(missing.tolist())}; their person ids: '
            f'{format_list(query_pids[missing].tolist())}.')


def check_similarity(similarity: Any) -> Tensor:
    """Check that ``similarity`` is a non-empty 2-D ``(Q, G)`` matrix.

    Args:
        similarity (Tensor | np.ndarray | Sequence): The scores.

    Returns:
        Tensor: The scores as a detached tensor (not copied).

    Raises:
        ValueError: If it is not 2-D or has no query or no gallery item.
    """
    similarity = to_tensor(similarity, 'similarity')
    if similarity.dim() != 2:
        raise ValueError('`similarity` must be 2-D with shape (Q, G), got '
                         f'shape {tuple(similarity.shape)}.')
    if similarity.shape[0] == 0 or similarity.shape[1] == 0:
        raise ValueError('`similarity` must have at least one query and '
                         'one gallery item, got shape '
                         f'{tuple(similarity.shape)}.')
    return similarity


def check_no_nan(scores: Tensor, offset: int = 0) -> None:
    """Raise ValueError naming the rows of ``scores`` that hold NaN.

    Args:
        scores (Tensor): A chunk of similarity rows, shape (n, G).
        offset (int): Index of the chunk's first row, for the message.
            Defaults to 0.
    """
    # A row sum is NaN if the row holds NaN (or both +inf and -inf); one
    # reduction is several times faster than isnan() over every score.
    if not bool(torch.isnan(scores.sum(dim=1)).any()):
        return
    nan_rows = torch.isnan(scores).any(dim=1).nonzero().flatten()
    if nan_rows.numel() > 0:
        raise ValueError(
            '`similarity` contains NaN, e.g. in the rows of queries '
            f'{format_list((nan_rows + offset).tolist())}.')
