"""export-pr: turn patch N of the series into an upstream SGLang branch and PR body.

On a clean git checkout of upstream SGLang (python/sglang/...), create branch
``mimo/<patch stem>`` at HEAD (or --base) holding two commits:

1. the patch itself, committed by the apply engine's ``--commit`` (as
   ``scripts/apply_patches.sh --commit`` does) with a one-patch series (``git am
   --keep-non-patch``: the patch's own author, date and message, the bracket tag
   kept), so ``git format-patch`` of it gives the carried patch file back byte
   for byte;
2. its regression test: the file(s) the patch header's ``Regression-Test``
   trailer names (``test/registered/unit/.../test_*.py``), copied byte for byte
   from ``tests/regression/registered/...``, where they are kept in upstream's
   layout already (registered with ``register_cpu_ci``, and ``register_cuda_ci``
   for GPU tests; no helper module; run by ``python3 FILE``). Every test in such
   a file fails without the patch and passes with it (tests/test_both_ways.py).

The test is a second commit so that the first one stays identical to the patch
the series carries (one source of truth; reviewers can diff them), and so that
checking out the first commit's parent plus the test shows the test failing.
Upstream squash-merges a PR, so it lands as one commit either way.

A PR body following SGLang's template (Motivation, Modifications, Accuracy
Tests, Benchmarking and Profiling, Checklist) is written from the patch message
and the test file to --out (default build/pr/<patch stem>.md). With --verify,
the test is run (pytest, PYTHONPATH=<checkout>/python, --python) on the base
and on the branch, and the outcome goes into the body.

Only our own fixes are exported (``Origin: vendor``, ``Upstream-Status: Pending``
or ``Submitted``): a ``Backport`` carries upstream's own fix (a merged commit, or an
open PR by its author), and an ``Inappropriate`` patch is not meant for upstream, so
both are refused (``refusal``), as is any patch whose code is not this project's.

Exit codes: 0 done; 1 the patch does not apply to the checkout, or --verify
found the test not failing before / not passing after; 2 usage (no such patch,
no Regression-Test trailer or its file missing, or a Backport or Inappropriate
patch: nothing of ours to send); 3 DIR is not a git checkout of SGLang;
4 the checkout is not clean, the branch exists, or the checkout already has the test
file.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sglang_mimo import lint, paths, series, trees


def refusal(patch: series.Patch) -> str | None:
    """Why export-pr does not send ``patch`` (None: it is ours to send)."""
    word = series.status_word(patch)
    if word == "Backport":
        if patch.backports_open_pr:
            return (
                f"a backport of upstream's own fix, #{patch.fix_pr} (open) by "
                f"{patch.author_name}"
            )
        sha = (patch.status_url or "").rsplit("/", 1)[-1][:10]
        return f"a backport of upstream's own fix, commit {sha} by {patch.author_name}"
    if word == "Inappropriate":
        return "marked Inappropriate: not meant for upstream"
    if not patch.is_ours:
        return f"not this project's code (Origin: {patch.trailer('Origin')})"
    return None


@dataclass
class RegressionFile:
    source: Path  # tests/regression/registered/.../test_x.py
    dest: str  # test/registered/.../test_x.py (checkout-relative)
    tests: list[str] = field(default_factory=list)  # test ids in the file
    registers: list[str] = field(default_factory=list)  # register_cpu_ci, ...


# verify()'s result: {"before"|"after": (pytest's exit code, {test id: outcome}, output)}
Verification = dict[str, tuple[int, dict[str, str], str]]


def find_patch(spec: str | int) -> series.Patch:
    """The series patch named by a number (1, 0001) or a file name."""
    names = series.read_series()
    spec = str(spec)
    if spec.isdigit():
        hits = [n for n in names if n.startswith(f"{int(spec):04d}-")]
    else:
        hits = [n for n in names if n == spec or n == spec + ".patch"]
    if len(hits) != 1:
        raise trees.ToolError(f"no patch {spec!r} in patches/series", 2)
    return series.parse_patch(paths.PATCHES / hits[0])


def tests_in(text: str) -> list[str]:
    """The test functions of a pytest or unittest file (``Class::test``)."""
    names: list[str] = []
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name.startswith("test"):
                names.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if sub.name.startswith("test"):
                        names.append(f"{node.name}::{sub.name}")
    return names


def registrations(text: str) -> list[str]:
    """The upstream CI registrations a file makes (``register_cpu_ci``, ...)."""
    return sorted(
        {
            s.value.func.id
            for s in ast.parse(text).body
            if isinstance(s, ast.Expr)
            and isinstance(s.value, ast.Call)
            and isinstance(s.value.func, ast.Name)
            and re.fullmatch(r"register_\w+_ci", s.value.func.id)
        }
    )


def regression_files(patch: series.Patch) -> list[RegressionFile]:
    """The patch's Regression-Test files, as they go upstream."""
    problems = lint.regression_test_problems(patch)
    if problems:
        raise trees.ToolError(f"{patch.name}: {'; '.join(problems)}", 2)
    out = []
    for dest in patch.regression_tests:
        source = series.regression_test_file(dest)
        text = source.read_text(encoding="utf-8")
        out.append(RegressionFile(source, dest, tests_in(text), registrations(text)))
    return out


