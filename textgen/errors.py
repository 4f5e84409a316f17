"""How stages and the CLI talk to a user: one line for a mistake they can fix (bad params, bad
corpus, missing files), log lines for progress and warnings."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import NoReturn


class UserError(Exception):
    """A problem in the user's input, reported as one line without a traceback."""


def exit_on_user_error(main: Callable[[], object]) -> None:
    """Run ``main``; turn a UserError into one line on stderr and exit status 1."""
    try:
        main()
    except UserError as err:
        _fail(f"error: {err}", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


class _ConsoleFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def configure_logging(level: int = logging.INFO) -> None:
    """The library logs (``logging.getLogger(__name__)``); an entry point shows its records on
    stdout: progress as plain lines, warnings as ``warning: ...``."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_ConsoleFormat("%(message)s"))
    logger = logging.getLogger("textgen")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def _fail(message: str, code: int) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(code)
