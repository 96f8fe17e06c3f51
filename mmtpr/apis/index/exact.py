"""Brute-force inner-product search in torch (kind ``'exact'``)."""
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmtpr.evaluation.functional import (
    check_positive_int,
    topk_by_score_then_index,
)

from .base import ArrayLike, BaseIndex, _check_features

# 2**26 float32 scores = 256 MB per block in the exact search.
DEFAULT_MAX_BLOCK_ELEMENTS = 2**26


class ExactIndex(BaseIndex):
    """Brute-force inner-product search in torch (kind ``'exact'``).

    The features are kept as a float32 tensor, without a copy when they
    already are a contiguous float32 tensor or array (changing them later
    changes the index). Searches run on the features' device, so a CUDA
    gallery is searched on the GPU.

    Args:
        features (Tensor | np.ndarray): Gallery, shape ``(N, D)``.
        max_block_elements (int): Most scores computed at a time; the
            queries and, when one query row alone is too long, the gallery
            are cut into blocks to stay within it. Default ``2**26``
            (256 MB of float32). Tie handling can take about three times
            as much for the rows with a tie at the k-th place.
        device (str | torch.device, optional): Where to keep the features
            and search; default: where they are.
    """

    kind = 'exact'

    def __init__(self,
                 features: ArrayLike,
                 *,
                 max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
                 device: Optional[Union[str, torch.device]] = None) -> None:
        tensor = _check_features(features)
        super().__init__(*tensor.shape)
        self.max_block_elements = check_positive_int(max_block_elements,
                                                     'max_block_elements')
        if device is not None:
            tensor = tensor.to(device)
        self.features = tensor.contiguous()
        self.device = self.features.device

    def _search(self, queries: Tensor, k: int) -> Tuple[Tensor, Tensor]:
        queries = queries.to(self.device)
        num_queries, ntotal = queries.shape[0], self.ntotal
        query_step = max(1, min(num_queries,
                                self.max_block_elements // ntotal))
        gallery_step = max(1, min(ntotal,
                                  self.max_block_elements // query_step))
        out_scores = torch.empty(num_queries, k, device=self.device)
        out_indices = torch.empty(num_queries, k, dtype=torch.long,
                                  device=self.device)
        with torch.inference_mode():
            for q0 in range(0, num_queries, query_step):
                block_queries = queries[q0:q0 + query_step]
                best = None
                for g0 in range(0, ntotal, gallery_step):
                    gallery = self.features[g0:g0 + gallery_step]
                    scores, cols = topk_by_score_then_index(
                        block_queries @ gallery.T, k)
                    cols += g0
                    if best is not None:
                        # Merge with the best of the earlier blocks.
                        scores, cols = topk_by_score_then_index(
                            torch.cat([best[0], scores], dim=1), k,
                            indices=torch.cat([best[1], cols], dim=1))
                    best = scores, cols
                out_scores[q0:q0 + query_step] = best[0]
                out_indices[q0:q0 + query_step] = best[1]
        return out_scores, out_indices

    def save(self, path: str) -> None:
        """Write the features as a ``.npy`` file at ``path`` (as given)."""
        with open(path, 'wb') as f:
            np.save(f, self.features.cpu().numpy())

