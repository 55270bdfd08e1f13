"""Where things live, and the pin (``patches/pin.json``).

``REPO`` is the root of the files the tools read (``patches/``, ``recipes/``,
``scripts/apply_patches.sh``):

- ``$SGLANG_MIMO_REPO`` when set (a checkout, or a copy the tests make);
- else the checkout this package runs from (``pip install -e .``,
  ``PYTHONPATH=scripts``, ``scripts/launch``, the images' /opt/sglang-mimo);
- else the copy an installed package ships (``sglang_mimo/_dist``, made by
  setup.py at ``pip install .`` / ``pipx install .``).

The maintainers' commands (``scripts/dev``: docs, changelog, rebase, export-pr, ...)
change the repository or read its tests and docs, so they need a checkout:
``sglang_mimo.dev`` calls ``require_checkout``, which says so plainly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE_ROOT = HERE.parents[1]  # the checkout, when running from scripts/sglang_mimo
SHIPPED = HERE / "_dist"  # the installed package's copy


def _root() -> Path:
    if os.environ.get("SGLANG_MIMO_REPO"):
        return Path(os.environ["SGLANG_MIMO_REPO"])
    if (SOURCE_ROOT / "patches" / "series").is_file():
        return SOURCE_ROOT
    if (SHIPPED / "patches" / "series").is_file():
        return SHIPPED
    return SOURCE_ROOT  # neither: the commands name the missing file


REPO = _root()
# The installed package's copy, seen from the package (SHIPPED) or from the copy of
# the package inside it, which the shipped scripts/apply_patches.sh runs.
INSTALLED = REPO == SHIPPED or (
    REPO.name == "_dist" and REPO.parent.name == "sglang_mimo"
)
PATCHES = REPO / "patches"
SERIES = PATCHES / "series"
PIN_FILE = PATCHES / "pin.json"
APPLY_SCRIPT = REPO / "scripts" / "apply_patches.sh"
RECIPES = REPO / "recipes"
# Downloads and built trees: the checkout's build/, or a user cache when installed.
BUILD = Path(
    os.environ.get("SGLANG_MIMO_BUILD")
    or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sglang-mimo"
        if INSTALLED
        else REPO / "build"
    )
)


class NotACheckout(Exception):
    """A command that needs the repository ran from an installed package."""


def require_checkout(what: str) -> Path:
    """Raise NotACheckout when REPO is an installed package's copy, or lacks ``what``."""
    todo = (
        "run it from a clone (`pip install -e .` there, or `PYTHONPATH=scripts "
        "python3 -m sglang_mimo.cli ...`), or point SGLANG_MIMO_REPO at the clone"
    )
    if INSTALLED:
        raise NotACheckout(
            "this command needs a checkout of the sglang-mimo repository, not the "
            f"copy of the series and recipes an installed package carries: {todo}"
        )
    if not (REPO / what).exists():
        raise NotACheckout(
            f"this command needs a checkout of the sglang-mimo repository ({what} "
            f"is not in {REPO}): {todo}"
        )
    return REPO / what


def load_pin(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Return the pin as a dict (version, tag, distribution, wheels)."""
    path = Path(path or PIN_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: sglang-mimo needs the repository's patches/ "
            "(clone it and `pip install .` from there, or set SGLANG_MIMO_REPO)"
        )
    with open(path, encoding="utf-8") as f:
        pin: dict[str, Any] = json.load(f)
    return pin
