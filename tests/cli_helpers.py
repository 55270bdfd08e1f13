"""Run the sglang-mimo CLI in a subprocess, on this repository or on a copy of it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD = Path(os.environ.get("SGLANG_MIMO_BUILD", REPO / "build"))
COPIED = ["scripts", "patches", "CHANGELOG.md", "README.md", "pyproject.toml"]


def run_cli(*args, repo=REPO, check_rc=None, module=None):
    """The command line with the tooling of ``repo``; CompletedProcess.

    ``sglang-mimo ARGS`` (``python -m sglang_mimo.cli``), or for a maintainer command
    ``scripts/dev ARGS`` (``python -m sglang_mimo.dev``), as a user or a maintainer
    runs it; ``module`` picks the entry instead."""
    from sglang_mimo.cli import MAINTAINER_COMMANDS

    if module is None:
        dev = bool(args) and str(args[0]) in MAINTAINER_COMMANDS
        module = "sglang_mimo.dev" if dev else "sglang_mimo.cli"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(repo) / "scripts"),
        "SGLANG_MIMO_REPO": str(repo),
        "SGLANG_MIMO_BUILD": str(BUILD),  # one wheel cache for every copy
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
    )
    if check_rc is not None:
        assert proc.returncode == check_rc, (
            f"{module} {' '.join(map(str, args))} exited {proc.returncode}, "
            f"expected {check_rc}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def repo_copy(dest):
    """A copy of the files the tooling reads and writes (scripts, patches, docs, pin)."""
    dest = Path(dest)
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(
                src, dest / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(src, dest / name)
    (dest / "tests").mkdir()
    shutil.copy2(
        REPO / "tests" / "requirements.txt", dest / "tests" / "requirements.txt"
    )
    return dest