def run_tests(
    checkout: str | Path, dests: Sequence[str], python: str
) -> tuple[int, str]:
    """pytest on the test files with PYTHONPATH=<checkout>/python: (rc, output)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(checkout) / "python"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("SGLANG_MIMO_TREE", None)
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"]
        + [f"--rootdir={checkout}", *dests],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=env,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _outcomes(output: str) -> dict[str, str]:
    """{test id: PASSED|FAILED|...} from pytest -rA's short summary."""
    found: dict[str, str] = {}
    for m in re.finditer(r"^(PASSED|FAILED|ERROR) (\S+::\S+)", output, re.M):
        found[m.group(2)] = m.group(1)
    return found


def verify(
    checkout: str | Path, base: str, files: Sequence[RegressionFile], python: str
) -> Verification:
    """Run the test files on the base (a worktree) and on the branch."""
    dests = [f.dest for f in files]
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = Path(tmp) / "base"
        trees.git(checkout, "worktree", "add", "-q", "--detach", before_tree, base)
        try:
            for f in files:
                (before_tree / f.dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f.source, before_tree / f.dest)
            rc_before, out_before = run_tests(before_tree, dests, python)
        finally:
            trees.git(checkout, "worktree", "remove", "--force", before_tree)
    rc_after, out_after = run_tests(checkout, dests, python)
    return {
        "before": (rc_before, _outcomes(out_before), out_before),
        "after": (rc_after, _outcomes(out_after), out_after),
    }


def verified(result: Verification) -> bool:
    """Every test that ran failed before the patch, and passed after it."""
    rc_b, before, _ = result["before"]
    rc_a, after, _ = result["after"]
    return (
        rc_b != 0
        and bool(before)
        and all(v == "FAILED" for v in before.values())
        and rc_a == 0
        and bool(after)
        and all(v == "PASSED" for v in after.values())
    )


def _section(patch: series.Patch, name: str) -> str:
    """Body section ``name`` of the patch, which the PR body cannot go without."""
    text = patch.section(name)
    if text is None:
        raise trees.ToolError(f"{patch.name} has no {name}: section", 2)
    return text


