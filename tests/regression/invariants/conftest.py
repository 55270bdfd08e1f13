"""Invariant tests: behaviour the series must not change (they pass on both trees).

They are not sent upstream. They reuse the fixtures and helpers of the patches'
registered test files (``tests/regression/registered/...``), whose folders go on
``sys.path`` here, so each helper is written once, in the file upstream gets.
"""

import sys
from pathlib import Path

REGISTERED = Path(__file__).resolve().parents[1] / "registered"
for folder in sorted({p.parent for p in REGISTERED.rglob("test_*.py")}):
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
