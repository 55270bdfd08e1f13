"""Every carried patch, proven both ways.

Each file in tests/regression/ runs in a subprocess against the unpatched and
the patched tree. On the patched tree every test must pass. On the unpatched
tree every test marked ``@pytest.mark.fixes(PATCH)`` must fail, and every
unmarked test (behaviour the series must not change) must pass. Every patch
in the series must be proven by at least one ``fixes`` test.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sglang_mimo import series

REGRESSION = Path(__file__).parent / "regression"
FILES = sorted(p.name for p in REGRESSION.glob("test_*.py"))
TREES = ("unpatched", "patched")
_outcomes = {}


def run_regression_file(name, tree_dir, tmp_path):
    report = tmp_path / f"{name}.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(tree_dir)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
        "SGLANG_MIMO_TREE": str(tree_dir),
        "SGLANG_MIMO_REPORT": str(report),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(REGRESSION / name),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REGRESSION.parents[1],
    )
    data = json.loads(report.read_text()) if report.exists() else None
    return proc, data


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("name", FILES)
def test_regression_file(name, tree, trees, tmp_path):
    proc, data = run_regression_file(name, trees[tree], tmp_path)
    log = f"--- pytest output ({tree} tree) ---\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert (
        data and data["results"]
    ), f"{name} collected no tests on the {tree} tree\n{log}"
    results = data["results"]
    _outcomes[(name, tree)] = results
    wrong = []
    for nodeid, r in results.items():
        if r["outcome"] == "skipped" and not r["cuda"]:
            wrong.append(f"{nodeid}: skipped (only CUDA tests may skip)")
            continue
        if r["outcome"] == "skipped":
            continue
        expect = "failed" if (tree == "unpatched" and r["fixes"]) else "passed"
        if r["outcome"] != expect:
            wrong.append(
                f"{nodeid}: {r['outcome']}, expected {expect} on the {tree} tree"
            )
    assert not wrong, "\n".join(wrong) + "\n" + log
    known = set(series.read_series())
    unknown = {r["fixes"] for r in results.values() if r["fixes"]} - known
    assert not unknown, f"fixes() names patches not in patches/series: {unknown}"


def test_every_patch_is_proven_both_ways(trees, tmp_path):
    """Each patch has a fixes-test that failed unpatched and passed patched."""
    proven = {}
    for name in FILES:
        for tree in TREES:
            if (name, tree) not in _outcomes:
                _, data = run_regression_file(name, trees[tree], tmp_path)
                _outcomes[(name, tree)] = data["results"] if data else {}
        before, after = _outcomes[(name, "unpatched")], _outcomes[(name, "patched")]
        for nodeid, r in after.items():
            if r["fixes"] and r["outcome"] == "passed":
                if before.get(nodeid, {}).get("outcome") == "failed":
                    proven.setdefault(r["fixes"], []).append(nodeid)
    missing = [p for p in series.read_series() if p not in proven]
    assert (
        not missing
    ), f"patches without a test that fails unpatched and passes patched: {missing}"
