"""Shared helpers for the recipe and launcher tests (imported by tests/test_*.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
LAUNCH = SCRIPTS / "launch"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from sglang_mimo import paths  # noqa: E402
from sglang_mimo import recipes as R  # noqa: E402

# Launcher inputs taken from the environment; tests start from a clean slate.
LAUNCHER_ENV = [env for _, env in R.SITE_INPUTS.values()] + [R.HEAD_ADDR_INPUT[1]]


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}
    env.update(extra)
    return env


def launch(*args, env=None, timeout=60):
    """Run scripts/launch (the executable, as a user does) and return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(LAUNCH), *map(str, args)],
        capture_output=True,
        text=True,
        env=env if env is not None else clean_env(),
        timeout=timeout,
        cwd="/",
    )


def argcheck(items, timeout=240):
    """Run sglang_mimo.argcheck (SGLang's own parser) in a subprocess over the items."""
    r = subprocess.run(
        [sys.executable, "-m", "sglang_mimo.argcheck"],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        env=clean_env(PYTHONPATH=str(SCRIPTS)),
        timeout=timeout,
    )
    assert r.stdout, r.stderr[-3000:]
    return r.returncode, json.loads(r.stdout)
