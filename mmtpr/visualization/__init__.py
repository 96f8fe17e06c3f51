"""Visualizers of mmtpr (registered in :mod:`mmtpr.registry`)."""
