"""The one way the tools run git (and GNU patch): ``run``, ``git``, ``git_rc``, ``show``.

Standard library only: ``scripts/apply_patches.sh`` imports it under ``python3 -I -S``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from sglang_mimo.errors import ToolError

StrPath = str | os.PathLike[str]

# The identity of commits the tools make in trees of their own (unpacked wheels).
IDENT = {
    "GIT_AUTHOR_NAME": "sglang-mimo",
    "GIT_AUTHOR_EMAIL": "sglang-mimo@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "sglang-mimo",
    "GIT_COMMITTER_EMAIL": "sglang-mimo@users.noreply.github.com",
}


def run(
    args: Sequence[StrPath],
    cwd: StrPath | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Run a command: (returncode, its stdout and stderr together)."""
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout


def git_rc(
    repo: StrPath, *args: StrPath, env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """``git -C repo ARGS``: (returncode, stdout and stderr together)."""
    return run(["git", "-C", repo, *args], env=env)


def git(
    repo: StrPath,
    *args: StrPath,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> str:
    """``git -C repo ARGS``: its stdout. With ``check``, a failure raises ToolError
    (code 1) with git's message; without, a failure gives what git printed."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise ToolError(f"git {' '.join(map(str, args))}: {proc.stderr.strip()}")
    return proc.stdout


def show(repo: StrPath, path: str, rev: str = "HEAD") -> bytes | None:
    """The bytes of ``rev:path`` in the repository ``repo``; None when rev has no such file."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "show", f"{rev}:{path}"], capture_output=True
    )
    return proc.stdout if proc.returncode == 0 else None


def is_top(repo: StrPath) -> bool:
    """Is ``repo`` the top directory of a git work tree?"""
    out = git(repo, "rev-parse", "--show-toplevel", check=False).strip()
    return bool(out) and Path(out) == Path(repo)
