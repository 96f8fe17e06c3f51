"""Retrievers of mmtpr."""
from .tpr_retriever import TPRRetriever

__all__ = ['TPRRetriever']
