"""Every carried patch, proven both ways.

The files in tests/regression/ run in a subprocess against the unpatched and
the patched tree: one pytest process per tree for all of them (torch and sglang
import once per tree, not once per file), each file judged on its own. On the patched tree every test must pass. On the unpatched
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


def run_regression_files(names, tree_dir, tmp_path):
    """Run regression files in one pytest process against one tree.

    Returns (CompletedProcess, {file name: {nodeid: result}}); a file that does
    not collect has no entry (the others still run).
    """
    report = tmp_path / "report.json"
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
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["--continue-on-collection-errors"]
        + [str(REGRESSION / name) for name in names],
        capture_output=True,
        text=True,
        env=env,
        cwd=REGRESSION.parents[1],
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    by_file = {}
    for nodeid, r in data.get("results", {}).items():
        name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
        by_file.setdefault(name, {})[nodeid] = r
    return proc, by_file


_runs = {}


def tree_run(tree, trees, tmp_path_factory):
    """Every regression file against ``tree``, run once per session."""
    if tree not in _runs:
        tmp = tmp_path_factory.mktemp(f"regression-{tree}")
        _runs[tree] = run_regression_files(FILES, trees[tree], tmp)
    return _runs[tree]


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("name", FILES)
def test_regression_file(name, tree, trees, tmp_path_factory):
    proc, by_file = tree_run(tree, trees, tmp_path_factory)
    log = f"--- pytest output ({tree} tree) ---\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    results = by_file.get(name)
    assert results, f"{name} collected no tests on the {tree} tree\n{log}"
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


def test_every_patch_is_proven_both_ways(trees, tmp_path_factory):
    """Each patch has a fixes-test that failed unpatched and passed patched."""
    proven = {}
    for name in FILES:
        for tree in TREES:
            if (name, tree) not in _outcomes:
                by_file = tree_run(tree, trees, tmp_path_factory)[1]
                _outcomes[(name, tree)] = by_file.get(name, {})
        before, after = _outcomes[(name, "unpatched")], _outcomes[(name, "patched")]
        for nodeid, r in after.items():
            if r["fixes"] and r["outcome"] == "passed":
                if before.get(nodeid, {}).get("outcome") == "failed":
                    proven.setdefault(r["fixes"], []).append(nodeid)
    missing = [p for p in series.read_series() if p not in proven]
    assert (
        not missing
    ), f"patches without a test that fails unpatched and passes patched: {missing}"
