"""The both-ways rule: the one verdict on a regression run against the unpatched and
the patched SGLang tree, used by the harness (tests/test_both_ways.py) and by the
CUDA runner (scripts/device_cuda_tests.py).

A run is one pytest process over test files against one tree, with
``SGLANG_MIMO_TREE`` and ``SGLANG_MIMO_REPORT`` set: tests/regression/conftest.py
writes the report, ``{"results": {nodeid: result}}``, where a result holds
``outcome`` ("passed", "failed", "skipped"), ``fixes`` (the patch its
``@pytest.mark.fixes`` marker names, or None), ``unpatched`` (the message that
marker says the unpatched failure must carry), ``cuda`` (a CUDA test) and
``message`` (the failure's text).

- ``tests/regression/registered/...``: each file is one patch's regression test, in
  upstream's layout, named by that patch's ``Regression-Test`` header trailer: every
  test in it proves that patch (``attribute``); it carries no marker of its own;
- ``tests/regression/invariants/``: behaviour the series must not change: unmarked;
- anything else: a test marked ``fixes(PATCH)`` proves PATCH, an unmarked one is an
  invariant.

``judge``: on the patched tree every test passes; on the unpatched tree a test that
proves a patch fails (with its ``unpatched`` message, when it names one) and every
other test passes. Only CUDA tests may skip, and on a GPU machine (``gpu=True``)
none may, nor fail for a package the machine lacks. ``proven``: the patches a pair
of runs proves.

Standard library only (the CUDA runner imports it on the GPU machine).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sglang_mimo import diffs, engine, paths, series

TREES = ("unpatched", "patched")
REGISTERED_DIR = "regression/registered/"
INVARIANTS_DIR = "regression/invariants/"
# What a registered test's failure on the unpatched tree must say (nodeid: text); the
# registered files themselves carry nothing upstream would not take.
UNPATCHED_MESSAGES: dict[str, str] = {}

# One test's result as the report plugin writes it (see the module docstring).
Result = dict[str, Any]


def registered_files(patches: Iterable[series.Patch] | None = None) -> dict[str, str]:
    """{"regression/registered/...py": patch name} from the Regression-Test trailers
    (paths relative to tests/)."""
    tests = paths.REPO / "tests"
    out = {}
    for patch in series.load_series() if patches is None else patches:
        for upstream in patch.regression_tests:
            local = series.regression_test_file(upstream)
            out[local.relative_to(tests).as_posix()] = patch.name
    return out


def file_of(nodeid: str) -> str:
    """The test file of a pytest node id, relative to tests/ ("regression/...")."""
    return nodeid.split("::", 1)[0].split("tests/", 1)[-1]


def attribute(
    results: dict[str, Result],
    registered: Mapping[str, str],
    messages: Mapping[str, str] | None = None,
) -> dict[str, Result]:
    """Each test of a registered file proves the patch whose Regression-Test trailer
    names the file: ``fixes`` becomes that patch (a marker of its own is kept as
    ``marked``, which ``judge`` refuses), ``unpatched`` its entry in ``messages``.
    In place; returns ``results``."""
    messages = UNPATCHED_MESSAGES if messages is None else messages
    for nodeid, r in results.items():
        name = file_of(nodeid)
        if name in registered:
            r["marked"], r["fixes"] = r["fixes"], registered[name]
            r["unpatched"] = messages.get(nodeid)
    return results


def message_text(r: Result) -> str:
    said = r.get("message") or ""
    return "\n".join(said) if isinstance(said, list) else str(said)


def judge(
    tree: str,
    results: Mapping[str, Result],
    registered: Mapping[str, str],
    gpu: bool = False,
) -> list[str]:
    """What is wrong with one tree's (attributed) results under the both-ways rule
    (empty: as required). ``gpu``: the run was on a GPU machine, where a CUDA test
    that skips, or fails for a missing module, did not run."""
    wrong = []
    for name in sorted({file_of(n) for n in results}):
        if name.startswith(REGISTERED_DIR) and name not in registered:
            wrong.append(f"{name}: no patch names it in a Regression-Test trailer")
    for nodeid, r in results.items():
        name = file_of(nodeid)
        if r.get("marked"):
            wrong.append(f"{nodeid}: fixes() marker in a registered (upstream) file")
        if name.startswith(INVARIANTS_DIR) and r["fixes"]:
            wrong.append(f"{nodeid}: fixes() marker in an invariant file")
        if r["outcome"] == "skipped":
            if gpu:
                wrong.append(f"{nodeid}: skipped on the GPU machine")
            elif not r.get("cuda"):
                wrong.append(f"{nodeid}: skipped (only CUDA tests may skip)")
            continue
        said = message_text(r)
        if gpu and r["outcome"] == "failed" and said.startswith("ModuleNotFoundError"):
            # the machine lacks a package: proves nothing about the patch, either way
            wrong.append(f"{nodeid}: could not run there ({said.splitlines()[0]})")
            continue
        expect = "failed" if (tree == "unpatched" and r["fixes"]) else "passed"
        if r["outcome"] != expect:
            wrong.append(
                f"{nodeid}: {r['outcome']}, expected {expect} on the {tree} tree"
            )
        elif expect == "failed" and r.get("unpatched"):
            if r["unpatched"] not in said:
                wrong.append(
                    f"{nodeid}: failed on the unpatched tree, but not with "
                    f"{r['unpatched']!r}: {said[:300]}"
                )
    return wrong


def proven(
    unpatched: Mapping[str, Result], patched: Mapping[str, Result]
) -> dict[str, list[str]]:
    """{patch: [nodeid, ...]} of the tests that prove a patch and failed on the
    unpatched tree and passed on the patched one."""
    out: dict[str, list[str]] = {}
    for nodeid, r in patched.items():
        if r["fixes"] and r["outcome"] == "passed":
            if unpatched.get(nodeid, {}).get("outcome") == "failed":
                out.setdefault(r["fixes"], []).append(nodeid)
    return out


# --- the two trees ------------------------------------------------------------------


def series_paths(series_file: str | os.PathLike[str] = paths.SERIES) -> list[str]:
    """Every path (site-packages layout) a patch of the series touches."""
    folder = Path(series_file).parent
    return sorted(
        {
            f.removeprefix("python/")
            for name in series.read_series(series_file)
            for f in diffs.touched(folder / name)
        }
    )


def linked_copy(
    src: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    private: Iterable[str] = (),
) -> Path:
    """A copy of ``src`` made of hard links, except the paths in ``private`` (copied).

    Only for trees nobody writes to in place but the apply engine, whose files
    (``private``) get their own inodes; everything else shares the source's.
    """
    src = Path(src)
    own = set(private)

    def copy(s: str, d: str) -> str:
        if Path(s).relative_to(src).as_posix() in own:
            shutil.copy2(s, d)
            return d
        os.link(s, d)
        return d

    return Path(shutil.copytree(src, dest, symlinks=True, copy_function=copy))


def build_trees(
    pristine: str | os.PathLike[str], dest: str | os.PathLike[str]
) -> tuple[dict[str, Path], engine.Outcome]:
    """The two trees a both-ways run uses, under ``dest``: ``unpatched`` and
    ``patched``, hard-linked copies of the unpacked wheel ``pristine``, the patched
    one (owning the files the series changes) put through the apply engine.
    Returns ({tree name: Path}, the engine's Outcome); raises RuntimeError when the
    series does not apply."""
    dest = Path(dest)
    unpatched = linked_copy(pristine, dest / "unpatched")
    patched = linked_copy(pristine, dest / "patched", series_paths())
    out = engine.apply_series(patched, engine.Options())
    if out.code != 0:
        raise RuntimeError(
            f"the series does not apply to {patched}: "
            + "; ".join(s.line() for s in out.states)
        )
    return {"unpatched": unpatched, "patched": patched}, out
