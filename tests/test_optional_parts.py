"""Where the optional parts must be tested (CI exports
MMTPR_REQUIRE_OPTIONAL=1), their packages are installed: the tests that
need them (search page, ONNX, TensorBoard, FAISS) run instead of
skipping."""
import importlib
import os

import pytest

PACKAGES = ('gradio', 'selenium', 'onnx', 'onnxruntime', 'tensorboard',
            'faiss')


@pytest.mark.skipif(os.environ.get('MMTPR_REQUIRE_OPTIONAL') != '1',
                    reason='MMTPR_REQUIRE_OPTIONAL=1 (as in CI) requires the '
                    'optional packages')
@pytest.mark.parametrize('name', PACKAGES)
def test_optional_package_is_installed(name):
    try:
        importlib.import_module(name)
    except ImportError as err:
        pytest.fail(f'{name} is not importable ({err}): pip install -e '
                    '".[tests]" installs every optional part')
