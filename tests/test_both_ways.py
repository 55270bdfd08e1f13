"""Every carried patch, proven both ways.

The files in tests/regression/ (below the engine) run in a subprocess against the
unpatched and the patched tree: one pytest process per tree for all of them (torch and
sglang import once per tree, not once per file), each file judged on its own. The files
in tests/engine/ (the real SGLang server on the CPU) run the same way, one process per
file and tree, since each starts its own servers. Each run is done once per session:
under pytest-xdist (``make test``) by the first worker that needs it, and read by the
others (``tree_run``).

On the patched tree every test must pass. On the unpatched tree:

- ``tests/regression/registered/...``: each file is one patch's regression test, in the
  layout and with the registration it has upstream (``test/registered/...``), named by
  that patch's ``Regression-Test`` header trailer. Every test in it must fail (with the
  message ``bothways.UNPATCHED_MESSAGES`` names for it, when it names one); nothing in the file
  says which patch it proves, so it goes upstream as it is;
- ``tests/regression/invariants/``: behaviour the series must not change; every test
  passes on both trees. These stay here;
- ``tests/engine/`` (and any other file): a test marked ``@pytest.mark.fixes(PATCH)``
  must fail (with the message its ``unpatched=`` names, when it names one), an unmarked
  test must pass.

Every patch in the series must be proven by at least one test that fails unpatched and
passes patched, and through the engine unless ``BELOW_ENGINE_ONLY`` says why it cannot
be driven there.

The rule itself (which patch a test proves, what each outcome must be) is
``sglang_mimo.bothways``, which scripts/device_cuda_tests.py applies on a GPU machine.
"""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sglang_mimo import bothways, series

TESTS = Path(__file__).parent
REGRESSION = TESTS / "regression"
ENGINE = TESTS / "engine"
REGRESSION_FILES = sorted(
    f"regression/{p.relative_to(REGRESSION).as_posix()}"
    for p in REGRESSION.rglob("test_*.py")
)
ENGINE_FILES = sorted(f"engine/{p.name}" for p in ENGINE.glob("test_*.py"))
FILES = REGRESSION_FILES + ENGINE_FILES
TREES = bothways.TREES
# Patches whose user-visible failure the CPU engine cannot reach, and why.
BELOW_ENGINE_ONLY = {
    "0001-video-decoder-best-effort-pin-memory.patch": (
        "pinning is skipped by design on the CPU engine (utils/video_decoder.py "
        "skips pin_memory() when is_cpu(), i.e. SGLANG_USE_CPU_ENGINE=1, which the CPU "
        "engine needs), so the failing pin_memory() of GB10 cannot be reached through "
        "the server here; tests/regression/registered/unit/utils/"
        "test_video_decoder_pin_memory.py drives the patched decoder with the real "
        "pinned allocator"
    ),
    "0002-video-decoder-decord-tensor-batches.patch": (
        "the pinned release cannot decode a MiMo video through decord: "
        "utils/video_decoder.py picks decord only when torchcodec's VideoDecoder does "
        "not import (there is no setting), and without torchcodec the MiMo processor "
        "rejects every video before decoding it (multimodal/processors/mimo_v2.py "
        "has_audio_track raises 'torchcodec is required to detect audio tracks'); "
        "tests/regression/registered/unit/utils/test_video_decoder_decord_batches.py "
        "drives the patched decord path with real decord2 and the torch bridge"
    ),
    "0008-triton-prefill-window-and-sinks.patch": (
        "it changes the Triton prefill kernel behind --mm-attention-backend triton_attn "
        "(the GB10 recipes), which compiles for GPUs only; the CPU engine runs the sdpa "
        "multimodal backend. tests/regression/registered/unit/layers/attention/"
        "test_triton_prefill_window_sinks.py runs the kernel in Triton's interpreter "
        "against a float64 reference and the plumbing both ways; "
        "the same cases ran compiled on an H200 (README, measurements)"
    ),
    "0014-triton-prefill-flash-style-main-loop.patch": (
        "it changes the speed of the Triton prefill kernel behind "
        "--mm-attention-backend triton_attn (the GB10 recipes), which compiles for "
        "GPUs only, and the CPU engine runs the sdpa multimodal backend. "
        "tests/regression/registered/unit/layers/attention/"
        "test_triton_prefill_sm121_spills.py compiles the kernel for sm_121a (GB10) on "
        "the CPU both ways (register spills unpatched, none patched); "
        "test_triton_prefill_window_sinks.py keeps checking its results in Triton's "
        "interpreter, and the same cases ran compiled on an H100 with the benchmark "
        "(docs/maintainers.md, measurements)"
    ),
    "0013-mimo-v2-audio-without-torchcodec.patch": (
        "it changes what MiMo's audio path does when torchcodec is not installed, which "
        "is aarch64 only (sglang 0.5.23 requires torchcodec everywhere else); the CPU "
        "engine runs on x86_64 with torchcodec, which its server imports. "
        "tests/regression/registered/unit/multimodal/processors/"
        "test_mimo_audio_without_torchcodec.py runs preprocess_audio and has_audio_track "
        "in an interpreter where torchcodec does not import, on real WAVs and MP4s, "
        "and tests/test_images.py runs them in the arm64 image under QEMU"
    ),
}
_outcomes = {}
_runs = {}
REGISTERED = bothways.registered_files()


def print_progress(line):
    sys.stderr.write(line)
    sys.stderr.flush()


