"""sglang-mimo export-pr on a checkout-layout git tree built from the pinned wheel.

The branch holds exactly the patch (byte for byte what the series carries) and
its moved test; the moved test is registered the way upstream's CI reads it
(``sglang.test.ci.ci_register.ut_parse_one_file`` of the pinned release), fails
without the patch and passes with it.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cli_helpers import run_cli
from sglang_mimo import export_pr, paths, series, trees
from sglang_mimo.rebase import FORMAT_PATCH

# export-pr exports our own fixes only (a Backport carries upstream's PR)
PATCH = next(p.name for p in series.load_series() if series.status_word(p) == "Pending")
STEM = PATCH.removesuffix(".patch")
BRANCH = f"mimo/{STEM}"
# Earlier patches on the same files (0002 stacks on 0001, a Backport): the
# export is based on them, committed first as upstream's PR branch would be.
BELOW = [
    p
    for p in series.load_series()[: series.read_series().index(PATCH)]
    if set(p.files) & set(series.parse_patch(paths.PATCHES / PATCH).files)
]


@pytest.fixture(scope="module")
def exported(pinned_wheel, tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    checkout = trees.make_checkout(
        pinned_wheel, base / "sglang", paths.load_pin()["version"]
    )
    for p in BELOW:
        one = trees.single_patch_series(p.path, base / "below" / p.name)
        proc = trees.run_apply("--commit", "--series", one, checkout)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    start = trees.git(checkout, "rev-parse", "HEAD").strip()
    body = base / "pr.md"
    proc = run_cli(
        "export-pr", PATCH[:4], "--checkout", checkout, "--out", body, check_rc=0
    )
    return checkout, start, body, proc.stdout


def git(checkout, *args):
    return trees.git(checkout, *args)


def test_branch_holds_exactly_the_patch_and_its_test(exported):
    checkout, start, _, _ = exported
    assert git(checkout, "rev-parse", "--abbrev-ref", "HEAD").strip() == BRANCH
    commits = git(checkout, "rev-list", "--reverse", f"{start}..{BRANCH}").split()
    assert len(commits) == 2
    fix, test = commits
    regenerated = git(checkout, *FORMAT_PATCH, fix)
    assert regenerated == (paths.PATCHES / PATCH).read_text()
    added = git(checkout, "show", "--name-status", "--format=", test).split("\n")
    added = [l for l in added if l]
    assert len(added) == 1 and added[0].startswith(
        "A\ttest/registered/unit/utils/test_"
    )
    assert git(checkout, "status", "--porcelain").strip() == ""


def moved_test(checkout):
    files = git(checkout, "ls-files", "test/registered").split()
    assert len(files) == 1
    return files[0]


def test_moved_test_is_registered_for_upstream_ci(exported):
    checkout, *_ = exported
    rel = moved_test(checkout)
    text = (checkout / rel).read_text()
    assert "fixes(" not in text and "sglang_mimo" not in text
    # the tests of the other patches stay behind
    other = [n for n in series.read_series() if n != PATCH]
    for name in other:
        src = (paths.REPO / "tests" / "regression").glob("test_*.py")
        for f in src:
            body = f.read_text()
            if name in body:
                mine = export_pr.upstream_test_source(body, name)[1]
                for t in mine:
                    assert f"def {t.split('::')[-1].split('[')[0]}(" not in text
    from sglang.test.ci.ci_register import HWBackend, ut_parse_one_file

    registries, has_main = ut_parse_one_file(str(checkout / rel))
    assert has_main
    assert HWBackend.CPU in {r.backend for r in registries}
    for cmd in (
        ["black", "--check", "-q"],
        ["isort", "--profile", "black", "-p", "sglang", "--check-only", "-q"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", *cmd, str(checkout / rel)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)


def run_moved(tree, rel):
    env = {
        **os.environ,
        "PYTHONPATH": str(tree / "python"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("SGLANG_MIMO_TREE", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", rel],
        cwd=tree,
        capture_output=True,
        text=True,
        env=env,
    )


def test_moved_test_fails_before_the_commit_and_passes_after(exported, tmp_path):
    checkout, start, _, _ = exported
    rel = moved_test(checkout)
    before = tmp_path / "before"
    git(checkout, "worktree", "add", "-q", "--detach", before, start)
    try:
        (before / rel).parent.mkdir(parents=True)
        (before / rel).write_text((checkout / rel).read_text())
        proc = run_moved(before, rel)
    finally:
        git(checkout, "worktree", "remove", "--force", before)
    fixes = export_pr.upstream_test_source(
        next(
            f.read_text()
            for f in (paths.REPO / "tests" / "regression").glob("test_*.py")
            if PATCH in f.read_text()
        ),
        PATCH,
    )[1]
    assert proc.returncode == 1, proc.stdout[-3000:]
    for t in fixes:
        assert f"FAILED {rel}::{t}" in proc.stdout, (t, proc.stdout[-3000:])
    assert "PASSED" in proc.stdout  # the unchanged-behaviour tests pass on the base

    proc = run_moved(checkout, rel)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "FAILED" not in proc.stdout


def test_pr_body_follows_sglang_template(exported):
    checkout, _, body, _ = exported
    text = body.read_text()
    patch = series.parse_patch(paths.PATCHES / PATCH)
    headings = [l for l in text.splitlines() if l.startswith("## ")]
    assert headings == [
        "## Motivation",
        "## Modifications",
        "## Accuracy Tests",
        "## Benchmarking and Profiling",
        "## Checklist",
    ]
    assert patch.section("Motivation") in text
    assert patch.section("Modifications") in text
    assert moved_test(checkout) in text
    for n in patch.upstream_prs:
        assert f"#{n}" in text
    # causes and closed attempts are Related, never "earlier PRs for this fix"
    assert "Earlier upstream PR" not in text
    for n, why in patch.related_prs:
        assert f"#{n} ({why})" in text


def test_export_refuses_a_backport(exported, tmp_path):
    """A Backport carries upstream's own PR: there is nothing of ours to send."""
    checkout, *_ = exported
    backport = next(
        p for p in series.load_series() if series.status_word(p) == "Backport"
    )
    proc = run_cli(
        "export-pr",
        backport.name[:4],
        "--checkout",
        checkout,
        "--out",
        tmp_path / "b.md",
    )
    assert proc.returncode == 2
    assert "backport" in proc.stderr and backport.status_url in proc.stderr
    assert not (tmp_path / "b.md").exists()


