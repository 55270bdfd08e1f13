"""Plumbing for regression tests, which run once per tree (see tests/test_both_ways.py).

The outer harness sets SGLANG_MIMO_TREE (the tree's directory, first on
PYTHONPATH) and SGLANG_MIMO_REPORT (where to write the outcome of every test,
with the patch each ``@pytest.mark.fixes`` test proves). Tests never read these.

The files under ``registered/`` are upstream's own test files (``test/registered/``
there): they carry no marker; the harness knows each one's patch from the patch
headers (``Regression-Test``). A test there that needs a GPU skips itself the
upstream way (``pytest.mark.skipif(not torch.cuda.is_available(), ...)``) and is
reported as a CUDA test.
"""

import json
import os

import pytest

TREE = os.environ.get("SGLANG_MIMO_TREE")
REPORT = os.environ.get("SGLANG_MIMO_REPORT")
_results = {}


def pytest_configure(config):
    if not TREE:
        raise pytest.UsageError(
            "tests/regression runs under tests/test_both_ways.py (make test), "
            "which points SGLANG_MIMO_TREE and PYTHONPATH at an SGLang tree"
        )
    import sglang

    where = os.path.realpath(sglang.__file__)
    if not where.startswith(os.path.realpath(TREE) + os.sep):
        raise pytest.UsageError(f"sglang was imported from {where}, not from {TREE}")


def _has_cuda():
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def _needs_cuda(item):
    """Marked ``cuda``, or skipped upstream's way when no CUDA GPU is there."""
    if item.get_closest_marker("cuda"):
        return True
    for mark in item.iter_markers("skipif"):
        if "cuda" in str(mark.kwargs.get("reason", "")).lower():
            return True
    for mark in item.iter_markers("skip"):
        reason = mark.kwargs.get("reason", mark.args[0] if mark.args else "")
        if "cuda" in str(reason).lower():
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Upstream-style GPU tests get the ``cuda`` marker too, so ``-m cuda``
    # (scripts/device_cuda_tests.py) selects them; before ``-m`` deselects.
    for item in items:
        if _needs_cuda(item) and not item.get_closest_marker("cuda"):
            item.add_marker(pytest.mark.cuda)
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    marker = item.get_closest_marker("fixes")
    entry = _results.setdefault(
        item.nodeid,
        {
            "fixes": marker.args[0] if marker else None,
            # What the failure on the unpatched tree must say (optional).
            "unpatched": marker.kwargs.get("unpatched") if marker else None,
            "cuda": _needs_cuda(item),
            "outcome": "passed",
            "message": "",
        },
    )
    if rep.failed:
        entry["outcome"] = "failed"
        crash = getattr(rep.longrepr, "reprcrash", None)
        entry["message"] = (
            crash.message
            if crash is not None
            else (rep.longreprtext or "").strip().splitlines()[-1:]
        )
    elif rep.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session, exitstatus):
    if REPORT:
        with open(REPORT, "w") as f:
            json.dump({"results": _results, "exitstatus": int(exitstatus)}, f, indent=1)
