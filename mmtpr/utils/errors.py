"""The errors mmtpr raises for bad input: files, data, checkpoints, configs.

Every error that a user can fix (a missing or damaged file, a malformed
annotation, a checkpoint that does not fit the config, a bad option) is an
:class:`MMTPRError`. Each subclass also derives from the built-in exception
that describes it (``FileNotFoundError``, ``ValueError``), so callers that
catch the built-in keep working. The tools catch :class:`MMTPRError` and
print its message as one block without a traceback (``--debug`` shows it);
anything else is a bug and keeps its traceback.
"""


class MMTPRError(Exception):
    """Base class of the errors caused by input that the user can fix."""


class MissingFileError(MMTPRError, FileNotFoundError):
    """A file or folder that mmtpr was pointed at does not exist."""


class DataError(MMTPRError, ValueError):
    """A dataset, an annotation record, an image or a gallery is not as
    expected."""


class UnsafeFileError(DataError):
    """A file that mmtpr refuses to read: not a regular file (a FIFO, a
    device), larger than the bound, or outside the root it must stay in."""


class CheckpointError(MMTPRError, ValueError):
    """A checkpoint (or weights file) that cannot be loaded, or does not
    fit the model."""


class ConfigError(MMTPRError, ValueError):
    """A config value or command-line option that cannot work."""