def test_export_refuses_what_it_cannot_do(exported, tmp_path):
    checkout, *_ = exported
    # the patch is already on this branch: it does not apply again
    proc = run_cli(
        "export-pr",
        PATCH[:4],
        "--checkout",
        checkout,
        "--branch",
        "again",
        "--out",
        tmp_path / "b.md",
    )
    assert proc.returncode == 1 and "already applied" in proc.stderr
    proc = run_cli("export-pr", "99", "--checkout", checkout)
    assert proc.returncode == 2
    proc = run_cli("export-pr", PATCH[:4], "--checkout", checkout, "--base", "HEAD~2")
    assert proc.returncode == 4 and "already exists" in proc.stderr
    f = checkout / "python" / "sglang" / "version.py"
    f.write_text(f.read_text() + "# local change\n")
    try:
        proc = run_cli("export-pr", PATCH[:4], "--checkout", checkout, "--branch", "x")
        assert proc.returncode == 4 and "uncommitted" in proc.stderr
    finally:
        git(checkout, "checkout", "--", "python/sglang/version.py")
    proc = run_cli("export-pr", PATCH[:4], "--checkout", tmp_path)
    assert proc.returncode == 3


SAMPLE = '''"""Regression tests for a module (patches 0007 and 0008)."""

import os

import pytest

PATCH = "0007-a.patch"
FIX = pytest.mark.fixes("0008-b.patch")
CASES = [
    pytest.param(1, marks=FIX),
    pytest.param(2, marks=pytest.mark.fixes(PATCH)),
    pytest.param(3),
]


@pytest.mark.fixes(PATCH)
def test_a_direct():
    assert True


@FIX
def test_b_direct():
    assert os.sep


@pytest.mark.parametrize("n", CASES)
def test_cases(n):
    assert n


@pytest.mark.cuda
def test_unchanged_on_gpu():
    assert True


class TestGroup:
    @pytest.mark.fixes(PATCH)
    def test_in_class(self):
        assert True
'''


def test_upstream_test_source_keeps_only_this_patch():
    text, fixes, others, cuda, partial = export_pr.upstream_test_source(
        SAMPLE, "0007-a.patch"
    )
    assert fixes == ["test_a_direct", "test_cases", "TestGroup::test_in_class"]
    assert others == ["test_unchanged_on_gpu"] and cuda == ["test_unchanged_on_gpu"]
    assert partial == ["test_cases"]
    assert "test_b_direct" not in text and "import os" not in text
    assert "fixes" not in text and "PATCH" not in text and "FIX" not in text
    assert "pytest.param(1" not in text and "pytest.param(2)" in text
    assert "pytest.param(3)" in text and "(patches" not in text
    assert "@requires_cuda" in text and "register_cuda_ci(" in text
    assert 'register_cpu_ci(est_time=30, suite="base-a-test-cpu")' in text
    compile(text, "moved.py", "exec")
    from sglang.test.ci.ci_register import ut_parse_one_file

    def parse(t, tmp=Path(tempfile.mkdtemp())):
        (tmp / "t.py").write_text(t)
        return ut_parse_one_file(str(tmp / "t.py"))

    registries, has_main = parse(text)
    assert has_main and len(registries) == 2
