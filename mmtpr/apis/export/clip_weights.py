"""CLIP weights out of a trained retriever."""
import io
from typing import Dict

import torch

from mmtpr.utils.checkpoint import load_state_dict_file
from mmtpr.utils.errors import CheckpointError
from mmtpr.utils.fileio import atomic_write_bytes

_PREFIX = 'backbone.clip.'


def export_clip_weights(checkpoint: str, out: str) -> Dict[str, int]:
    """Write the CLIP of a retriever checkpoint as a plain open_clip state
    dict (what ``OpenCLIPBackbone(pretrained=out)`` reads): e.g. a CLIP
    trained from scratch, to be frozen and adapted by a PETL method.

    Args:
        checkpoint (str): a full checkpoint of a
            :class:`~mmtpr.models.TPRRetriever` with an OpenCLIPBackbone.
        out (str): the weights file to write (atomically).

    Returns:
        dict: ``tensors`` and ``parameters`` written.

    Raises:
        CheckpointError: the checkpoint holds no CLIP weights (e.g. a
            PETL-only checkpoint).
    """
    state = load_state_dict_file(checkpoint)
    state = state.get('state_dict', state)
    clip = {key[len(_PREFIX):]: value for key, value in state.items()
            if key.startswith(_PREFIX)}
    if not clip:
        raise CheckpointError(f"checkpoint '{checkpoint}' holds no CLIP "
                              f"weights (no '{_PREFIX}*' keys)")
    buffer = io.BytesIO()
    torch.save(clip, buffer)
    atomic_write_bytes(buffer.getbuffer(), out)
    return dict(tensors=len(clip),
                parameters=sum(v.numel() for v in clip.values()))
