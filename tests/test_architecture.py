"""The house rules of the package, checked on its source: the import
layers, room sizes, no hasattr-based discovery of PETL modules."""
import ast
import glob
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PACKAGE = osp.join(ROOT, 'mmtpr')
FILES = sorted(glob.glob(osp.join(PACKAGE, '**', '*.py'), recursive=True))
# the lower floors never reach up, not even inside a function
LOWER = ('utils', 'datasets', 'evaluation')
UPPER = ('mmtpr.models', 'mmtpr.apis', 'mmtpr.engine')
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _module(path):
    rel = osp.relpath(path, ROOT)[:-len('.py')].split(osp.sep)
    return '.'.join(rel[:-1] if rel[-1] == '__init__' else rel)


def _imports(path):
    """Absolute names of every module ``path`` imports, anywhere in it."""
    module = _module(path)
    package = module if path.endswith('__init__.py') else \
        module.rsplit('.', 1)[0]
    found = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module
                                        else []))
            else:
                name = node.module or ''
            found += [name] + [f'{name}.{a.name}' for a in node.names]
    return found


@pytest.mark.parametrize('path', [p for p in FILES if osp.relpath(
    p, PACKAGE).split(osp.sep)[0] in LOWER],
    ids=lambda p: osp.relpath(p, ROOT))
def test_lower_floors_do_not_import_upper_ones(path):
    bad = [name for name in _imports(path)
           if any(name == u or name.startswith(u + '.') for u in UPPER)]
    assert not bad, f'{path} imports {bad}'


@pytest.mark.parametrize('path', FILES, ids=lambda p: osp.relpath(p, ROOT))
def test_rooms_are_small(path):
    source = open(path).read()
    assert source.count('\n') <= MAX_FILE_LINES
    long = [f'{node.name} ({node.end_lineno - node.lineno + 1} lines)'
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f'{path}: {long}'


def test_no_hasattr_discovery_of_petl_modules():
    """PETL modules are found by type (PETLModule) and talk through its
    declared interface (set_context, aux_loss, num_domains)."""
    interface = {'set_context', 'aux_loss', 'num_domains', 'routing'}
    found = []
    for path in FILES:
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Call) and getattr(
                    node.func, 'id', None) == 'hasattr' and \
                    len(node.args) == 2 and isinstance(
                        node.args[1], ast.Constant) and \
                    node.args[1].value in interface:
                found.append(f'{osp.relpath(path, ROOT)}:{node.lineno}')
    assert not found
