"""Exporting trained models for deployment: a self-contained PyTorch
checkpoint (:func:`export_pytorch`), ONNX graphs of both encoders
(:func:`export_onnx`) and a CLIP weights file (:func:`export_clip_weights`)."""
from .clip_weights import export_clip_weights
from .onnx import export_onnx, write_onnx
from .pytorch import export_pytorch

__all__ = ['export_clip_weights', 'export_onnx', 'export_pytorch',
           'write_onnx']