def run_files(names, tree_dir, tmp_path, echo=None):
    """Run test files in one pytest process against one tree.

    Returns (CompletedProcess, {file: {nodeid: result}}); a file that does not collect
    has no entry (the others still run). ``echo`` gets the "[engine]" progress lines as
    they come (an engine-tier server takes a minute to start).
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
    with open(tmp_path / "pytest.out", "w+") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            + ["--continue-on-collection-errors"]
            # Engine files: no capture, so the servers' progress lines come through.
            + (["-s"] if echo else []) + [str(TESTS / name) for name in names],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=TESTS.parent,
        )
        stderr = []
        for line in proc.stderr:
            stderr.append(line)
            if echo and line.startswith("[engine]"):
                echo(f"({tree_dir.name}) {line[len('[engine] '):]}")
        proc.wait()
        out.seek(0)
        proc = subprocess.CompletedProcess(
            proc.args, proc.returncode, out.read(), "".join(stderr)
        )
    data = json.loads(report.read_text()) if report.exists() else {}
    by_file = {}
    # every test of a registered file proves the patch naming it
    for nodeid, r in bothways.attribute(data.get("results", {}), REGISTERED).items():
        by_file.setdefault(bothways.file_of(nodeid), {})[nodeid] = r
    return proc, by_file


def run_key(name, tree):
    """The run that holds ``name`` on ``tree``: all regression files together, each
    engine file on its own."""
    return ("regression" if name in REGRESSION_FILES else name, tree)


def shared_dir(tmp_path_factory):
    """Where runs are kept for the whole session: with pytest-xdist (``make test`` runs
    two workers) every worker's base temp is a folder of the session's, and a run done
    by one worker is read by the others instead of being done again."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    out = base / "both-ways"
    out.mkdir(exist_ok=True)
    return out


def _save(path, proc, by_file):
    data = {
        "args": proc.args,
        "returncode": proc.returncode,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "by_file": by_file,
    }
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _load(path):
    data = json.loads(path.read_text())
    proc = subprocess.CompletedProcess(
        data["args"], data["returncode"], data["stdout"], data["stderr"]
    )
    return proc, data["by_file"]


def tree_run(name, tree, trees, tmp_path_factory, echo=print_progress, wait=True):
    """(CompletedProcess, results by file) of the run that holds ``name`` on ``tree``,
    done once per session by whichever worker needs it first (the others wait for it
    and read it). With ``wait=False``, None while another worker is doing it."""
    key = run_key(name, tree)
    if key not in _runs:
        folder = shared_dir(tmp_path_factory)
        stem = f"{key[0].replace('/', '-')}-{tree}"
        result = folder / f"{stem}.json"
        with open(folder / f"{stem}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                return None
            if not result.exists():
                names = REGRESSION_FILES if key[0] == "regression" else [name]
                tmp = tmp_path_factory.mktemp(stem)
                echo = echo if name in ENGINE_FILES else None
                _save(result, *run_files(names, trees[tree], tmp, echo))
        _runs[key] = _load(result)
    return _runs[key]


# One run, one worker: tests/conftest.py's scheduler groups these by run_key.
@pytest.mark.parametrize(
    "name,tree", [(name, tree) for name in FILES for tree in TREES]
)
def test_regression_file(name, tree, trees, tmp_path_factory, capsys):
    def echo(line):
        with capsys.disabled():
            sys.stderr.write(f"{name} {line}")
            sys.stderr.flush()

    proc, by_file = tree_run(name, tree, trees, tmp_path_factory, echo)
    log = f"--- pytest output ({tree} tree) ---\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    results = by_file.get(name)
    assert results, f"{name} collected no tests on the {tree} tree\n{log}"
    _outcomes[(name, tree)] = results
    wrong = bothways.judge(tree, results, REGISTERED)
    assert not wrong, "\n".join(wrong) + "\n" + log
    known = set(series.read_series())
    unknown = {r["fixes"] for r in results.values() if r["fixes"]} - known
    assert not unknown, f"fixes() names patches not in patches/series: {unknown}"


def _proven(trees, tmp_path_factory, files):
    """{patch: [nodeid, ...]} of fixes-tests that failed unpatched and passed patched."""
    proven = {}
    # First the runs nobody is doing (another worker may be doing some), then the rest.
    for wait in (False, True):
        for name in files:
            for tree in TREES:
                if (name, tree) not in _outcomes:
                    run = tree_run(name, tree, trees, tmp_path_factory, wait=wait)
                    if run is not None:
                        _outcomes[(name, tree)] = run[1].get(name, {})
    for name in files:
        before, after = _outcomes[(name, "unpatched")], _outcomes[(name, "patched")]
        for patch, nodeids in bothways.proven(before, after).items():
            proven.setdefault(patch, []).extend(nodeids)
    return proven


def test_every_patch_is_proven_both_ways(trees, tmp_path_factory):
    """Each patch has a fixes-test that failed unpatched and passed patched."""
    proven = _proven(trees, tmp_path_factory, FILES)
    missing = [p for p in series.read_series() if p not in proven]
    assert (
        not missing
    ), f"patches without a test that fails unpatched and passes patched: {missing}"


def test_every_patch_is_proven_through_the_engine(trees, tmp_path_factory):
    """Each patch has such a test in tests/engine/ (the real server), or a reason in
    BELOW_ENGINE_ONLY why the engine cannot reach it here."""
    proven = _proven(trees, tmp_path_factory, ENGINE_FILES)
    patches = series.read_series()
    missing = [p for p in patches if p not in proven and p not in BELOW_ENGINE_ONLY]
    assert not missing, f"patches without an engine-level proof: {missing}"
    stale = [p for p in BELOW_ENGINE_ONLY if p in proven or p not in patches]
    assert not stale, f"BELOW_ENGINE_ONLY lists patches it should not: {stale}"
