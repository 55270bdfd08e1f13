"""Shared fixtures: the pinned wheel, and the unpatched and patched SGLang trees.

Both trees are site-packages layout (a directory holding ``sglang/``) unpacked
from the pinned wheel; the patched one is patched by ``scripts/apply_patches.sh``
itself, never by a copy of its logic. ``tests/regression/`` is not collected by
the outer run: ``tests/test_both_ways.py`` runs each of its files against both
trees in a subprocess.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from sglang_mimo import paths  # noqa: E402

APPLY = paths.APPLY_SCRIPT

if not os.environ.get("SGLANG_MIMO_TREE"):
    collect_ignore = ["regression", "engine"]


def run_apply(*args, env=None, check=False):
    """Run scripts/apply_patches.sh; return the CompletedProcess (text)."""
    proc = subprocess.run(
        [str(APPLY), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"apply_patches.sh {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc


def unpack_wheel(wheel, dest):
    """Unpack a wheel into ``dest`` (site-packages layout, dist-info included)."""
    with zipfile.ZipFile(wheel) as z:
        z.extractall(dest)
    return Path(dest)


@pytest.fixture(scope="session")
def pinned_wheel():
    """The pinned wheel for this interpreter, downloaded and checked by the apply script."""
    proc = run_apply("--fetch", check=True)
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def pristine_tree(pinned_wheel, tmp_path_factory):
    """The unpacked pinned wheel. Never modify it: copy it (see ``fresh_tree``)."""
    return unpack_wheel(pinned_wheel, tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def fresh_tree(pristine_tree, tmp_path):
    """A private copy of the pristine site-packages tree, python files only."""
    dest = tmp_path / "site"
    shutil.copytree(
        pristine_tree,
        dest,
        ignore=shutil.ignore_patterns("*.so", "*.cu", "*.cuh", "*.h", "*.cpp"),
    )
    return dest


@pytest.fixture(scope="session")
def trees(pristine_tree, tmp_path_factory):
    """{"unpatched": Path, "patched": Path}: the two trees the regression tests run on."""
    base = tmp_path_factory.mktemp("trees")
    unpatched = base / "unpatched"
    patched = base / "patched"
    shutil.copytree(pristine_tree, unpatched, symlinks=True)
    shutil.copytree(pristine_tree, patched, symlinks=True)
    run_apply(patched, check=True)
    return {"unpatched": unpatched, "patched": patched}
