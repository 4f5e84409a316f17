"""The one exception type for mistakes a user can fix (bad params, bad corpus, missing files)."""

from __future__ import annotations

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


def _fail(message: str, code: int) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(code)
