"""Install mmtpr: ``pip install -e .`` (add ``[tests]`` for the test suite)."""
import os.path as osp
from importlib import metadata

from setuptools import find_packages, setup


def _version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmtpr', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def _mmcv_requirement() -> str:
    # The `mmcv` module ships in two distributions: the full `mmcv` (CUDA ops,
    # needs a compiler) and the pure-Python `mmcv-lite`. mmtpr needs only the
    # pure-Python part. Keep a full mmcv that a user already has instead of
    # installing mmcv-lite over it (both write the same files).
    try:
        metadata.version('mmcv')
        return 'mmcv>=2.0.0,<2.3'
    except metadata.PackageNotFoundError:
        return 'mmcv-lite>=2.0.0,<2.3'


def _read(path: str) -> list:
    with open(osp.join(osp.dirname(__file__), path)) as f:
        return [line.strip() for line in f
                if line.strip() and not line.startswith('#')]


def _optional() -> list:
    return [req for name in ('webui', 'tensorboard', 'onnx')
            for req in _read(f'requirements/{name}.txt')]


setup(
    name='mmtpr',
    version=_version(),
    description='Text-based person retrieval with parameter-efficient CLIP '
    '(DM-Adapter, UP-Person) on MMEngine / MMPretrain',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmtpr', 'mmtpr.*']),
    python_requires='>=3.9',
    install_requires=_read('requirements/runtime.txt') + [_mmcv_requirement()],
    extras_require={
        # the test suite runs every optional part (search page, ONNX,
        # TensorBoard, FAISS), so it needs their packages too
        'tests': _read('requirements/tests.txt') + _optional(),
        'faiss': _read('requirements/faiss.txt'),
        'webui': _read('requirements/webui.txt'),
        'tensorboard': _read('requirements/tensorboard.txt'),
        'onnx': _read('requirements/onnx.txt'),
    },
    license='Apache-2.0',
    zip_safe=False,
)
