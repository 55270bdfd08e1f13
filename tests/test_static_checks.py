"""The package passes ruff and mypy as pyproject.toml configures them ([tool.ruff],
[tool.mypy]: strict, bar the overrides listed there).

Both run as the developer would run them, from the repository root. mypy keeps its
cache under build/ (a clean checkout, as CI has, pays its cold run: seconds)."""

import subprocess
import sys

import pytest
from sglang_mimo import paths

REPO = paths.REPO
PACKAGE = "scripts/sglang_mimo"


def _check(*argv):
    """Run ``python -m ARGV`` in the repository; fail with its report unless it exits 0."""
    proc = subprocess.run(
        [sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True
    )
    if proc.returncode:
        pytest.fail(f"{argv[0]} found:\n{proc.stdout}{proc.stderr}", pytrace=False)


def test_ruff_is_clean():
    _check("ruff", "check", "--no-cache", "--output-format", "concise", PACKAGE)


def test_mypy_is_clean():
    cache = paths.BUILD / "mypy-cache"
    # files = scripts/sglang_mimo comes from [tool.mypy]
    _check("mypy", "--cache-dir", str(cache))
