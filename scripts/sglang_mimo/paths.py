"""Where things live in the repository, and the pin (``patches/pin.json``)."""

import json
import os
from pathlib import Path

REPO = Path(os.environ.get("SGLANG_MIMO_REPO", Path(__file__).resolve().parents[2]))
PATCHES = REPO / "patches"
SERIES = PATCHES / "series"
PIN_FILE = PATCHES / "pin.json"
APPLY_SCRIPT = REPO / "scripts" / "apply_patches.sh"
RECIPES = REPO / "recipes"


def load_pin(path=PIN_FILE):
    """Return the pin as a dict (version, tag, distribution, wheels)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
