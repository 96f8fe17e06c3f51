"""What every tool does with a user's mistake: one clear block, no
traceback, a non-zero exit (``--debug`` shows the traceback)."""
import argparse
import sys
import textwrap
from typing import Callable, List, Optional

from .errors import MMTPRError

EXIT_USER_ERROR = 2


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--debug', action='store_true',
        help='show the full traceback of an error instead of its message')


def format_error(err: BaseException) -> str:
    """The error as a short block: 'error:' and the message, wrapped."""
    lines: List[str] = []
    for paragraph in str(err).strip().splitlines() or ['']:
        lines.extend(textwrap.wrap(paragraph, 100) or [''])
    return '\n'.join([f'error: {lines[0]}'] + [f'  {line}' for line in
                                                lines[1:]] +
                     ['(run with --debug for the traceback)'])


def run_tool(main: Callable, argv: Optional[List[str]] = None) -> None:
    """Run a tool's ``main(argv)`` and exit: with its return value when it
    is an int, 0 otherwise, and :data:`EXIT_USER_ERROR` after printing an
    :class:`MMTPRError` as one block on stderr. Any other exception is a
    bug and keeps its traceback."""
    args = sys.argv[1:] if argv is None else argv
    try:
        result = main(argv)
    except MMTPRError as err:
        if '--debug' in args:
            raise
        sys.stdout.flush()
        print(format_error(err), file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
