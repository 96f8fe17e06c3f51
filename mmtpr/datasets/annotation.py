"""Reading TPR annotation files: the JSON list, its records, their ids,
captions and image paths, with errors that name the file and the record."""
import json
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Tuple

from mmtpr.utils.errors import DataError, MissingFileError
from mmtpr.utils.fileio import read_bounded

# Largest annotation file read (CUHK-PEDES' is about 40 MB).
_MAX_ANNOTATION_BYTES = 2 << 30
# Person ids: ASCII decimal digits, no sign, no leading zero, < 2**63.
_ID_PATTERN = re.compile(r'(0|[1-9][0-9]{0,17})')
_MAX_ID = 2**63 - 1


class AnnotationError(DataError):
    """A TPR annotation file or one of its records is not as expected.

    ``reason`` is a short category ('missing key', 'malformed value', ...)
    under which ``skip_bad_records`` counts the record.
    """

    def __init__(self, message: str, reason: str = 'malformed value'):
        super().__init__(message)
        self.reason = reason


class _Oversized(str):
    """An integer of the JSON file too long to be an id (kept as text)."""


def _parse_int(text: str):
    return int(text) if len(text) <= 19 else _Oversized(text)


def _leaves_root(path: str) -> bool:
    """Whether a relative image path of an annotation leaves its folder:
    absolute (POSIX or Windows style) or with a ``..`` component."""
    parts = re.split(r'[\\/]', path)
    return (osp.isabs(path) or path.startswith(('/', '\\')) or '..' in parts
            or (len(parts[0]) >= 2 and parts[0][1] == ':'))


class AnnotationRecordsMixin:
    """The parsing of an IRRA-family annotation file, for
    :class:`~mmtpr.datasets.BaseTPRDataset` (which provides ``ann_file``,
    ``data_root``, ``split``, ``allow_outside_root``, ``skip_bad_records``,
    ``LAYOUT_HINT`` and ``parse_record``)."""

    def parse_cuhk_style_record(self, index: int, record: Any,
                                path_key: str) -> Dict[str, Any]:
        """Read a record of the IRRA-family schema: ``split``, ``id``,
        ``captions`` and the image path under ``path_key``. A split other
        than 'train' and 'test' counts as 'val', as in the reference."""
        split = self._require(index, record, 'split')
        if not isinstance(split, str):
            raise self._fail(index, f"'split' must be a string, got {split!r}")
        if split not in ('train', 'test'):
            split = 'val'
        img_path = self._require(index, record, path_key)
        if not isinstance(img_path, str) or not img_path:
            raise self._fail(index, f"'{path_key}' must be a non-empty path "
                             f'string, got {img_path!r}')
        if not self.allow_outside_root and _leaves_root(img_path):
            raise self._fail(
                index, f"'{path_key}' {img_path!r} leaves the image folder "
                '(an absolute path or ..); pass allow_outside_root=True to '
                'allow it', reason='path outside the root')
        return dict(
            split=split,
            person_id=self._person_id(index,
                                      self._require(index, record, 'id')),
            img_path=img_path,
            captions=self._captions(index,
                                    self._require(index, record, 'captions')))

    def _fail(self, index: int, message: str,
              reason: str = 'malformed value') -> AnnotationError:
        return AnnotationError(f'{self.ann_file}: record {index}: {message}',
                               reason)

    def _require(self, index: int, record: Any, key: str) -> Any:
        if not isinstance(record, dict):
            raise self._fail(
                index, f'expected a JSON object, got {type(record).__name__}')
        if key not in record:
            raise self._fail(
                index, f"missing key '{key}' (keys present: "
                f'{sorted(record)})', reason='missing key')
        return record[key]

    def _person_id(self, index: int, value: Any) -> int:
        """An id: a JSON integer in [0, 2**63), or a string of ASCII
        decimal digits without a leading zero ('٣' or '007' would silently
        merge persons, '1_000' is Python's syntax, not the file's)."""
        if isinstance(value, _Oversized) or (
                isinstance(value, int) and not isinstance(value, bool)
                and not 0 <= value <= _MAX_ID):
            raise self._fail(index, f"'id' {str(value)[:20]}... is not an "
                             'integer in [0, 2**63)' if len(str(value)) > 20
                             else f"'id' {value} is not an integer in "
                             '[0, 2**63)')
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _ID_PATTERN.fullmatch(value) and \
                value.isascii():
            return int(value)
        raise self._fail(index, "'id' must be an integer (or a string of "
                         'ASCII decimal digits without a leading zero), got '
                         f'{value!r}')

    def _captions(self, index: int, value: Any) -> List[str]:
        if not isinstance(value, list) or not value:
            raise self._fail(index, "'captions' must be a non-empty list of "
                             f'strings, got {value!r}')
        for j, caption in enumerate(value):
            if not isinstance(caption, str) or not caption.strip():
                raise self._fail(index, f"'captions'[{j}] must be a "
                                 f'non-empty string, got {caption!r}')
        return list(value)

    def _read_json(self) -> list:
        path = self.ann_file
        root = self.data_root
        if root and not osp.isdir(root):
            raise MissingFileError(
                f"{type(self).__name__}: data_root '{root}' is not a "
                f'directory. Expected layout: {self.LAYOUT_HINT}')
        if not osp.lexists(path):
            raise MissingFileError(
                f"{type(self).__name__}: annotation file '{path}' not found."
                f' Expected layout: {self.LAYOUT_HINT}')
        data = read_bounded(path, _MAX_ANNOTATION_BYTES, 'annotation file')
        try:
            records = json.loads(data.decode('utf-8'), parse_int=_parse_int)
        except (ValueError, UnicodeDecodeError) as err:
            raise AnnotationError(f'{path}: not valid JSON ({err})') from None
        except RecursionError:
            raise AnnotationError(f'{path}: not valid JSON (nested too '
                                  'deeply to be an annotation file)') from None
        if not isinstance(records, list):
            raise AnnotationError(
                f'{path}: expected a JSON list of records, got '
                f'{type(records).__name__}')
        return records

    def _parse_records(self, records: list,
                       skipped: List[Tuple[int, str, str]]) -> List[dict]:
        """Parse every record; a bad one raises, or is skipped and noted in
        ``skipped`` as (index, reason, message) when ``skip_bad_records``.
        """
        parsed = []
        for index, record in enumerate(records):
            try:
                rec = self.parse_record(index, record)
            except AnnotationError as err:
                if not self.skip_bad_records:
                    raise
                if self._raw_split(record) in (None, self.split):
                    skipped.append((index, err.reason, str(err)))
                continue
            rec['index'] = index
            parsed.append(rec)
        return parsed

    @staticmethod
    def _raw_split(record: Any) -> Optional[str]:
        """The split of a (possibly bad) record, None if unknown."""
        split = record.get('split') if isinstance(record, dict) else None
        if not isinstance(split, str):
            return None
        return split if split in ('train', 'test') else 'val'
