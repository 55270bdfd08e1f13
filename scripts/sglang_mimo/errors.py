"""The tools' one error type, and how they say things on stderr.

Standard library only: ``scripts/apply_patches.sh`` imports it under ``python3 -I -S``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

# Where a tool's progress and warnings go (one line each, no trailing newline).
Log = Callable[[str], None]


class ToolError(Exception):
    """A failure with the exit code the command ends with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class RecipeError(ToolError):
    """A recipe or a launcher input is wrong; the message says what and how to fix it.

    Exit code 2 (bad input), as every command that takes a recipe ends with."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message, code)


class RecipeInvalid(RecipeError):
    """The recipe file itself is wrong: not YAML, or fails its schema or the project's
    rules (``recipes.load_recipe``). Exit code 3."""

    def __init__(self, message: str, code: int = 3) -> None:
        super().__init__(message, code)


def stderr_log(prog: str) -> Log:
    """A Log that writes ``PROG: MESSAGE`` lines to stderr."""

    def log(message: str) -> None:
        print(f"{prog}: {message}", file=sys.stderr, flush=True)

    return log
