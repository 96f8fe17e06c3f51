"""Hooks of mmtpr."""
