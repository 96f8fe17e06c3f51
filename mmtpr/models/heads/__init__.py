"""Heads of mmtpr."""
from .sdm_head import SDMHead

__all__ = ['SDMHead']