def pr_body(
    patch: series.Patch,
    files: Sequence[RegressionFile],
    result: Verification | None = None,
    stacked_on: Sequence[series.Patch] = (),
    base: str | None = None,
) -> str:
    test_files = ", ".join(f"`{f.dest}`" for f in files)
    registered = sorted({r for f in files for r in f.registers})
    model_side = [
        f
        for f in patch.files
        if f.startswith(("python/sglang/srt/models/", "python/sglang/srt/layers/"))
    ]
    lines = [
        f"<!-- title: {patch.subject} -->",
        "",
        "## Motivation",
        "",
        _section(patch, "Motivation"),
        "",
        f"Without this change: {patch.trailer('Breaks-Without')}.",
    ]
    if patch.bugs:
        lines += [
            "",
            "Fixes " + ", ".join(f"#{u.rsplit('/', 1)[1]}" for u in patch.bugs) + ".",
        ]
    if patch.related_prs:
        lines += [
            "",
            "Related: "
            + "; ".join(f"#{n} ({why})" for n, why in patch.related_prs)
            + ".",
        ]
    if stacked_on:
        lines += [
            "",
            "Stacked on: "
            + "; ".join(
                f"{p.subject}" + (f" (#{p.fix_pr})" if p.fix_pr else "")
                for p in stacked_on
            )
            + ". Review and merge that first.",
        ]
    elif base:
        lines += [
            "",
            f"Based on `{base}` (an earlier patch of the same series this one needs "
            "at run time); merge that first if it is not upstream yet.",
        ]
    lines += [
        "",
        "## Modifications",
        "",
        _section(patch, "Modifications"),
        "",
        f"Tests: {test_files} (no server, no model weights; registered with "
        f"{' and '.join(f'`{r}`' for r in registered)}).",
        "",
        "## Accuracy Tests",
        "",
    ]
    if model_side:
        lines += [
            "TODO before review: this change touches model-side code "
            f"({', '.join(f'`{f}`' for f in model_side)}); run the accuracy "
            "evaluation (https://docs.sglang.ai/references/accuracy_evaluation.html) "
            "on a MiMo checkpoint and paste the result here.",
            "",
        ]
    else:
        lines += [
            "No model, layer or kernel code changes, so no accuracy evaluation "
            "was run.",
            "",
        ]
    lines += ["Unit tests (each fails without this change and passes with it):", ""]
    lines += [f"- `{f.dest}::{t}`" for f in files for t in f.tests]
    if result:
        rc_b, before, _ = result["before"]
        rc_a, after, _ = result["after"]
        nfail = sum(1 for v in before.values() if v == "FAILED")
        npass = sum(1 for v in after.values() if v == "PASSED")
        lines += [
            "",
            f"`python3 -m pytest {' '.join(f.dest for f in files)}`: "
            "before this "
            f"change {nfail} failed of {len(before)}; after it {npass} passed of "
            f"{len(after)}.",
        ]
    lines += [
        "",
        "## Benchmarking and Profiling",
        "",
        (
            "TODO before review: benchmark the changed model path "
            "(https://docs.sglang.ai/references/benchmark_and_profiling.html)."
            if model_side
            else "Not run: no model, layer or kernel code changes (see Modifications)."
        ),
        "",
        "## Checklist",
        "",
        "- [x] Format your code according to the Format code with pre-commit.",
        "- [x] Add unit tests according to the Run and add unit tests.",
        "- [ ] Update documentation according to Write documentations.",
        "- [ ] Provide accuracy and speed benchmark results according to Test the "
        "accuracy and Benchmark the speed.",
        "",
    ]
    return "\n".join(lines)


def _why(patch: series.Patch, state: trees.PatchState) -> str:
    """The apply engine's reason, and which earlier patches this one stacks on."""
    what = state.status + (f": {state.detail}" if state.detail else "")
    earlier = [
        p.name
        for p in series.load_series()[: series.read_series().index(patch.name)]
        if set(p.files) & set(patch.files)
    ]
    if earlier and state.status == "conflicts":
        what += (
            f"; it is stacked on {', '.join(earlier)} (same files): export those "
            "first and pass --base <their branch>"
        )
    return what


