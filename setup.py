"""Packaging hook: ship the series, the pin, the recipes and the apply script in the wheel.

``pip install .`` / ``pipx install .`` (not editable) copy ``patches/``, ``recipes/``,
``scripts/apply_patches.sh`` with the package it runs, ``LICENSE`` and ``NOTICE`` into
``sglang_mimo/_dist/``
of the built package, in the repository's own layout, so the installed
``sglang-mimo`` finds them there (``sglang_mimo.paths``) and the shipped
``apply_patches.sh`` finds the series beside it. Editable installs and
``PYTHONPATH=scripts`` use the checkout itself. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# apply_patches.sh runs scripts/sglang_mimo/apply.py from beside it (python3 -I -S: no
# site-packages), so the shipped copy carries the package in the same layout.
SHIPPED = [
    "patches",
    "recipes",
    "scripts/apply_patches.sh",
    "scripts/sglang_mimo",
    "LICENSE",
    "NOTICE",
]


class BuildWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "sglang_mimo" / "_dist"
        shutil.rmtree(dest, ignore_errors=True)
        for rel in SHIPPED:
            src, out = ROOT / rel, dest / rel
            if not src.exists():
                raise SystemExit(f"setup.py: {rel} is missing from the source tree")
            out.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(
                    src,
                    out,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_dist"),
                )
            else:
                shutil.copy2(src, out)  # keeps apply_patches.sh executable


setup(cmdclass={"build_py": BuildWithData})
