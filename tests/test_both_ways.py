"""Every carried patch, proven both ways.

Each file in tests/regression/ (below the engine) and tests/engine/ (the real
SGLang server on the CPU) runs in a subprocess against the unpatched and the
patched tree. On the patched tree every test must pass. On the unpatched tree
every test marked ``@pytest.mark.fixes(PATCH)`` must fail (with the message its
``unpatched=`` names, when it names one), and every unmarked test (behaviour the
series must not change) must pass. Every patch in the series must be proven by at
least one ``fixes`` test, and through the engine unless ``BELOW_ENGINE_ONLY`` says
why it cannot be driven there.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sglang_mimo import series

TESTS = Path(__file__).parent
REGRESSION = TESTS / "regression"
ENGINE = TESTS / "engine"
FILES = sorted(
    str(p.relative_to(TESTS))
    for d in (REGRESSION, ENGINE)
    for p in d.glob("test_*.py")
)
# Patches whose user-visible failure the CPU engine cannot reach, and why.
BELOW_ENGINE_ONLY = {
    "0001-video-decoder-best-effort-pin-memory.patch": (
        "pinning is skipped by design on the CPU engine (utils/video_decoder.py "
        "skips pin_memory() when is_cpu(), i.e. SGLANG_USE_CPU_ENGINE=1, which the CPU "
        "engine needs), so the failing pin_memory() of GB10 cannot be reached through "
        "the server here; tests/regression/test_video_decoder.py drives the patched "
        "decoder with the real pinned allocator"
    ),
    "0002-video-decoder-decord-tensor-batches.patch": (
        "the pinned release cannot decode a MiMo video through decord: "
        "utils/video_decoder.py picks decord only when torchcodec's VideoDecoder does "
        "not import (there is no setting), and without torchcodec the MiMo processor "
        "rejects every video before decoding it (multimodal/processors/mimo_v2.py "
        "has_audio_track raises 'torchcodec is required to detect audio tracks'); "
        "tests/regression/test_video_decoder.py drives the patched decord path with "
        "real decord2 and the torch bridge"
    ),
}
TREES = ("unpatched", "patched")
_outcomes = {}


def run_regression_file(name, tree_dir, tmp_path, echo=None):
    """Run one file against one tree; ``echo`` gets the "[engine]" progress lines of
    engine-tier files as they come (servers take a minute to start)."""
    report = tmp_path / f"{name.replace('/', '_')}.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(tree_dir)] + [p for p in [os.environ.get("PYTHONPATH")] if p]
        ),
        "SGLANG_MIMO_TREE": str(tree_dir),
        "SGLANG_MIMO_REPORT": str(report),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    out_file = open(tmp_path / f"{name.replace('/', '_')}.out", "w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(TESTS / name),
        ],
        stdout=out_file,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REGRESSION.parents[1],
    )
    stderr = []
    for line in proc.stderr:
        stderr.append(line)
        if echo and line.startswith("[engine]"):
            echo(f"{name} ({tree_dir.name}): {line[len('[engine] '):]}")
    proc.wait()
    out_file.seek(0)
    stdout = out_file.read()
    out_file.close()
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "".join(stderr))
    data = json.loads(report.read_text()) if report.exists() else None
    return proc, data


@pytest.mark.parametrize("tree", TREES)
@pytest.mark.parametrize("name", FILES)
def test_regression_file(name, tree, trees, tmp_path, capsys):
    def echo(line):
        with capsys.disabled():
            sys.stderr.write(line)
            sys.stderr.flush()

    proc, data = run_regression_file(name, trees[tree], tmp_path, echo)
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
        elif expect == "failed" and r.get("unpatched"):
            said = "\n".join(r["message"]) if isinstance(r["message"], list) else r["message"]
            if r["unpatched"] not in said:
                wrong.append(
                    f"{nodeid}: failed on the unpatched tree, but not with "
                    f"{r['unpatched']!r}: {said[:300]}"
                )
    assert not wrong, "\n".join(wrong) + "\n" + log
    known = set(series.read_series())
    unknown = {r["fixes"] for r in results.values() if r["fixes"]} - known
    assert not unknown, f"fixes() names patches not in patches/series: {unknown}"


def _proven(trees, tmp_path, files):
    """{patch: [nodeid, ...]} of fixes-tests that failed unpatched, passed patched."""
    proven = {}
    for name in files:
        for tree in TREES:
            if (name, tree) not in _outcomes:
                _, data = run_regression_file(name, trees[tree], tmp_path)
                _outcomes[(name, tree)] = data["results"] if data else {}
        before, after = _outcomes[(name, "unpatched")], _outcomes[(name, "patched")]
        for nodeid, r in after.items():
            if r["fixes"] and r["outcome"] == "passed":
                if before.get(nodeid, {}).get("outcome") == "failed":
                    proven.setdefault(r["fixes"], []).append(nodeid)
    return proven


def test_every_patch_is_proven_both_ways(trees, tmp_path):
    """Each patch has a fixes-test that failed unpatched and passed patched."""
    proven = _proven(trees, tmp_path, FILES)
    missing = [p for p in series.read_series() if p not in proven]
    assert (
        not missing
    ), f"patches without a test that fails unpatched and passes patched: {missing}"


def test_every_patch_is_proven_through_the_engine(trees, tmp_path):
    """Each patch has such a test in tests/engine/ (the real server), or a reason in
    BELOW_ENGINE_ONLY why the engine cannot reach it here."""
    engine_files = [f for f in FILES if f.startswith("engine/")]
    proven = _proven(trees, tmp_path, engine_files)
    missing = [
        p for p in series.read_series() if p not in proven and p not in BELOW_ENGINE_ONLY
    ]
    assert not missing, f"patches without an engine-level proof: {missing}"
    stale = [p for p in BELOW_ENGINE_ONLY if p in proven or p not in series.read_series()]
    assert not stale, f"BELOW_ENGINE_ONLY lists patches it should not: {stale}"
