"""Pictures of retrieval results and the visualizer that sends them to
files and vis backends."""
from .retrieval import draw_retrieval, save_picture, spaced_queries
from .tpr_visualizer import TPRVisualizer, add_tensorboard

__all__ = ['TPRVisualizer', 'add_tensorboard', 'draw_retrieval',
           'save_picture', 'spaced_queries']
