"""Reading the weights of a TorchScript archive without running its code.

``torch.jit.load`` runs the code an archive carries: a module's
``__setstate__`` is TorchScript from the file, and it can, for example,
write any file through ``torch.from_file(..., shared=True)``. OpenAI's CLIP
weights (``ViT-B-16.pt``) are such an archive.
:func:`read_torchscript_state_dict` rebuilds the state dict from the
archive's data instead:

- ``<root>/data.pkl`` is unpickled by a restricted unpickler: TorchScript
  classes (``__torch__.*``) become inert records of their attributes, a
  tensor can only be rebuilt from a storage of the archive with
  bounds-checked offset, sizes and strides, and any other global is
  refused. Nothing from the file is ever called.
- which attributes are parameters and buffers is read from the
  ``__parameters__`` / ``__buffers__`` lists in ``<root>/code/`` with
  :func:`ast.parse`, which parses without executing.
- a module whose class defines ``__setstate__`` (code that
  ``torch.jit.load`` would run), or whose state is not a plain attribute
  dict, is refused, and so is an archive whose code cannot be parsed.

Every problem is a :class:`~mmtpr.utils.errors.CheckpointError` naming the
file.
"""
import ast
import collections
import pickle
import posixpath
import zipfile
from typing import Any, Dict, Iterable, List, Set, Tuple

import torch

from .errors import CheckpointError
from .fileio import check_regular_file

_MAX_PICKLE_BYTES = 256 << 20
_STORAGE_DTYPES = {
    'FloatStorage': torch.float32, 'DoubleStorage': torch.float64,
    'HalfStorage': torch.float16, 'BFloat16Storage': torch.bfloat16,
    'LongStorage': torch.int64, 'IntStorage': torch.int32,
    'ShortStorage': torch.int16, 'CharStorage': torch.int8,
    'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
}


class _ScriptObject:
    """An inert record of a pickled TorchScript object's attributes."""

    qualname = ''

    def __init__(self, *args):
        self.state: Dict[str, Any] = {}

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f'{self.qualname} has a custom __setstate__ (its state is a '
                f'{type(state).__name__}): that is code which mmtpr does not '
                'run')
        self.state = state


class _StorageRef:
    """A storage type named in the pickle: only its dtype is used."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _identity_list(values):
    if not isinstance(values, list):
        raise pickle.UnpicklingError('expected a list')
    return values


def _restore_type_tag(value, type_str):
    return value


class _Unpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` with an allow-list of inert globals."""

    def __init__(self, data: bytes, reader: '_Archive') -> None:
        import io
        super().__init__(io.BytesIO(data))
        self._reader = reader
        self._classes: Dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if module == '__torch__' or module.startswith('__torch__.'):
            qualname = f'{module}.{name}'
            if qualname not in self._classes:
                self._classes[qualname] = type(
                    name, (_ScriptObject, ), {'qualname': qualname})
            return self._classes[qualname]
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageRef(_STORAGE_DTYPES[name])
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
            return self._reader.rebuild_tensor
        if (module, name) == ('collections', 'OrderedDict'):
            return collections.OrderedDict
        if module == 'torch.jit._pickle' and name in (
                'build_intlist', 'build_tensorlist', 'build_doublelist',
                'build_boollist'):
            return _identity_list
        if (module, name) == ('torch.jit._pickle', 'restore_type_tag'):
            return _restore_type_tag
        raise pickle.UnpicklingError(
            f'refusing the global {module}.{name}: a TorchScript weights '
            'archive needs only tensors and module records')

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5
                and pid[0] == 'storage' and isinstance(pid[1], _StorageRef)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise pickle.UnpicklingError(f'unexpected persistent id {pid!r}')
        return self._reader.storage(pid[2], pid[1].dtype, pid[4])


class _Archive:
    """The zip archive and the storages rebuilt from it."""

    def __init__(self, path: str, archive: zipfile.ZipFile,
                 root: str) -> None:
        self.path, self.archive, self.root = path, archive, root
        self._storages: Dict[str, torch.Tensor] = {}

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"cannot read the TorchScript archive "
                               f"'{self.path}': {message}")

    def storage(self, key: str, dtype: torch.dtype,
                numel: int) -> torch.Tensor:
        """The flat tensor of storage ``key`` (``numel`` elements)."""
        if key in self._storages:
            return self._storages[key]
        name = posixpath.join(self.root, 'data', key)
        if '/' in key or '..' in key or name not in self.archive.NameToInfo:
            raise self.fail(f"storage '{key}' is not in the archive")
        itemsize = torch.empty(0, dtype=dtype).element_size()
        info = self.archive.getinfo(name)
        if numel < 0 or info.file_size != numel * itemsize:
            raise self.fail(
                f"storage '{key}' holds {info.file_size} bytes, but "
                f'{numel} elements of {dtype} need {numel * itemsize}')
        raw = bytearray(self.archive.read(name))
        flat = torch.frombuffer(raw, dtype=dtype) if raw else \
            torch.empty(0, dtype=dtype)
        self._storages[key] = flat
        return flat

    def rebuild_tensor(self, storage, offset, size, stride, *unused):
        if not isinstance(storage, torch.Tensor) or not _ints(
                (offset, ) + tuple(size) + tuple(stride)) or \
                len(size) != len(stride):
            raise pickle.UnpicklingError('malformed tensor record')
        if any(s < 0 for s in size) or any(s < 0 for s in stride) or \
                offset < 0:
            raise pickle.UnpicklingError('negative tensor size or stride')
        if all(s > 0 for s in size):
            last = offset + sum((s - 1) * st for s, st in zip(size, stride))
            if last >= storage.numel():
                raise pickle.UnpicklingError(
                    f'a tensor of size {tuple(size)} reaches element {last}'
                    f' of a storage of {storage.numel()}')
        return storage.as_strided(tuple(size), tuple(stride), offset)


