"""What turns a preprocessed batch into features, for the inferencer.

The inferencer prepares batches exactly as a dataloader would (the
config's test pipeline, collated) and hands them to an encoder.
:class:`ModelEncoder` runs the model through its own API
(``data_preprocessor`` then ``model(..., mode='tensor')``, which routes by
the samples' domains); other backends (e.g. ONNX Runtime) implement the
same two methods.
"""
from typing import Optional

import torch
import torch.nn as nn


class ModelEncoder:
    """Encode batches with a built model (PyTorch).

    Args:
        model (nn.Module): a :class:`~mmtpr.models.TPRRetriever`, on its
            device, in eval mode.
    """

    backend = 'pytorch'

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def _encode(self, batch: dict, index: int) -> torch.Tensor:
        data = self.model.data_preprocessor(batch, False)
        return self.model(**data, mode='tensor')[index]

    def images(self, batch: dict) -> torch.Tensor:
        """(B, D) features of a batch of images (``inputs``)."""
        return self._encode(batch, 0)

    def texts(self, batch: dict) -> torch.Tensor:
        """(T, D) features of a batch of tokenized captions (``texts``)."""
        return self._encode(batch, 1)

    @property
    def num_domains(self) -> Optional[int]:
        return self.model.backbone.num_domains
