"""Exporting trained models for deployment: a self-contained PyTorch
checkpoint (:func:`export_pytorch`) and ONNX graphs of both encoders
(:func:`export_onnx`)."""
from .onnx import export_onnx, write_onnx
from .pytorch import export_pytorch

__all__ = ['export_onnx', 'export_pytorch', 'write_onnx']
