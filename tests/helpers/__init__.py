"""Helpers that tests load into subprocesses (``custom_imports``)."""