def _ints(values: Iterable) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool)
               for v in values)


def _declared_members(archive: zipfile.ZipFile,
                      root: str) -> Dict[str, Set[str]]:
    """qualified class name -> its declared parameters and buffers, from
    the archive's code, parsed (never executed). A class that defines
    ``__setstate__`` maps to :data:`_CUSTOM_SETSTATE`: ``torch.jit.load``
    would run that method, whatever the pickled state looks like."""
    members: Dict[str, Set[str]] = {}
    prefix = f'{root}/code/'
    for name in archive.namelist():
        if not (name.startswith(prefix) and name.endswith('.py')):
            continue
        module = name[len(prefix):-len('.py')].replace('/', '.')
        try:
            tree = ast.parse(archive.read(name).decode('utf-8'))
        except (SyntaxError, UnicodeDecodeError, ValueError) as err:
            raise pickle.UnpicklingError(
                f'its code file {name} cannot be parsed '
                f'({type(err).__name__}), so what it would run on loading '
                'is unknown') from None
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                members[f'{module}.{node.name}'] = _class_members(node)
    return members


_CUSTOM_SETSTATE = frozenset({'__setstate__'})


def _class_members(node: ast.ClassDef) -> Set[str]:
    found: Set[str] = set()
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                stmt.name == '__setstate__':
            return set(_CUSTOM_SETSTATE)
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id in ('__parameters__', '__buffers__')
                and isinstance(stmt.value, (ast.List, ast.Tuple))):
            continue
        found.update(elt.value for elt in stmt.value.elts
                     if isinstance(elt, ast.Constant)
                     and isinstance(elt.value, str))
    return found


def _walk(obj: _ScriptObject, prefix: str,
          members: Dict[str, Set[str]],
          out: 'collections.OrderedDict[str, torch.Tensor]',
          classes: List[str], depth: int = 0) -> None:
    if depth > 64:
        raise pickle.UnpicklingError('modules nested more than 64 deep')
    classes.append(obj.qualname)
    declared = members.get(obj.qualname, set())
    if declared == _CUSTOM_SETSTATE:
        raise pickle.UnpicklingError(
            f'{obj.qualname} has a custom __setstate__ (in its code): that '
            'is code which mmtpr does not run')
    for name, value in obj.state.items():
        if not isinstance(name, str):
            continue
        if isinstance(value, _ScriptObject):
            _walk(value, f'{prefix}{name}.', members, out, classes,
                  depth + 1)
        elif isinstance(value, torch.Tensor) and name in declared:
            out[f'{prefix}{name}'] = value


def _find_root(archive: zipfile.ZipFile, path: str) -> str:
    roots = [n[:-len('/data.pkl')] for n in archive.namelist()
             if n.endswith('/data.pkl') and n.count('/') == 1]
    if len(roots) != 1:
        raise CheckpointError(f"'{path}' is not a TorchScript archive (no "
                              'single <name>/data.pkl)')
    return roots[0]


def read_torchscript_state_dict(
        path: str) -> Tuple['collections.OrderedDict[str, torch.Tensor]',
                            List[str]]:
    """The parameters and buffers of a TorchScript archive, without running
    any of its code.

    Args:
        path (str): the archive (e.g. OpenAI's ``ViT-B-16.pt``).

    Returns:
        tuple: the state dict (same keys and values as
        ``torch.jit.load(path).state_dict()``) and the qualified names of
        the TorchScript classes in the archive (e.g. to tell which
        activation a model was built with).

    Raises:
        CheckpointError: the file is not such an archive, is damaged, or
            holds anything but module records and tensors.
    """
    check_regular_file(path, 'TorchScript archive')
    try:
        with zipfile.ZipFile(path) as archive:
            root = _find_root(archive, path)
            reader = _Archive(path, archive, root)
            byteorder = f'{root}/byteorder'
            if byteorder in archive.NameToInfo and archive.read(
                    byteorder).strip() not in (b'little', b''):
                raise reader.fail('big-endian archives are not supported')
            info = archive.getinfo(f'{root}/data.pkl')
            if info.file_size > _MAX_PICKLE_BYTES:
                raise reader.fail('data.pkl is implausibly large')
            top = _Unpickler(archive.read(info), reader).load()
            members = _declared_members(archive, root)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, KeyError, EOFError,
            ValueError, TypeError, RuntimeError, OSError) as err:
        raise CheckpointError(
            f"cannot read the TorchScript archive '{path}': "
            f'{type(err).__name__}: {err}') from None
    if not isinstance(top, _ScriptObject):
        raise CheckpointError(f"'{path}' does not hold a TorchScript module")
    state_dict: collections.OrderedDict[str, torch.Tensor] = \
        collections.OrderedDict()
    classes: List[str] = []
    try:
        _walk(top, '', members, state_dict, classes)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"cannot read the TorchScript archive "
                              f"'{path}': {err}") from None
    return state_dict, classes
