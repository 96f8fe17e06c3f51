"""Pictures of retrieval results."""
from .retrieval import draw_retrieval, draw_test_results, save_picture

__all__ = ['draw_retrieval', 'draw_test_results', 'save_picture']