def export(
    spec: str,
    checkout: str | Path,
    out: str | Path | None = None,
    base: str | None = None,
    branch: str | None = None,
    do_verify: bool = False,
    python: str | None = None,
) -> tuple[series.Patch, str, str, list[RegressionFile], Path, Verification | None]:
    patch = find_patch(spec)
    why = refusal(patch)
    if why:
        status = patch.trailer("Upstream-Status")
        raise trees.ToolError(
            f"{patch.name} is {why} (Upstream-Status: {status}): nothing "
            "to export; only our own (Pending) patches become PRs",
            2,
        )
    files = regression_files(patch)
    checkout = Path(checkout).resolve()
    if not (checkout / "python" / "sglang" / "__init__.py").exists():
        raise trees.ToolError(
            f"{checkout} is not a checkout of SGLang (python/sglang)", 3
        )
    if trees.git(checkout, "rev-parse", "--show-toplevel", check=False).strip() != str(
        checkout
    ):
        raise trees.ToolError(f"{checkout} is not the top of a git repository", 3)
    if trees.git(checkout, "status", "--porcelain", "--untracked-files=no").strip():
        raise trees.ToolError(f"{checkout} has uncommitted changes", 4)
    stem = patch.name.removesuffix(".patch")
    branch = branch or f"mimo/{stem}"
    if trees.git(
        checkout, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False
    ).strip():
        raise trees.ToolError(f"branch {branch} already exists in {checkout}", 4)
    base_sha = trees.git(checkout, "rev-parse", f"{base or 'HEAD'}^{{commit}}").strip()
    for f in files:
        if trees.git(checkout, "ls-tree", "--name-only", base_sha, f.dest).strip():
            raise trees.ToolError(f"{checkout} already has {f.dest}", 4)

    previous = trees.git(
        checkout, "symbolic-ref", "-q", "--short", "HEAD", check=False
    ).strip()
    with tempfile.TemporaryDirectory() as tmp:
        one = trees.single_patch_series(patch.path, Path(tmp) / "patches")
        trees.git(checkout, "checkout", "-q", "-b", branch, base_sha)
        try:
            (state,) = trees.check(checkout, series_file=one)
            if state.status != "applies":
                raise trees.ToolError(
                    f"{patch.name} does not apply to {base or 'HEAD'} of {checkout}: "
                    f"{_why(patch, state)}",
                    1,
                )
            trees.apply(checkout, trees.Options(commit=True, force=True, series=one))
            for f in files:
                dest = checkout / f.dest
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f.source, dest)
                trees.git(checkout, "add", f.dest)
            message = f"[{patch.tag}] Add unit test: {patch.title}\n\n" + "\n".join(
                f"{f.dest}: fails without the previous commit, passes with it."
                for f in files
            )
            env = None
            if not trees.git(checkout, "config", "user.email", check=False).strip():
                env = {
                    k: v
                    for k, v in trees.GIT_IDENT.items()
                    if k.startswith("GIT_COMMITTER")
                }
            trees.git(
                checkout,
                "commit",
                "-q",
                f"--author={patch.author}",
                f"--date={patch.date}",
                "-m",
                message + "\n",
                env=env,
            )
        except Exception:
            trees.git(
                checkout, "checkout", "-q", "-f", previous or base_sha, check=False
            )
            trees.git(checkout, "branch", "-D", branch, check=False)
            raise
    result = (
        verify(checkout, base_sha, files, python or sys.executable)
        if do_verify
        else None
    )
    out = Path(out) if out else trees.BUILD / "pr" / f"{stem}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    stacked_on: list[series.Patch] = []
    if base:
        stacked_on = [
            p
            for p in series.load_series()[: series.read_series().index(patch.name)]
            if set(p.files) & set(patch.files)
        ]
    out.write_text(pr_body(patch, files, result, stacked_on, base), encoding="utf-8")
    return patch, branch, base_sha, files, out, result


def run(args: argparse.Namespace) -> int:
    patch, branch, base, files, out, result = export(
        args.patch,
        args.checkout,
        args.out,
        args.base,
        args.branch,
        args.verify,
        args.python,
    )
    print(
        f"branch {branch} in {args.checkout}: {patch.name} + "
        f"{len(files)} test file(s) on {base[:12]}"
    )
    for f in files:
        print(f"  {f.dest}: {len(f.tests)} test(s), {', '.join(f.registers)}")
    print(f"PR body: {out}")
    if result:
        before, after = result["before"][1], result["after"][1]
        ok = verified(result)
        for label, got in (("before", before), ("after", after)):
            counts = {v: list(got.values()).count(v) for v in sorted(set(got.values()))}
            print(f"verify: {label} the patch: {counts}")
        if not ok:
            print(
                "verify: the test does not fail before and pass after the patch",
                file=sys.stderr,
            )
            return 1
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export-pr",
        help="make an upstream branch and PR body for patch N",
        description=__doc__,
    )
    p.add_argument("patch", help="patch number (1, 0001) or file name")
    p.add_argument("--checkout", required=True, help="git checkout of upstream SGLang")
    p.add_argument("--out", help="PR body file (default build/pr/<patch>.md)")
    p.add_argument("--base", help="start the branch here (default HEAD)")
    p.add_argument("--branch", help="branch name (default mimo/<patch stem>)")
    p.add_argument(
        "--verify", action="store_true", help="run the test before and after"
    )
    p.add_argument("--python", help="interpreter for --verify (default: this one)")
    p.set_defaults(func=run)
