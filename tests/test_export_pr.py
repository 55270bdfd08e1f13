"""scripts/dev export-pr on a checkout-layout git tree built from the pinned wheel.

Every exportable patch (our own: not a Backport of upstream's fix, merged or an open
PR, not Inappropriate) is exported,
each on top of the series before it (the patches before the first one committed
as upstream's history would hold them, the later ones stacked with ``--base``
on the previous export's branch). Each branch holds exactly the patch (byte for
byte what the series carries) and its Regression-Test file as this repository
keeps it; the file is registered the way upstream's CI reads it
(``sglang.test.ci.ci_register.ut_parse_one_file`` of the pinned release), every
test in it fails on the branch's base and passes on the branch.
"""

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cli_helpers import repo_copy, run_cli
from sglang_mimo import export_pr, lint, paths, series, trees
from sglang_mimo.rebase import FORMAT_PATCH

PATCHES = series.load_series()
EXPORTABLE = [p for p in PATCHES if export_pr.refusal(p) is None]
FIRST = series.read_series().index(EXPORTABLE[0].name)


def branch_of(patch):
    return f"mimo/{patch.name.removesuffix('.patch')}"


def git(checkout, *args):
    return trees.git(checkout, *args)


def run_tests(tree, rels):
    """pytest -rA on ``rels`` with PYTHONPATH=<tree>/python: {test id: outcome}."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree / "python"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("SGLANG_MIMO_TREE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"] + rels,
        cwd=tree,
        capture_output=True,
        text=True,
        env=env,
    )
    found = dict(
        (m.group(2), m.group(1))
        for m in re.finditer(r"^(PASSED|FAILED|ERROR) (\S+::\S+)", proc.stdout, re.M)
    )
    return found, f"exit {proc.returncode}\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}"


@pytest.fixture(scope="module")
def exported(pinned_wheel, tmp_path_factory):
    """The checkout with every exportable patch exported; the tests run on each
    branch and its base: {"checkout", "start", "bases", "bodies", "outcomes", "logs"}.
    """
    base = tmp_path_factory.mktemp("export")
    checkout = trees.make_checkout(
        pinned_wheel, base / "sglang", paths.load_pin()["version"]
    )
    for p in PATCHES[:FIRST]:  # e.g. 0001, sglang#24503 backported: upstream's history
        one = trees.single_patch_series(p.path, base / "below" / p.name)
        trees.apply(checkout, trees.Options(commit=True, series=one))
    start = git(checkout, "rev-parse", "HEAD").strip()
    bodies, previous, bases = {}, None, []
    for p in EXPORTABLE:
        # Patches between the last exported one and this one that are not ours to
        # send (Backports, Inappropriate: upstream's own fixes) are
        # upstream's history for it, as 0001 is for the first: committed on a branch
        # of their own, which this export stacks on with --base.
        lo = (
            PATCHES.index(EXPORTABLE[EXPORTABLE.index(p) - 1]) + 1
            if previous
            else FIRST
        )
        below = [q for q in PATCHES[lo : PATCHES.index(p)] if q not in EXPORTABLE]
        if previous and below:
            git(checkout, "checkout", "-q", "-b", f"below/{p.name[:4]}", previous)
            for q in below:
                one = trees.single_patch_series(q.path, base / "below" / q.name)
                trees.apply(checkout, trees.Options(commit=True, series=one))
            previous = f"below/{p.name[:4]}"
        bases.append(previous or start)
        bodies[p.name] = base / f"{p.name}.md"
        args = ["export-pr", p.name[:4], "--checkout", checkout]
        args += ["--out", bodies[p.name]] + (["--base", previous] if previous else [])
        run_cli(*args, check_rc=0)
        previous = branch_of(p)
    # One pytest process per tree: the base of each export runs that patch's test
    # (before); the same tree runs the previous patch's test (after: the base holds
    # its branch); the last branch runs its own.
    tips = bases + [branch_of(EXPORTABLE[-1])]
    jobs = []
    for i, tip in enumerate(tips):
        tree = base / f"tree-{i}"
        git(checkout, "worktree", "add", "-q", "--detach", tree, tip)
        rels = []
        if i < len(EXPORTABLE):
            for rel in EXPORTABLE[i].regression_tests:  # before: copied in
                (tree / rel).parent.mkdir(parents=True, exist_ok=True)
                (tree / rel).write_bytes(series.regression_test_file(rel).read_bytes())
                rels.append(rel)
        if i:
            # after: on its branch. Last, as in the both-ways run (the video decoder
            # tests leave decord's torch bridge in a state the MiMo processor's
            # audio path crashes on, on the trees without 0003)
            rels += EXPORTABLE[i - 1].regression_tests
        labels = ([(EXPORTABLE[i - 1], "after")] if i else []) + (
            [(EXPORTABLE[i], "before")] if i < len(EXPORTABLE) else []
        )
        jobs.append((tree, rels, labels))
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda job: run_tests(*job[:2]), jobs))
    outcomes, logs = {}, {}
    for (tree, _, labels), (found, log) in zip(jobs, runs):
        git(checkout, "worktree", "remove", "--force", tree)
        for p, when in labels:
            outcomes[(p.name, when)] = {
                k: v for k, v in found.items() if k.split("::")[0] in p.regression_tests
            }
            logs[(p.name, when)] = log
    return dict(
        checkout=checkout,
        start=start,
        bases=bases,
        bodies=bodies,
        outcomes=outcomes,
        logs=logs,
    )


def test_every_own_patch_is_exportable():
    """Our own patches are exported; Backports (upstream's fixes, merged or open) and
    Inappropriate patches are not, but their tests live in upstream's layout all the
    same."""
    assert EXPORTABLE
    for p in EXPORTABLE:
        assert series.status_word(p) in ("Pending", "Submitted") and p.is_ours
    for p in PATCHES:
        problems = lint.regression_test_problems(p)
        if p in EXPORTABLE:
            assert problems == [], (p.name, problems)


@pytest.mark.parametrize("patch", EXPORTABLE, ids=lambda p: p.name[:4])
def test_branch_holds_exactly_the_patch_and_its_test_file(exported, patch):
    checkout = exported["checkout"]
    below = EXPORTABLE.index(patch)
    start = exported["bases"][below]
    commits = git(checkout, "rev-list", "--reverse", f"{start}..{branch_of(patch)}")
    fix, test = commits.split()
    assert git(checkout, *FORMAT_PATCH, fix) == patch.path.read_text()
    added = git(checkout, "show", "--name-status", "--format=", test).split("\n")
    assert sorted(l for l in added if l) == sorted(
        f"A\t{rel}" for rel in patch.regression_tests
    )
    for rel in patch.regression_tests:
        blob = subprocess.run(
            ["git", "-C", str(checkout), "show", f"{test}:{rel}"],
            capture_output=True,
            check=True,
        ).stdout
        assert blob == series.regression_test_file(rel).read_bytes()
    assert git(checkout, "status", "--porcelain").strip() == ""


def registered_files():
    return sorted((paths.REPO / "tests" / "regression" / "registered").rglob("*.py"))


def test_registered_files_are_upstream_test_files():
    """Every file under tests/regression/registered/ (exported or not) is one patch's
    Regression-Test, registered as upstream's CI reads it, with a main block, no
    marker or helper of ours, and formatted as upstream's pre-commit wants."""
    from sglang.test.ci.ci_register import HWBackend, ut_parse_one_file

    named = {
        series.regression_test_file(t) for p in PATCHES for t in p.regression_tests
    }
    local = {p.stem for p in (paths.REPO / "tests" / "regression").rglob("*.py")}
    files = registered_files()
    for f in files:
        registries, has_main = ut_parse_one_file(str(f))
        assert has_main, f
        assert HWBackend.CPU in {r.backend for r in registries}, f
        text = f.read_text()
        assert "pytest.mark.fixes" not in text and "sglang_mimo" not in text, f
        assert not re.search(r"\b\d{4}-[\w-]+\.patch\b", text), f
        imported = {
            m.group(1) for m in re.finditer(r"^(?:from|import) (\w+)", text, re.M)
        }
        assert not imported & local, (f, imported & local)
        if "cuda" in text.lower() and "skipif" in text:
            assert HWBackend.CUDA in {r.backend for r in registries}, f
    assert named == set(files), "registered files no patch names, or the reverse"
    for cmd in (
        ["black", "--check", "-q"],
        ["isort", "--profile", "black", "-p", "sglang", "--check-only", "-q"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", *cmd, *map(str, files)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)


@pytest.mark.parametrize("patch", EXPORTABLE, ids=lambda p: p.name[:4])
def test_exported_test_fails_on_the_base_and_passes_on_the_branch(exported, patch):
    before = exported["outcomes"][(patch.name, "before")]
    after = exported["outcomes"][(patch.name, "after")]
    log_b = exported["logs"][(patch.name, "before")]
    log_a = exported["logs"][(patch.name, "after")]
    assert before and set(before.values()) == {"FAILED"}, log_b
    assert after and set(after.values()) == {"PASSED"}, log_a
    assert set(before) == set(after)


def test_pr_body_follows_sglang_template(exported):
    for patch in EXPORTABLE:
        text = exported["bodies"][patch.name].read_text()
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
        for rel in patch.regression_tests:
            assert f"`{rel}`" in text
            for t in export_pr.tests_in(series.regression_test_file(rel).read_text()):
                assert f"`{rel}::{t}`" in text
        for n in patch.upstream_prs:
            assert f"#{n}" in text
        # causes and closed attempts are Related, never "earlier PRs for this fix"
        assert "Earlier upstream PR" not in text
        for n, why in patch.related_prs:
            assert f"#{n} ({why})" in text


def test_export_refuses_a_backport(exported, tmp_path):
    """A Backport of upstream's own fix (here an open PR, carried by its author):
    there is nothing of ours to send."""
    backport = next(p for p in PATCHES if p.backports_open_pr)
    proc = run_cli(
        "export-pr",
        backport.name[:4],
        "--checkout",
        exported["checkout"],
        "--out",
        tmp_path / "b.md",
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "a backport of upstream's own fix" in proc.stderr
    assert f"#{backport.fix_pr} (open) by {backport.author_name}" in proc.stderr
    assert backport.status_url in proc.stderr
    assert not (tmp_path / "b.md").exists()


def test_export_refuses_an_inappropriate_patch(exported, tmp_path):
    """Inappropriate: not meant for upstream (a copy of the repository, one of our
    patches marked so)."""
    repo = repo_copy(tmp_path / "repo")
    (repo / "tests" / "regression").mkdir()
    patch = EXPORTABLE[0]
    path = repo / "patches" / patch.name
    text = path.read_text()
    path.write_text(
        text.replace(
            "\nUpstream-Status: Pending\n",
            "\nUpstream-Status: Inappropriate [GB10 images only]\n",
        )
    )
    proc = run_cli(
        "export-pr",
        patch.name[:4],
        "--checkout",
        exported["checkout"],
        "--out",
        tmp_path / "b.md",
        repo=repo,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Inappropriate" in proc.stderr and "GB10 images only" in proc.stderr
    assert not (tmp_path / "b.md").exists()


def test_export_refuses_what_it_cannot_do(exported, tmp_path):
    checkout = exported["checkout"]
    patch = EXPORTABLE[0]
    # the patch is already on this branch: it does not apply again
    proc = run_cli(
        "export-pr",
        patch.name[:4],
        "--checkout",
        checkout,
        "--branch",
        "again",
        "--out",
        tmp_path / "b.md",
    )
    assert proc.returncode == 4 and "already has" in proc.stderr, proc.stderr
    proc = run_cli(
        "export-pr",
        patch.name[:4],
        "--checkout",
        checkout,
        "--base",
        exported["start"] + "~0",
        "--branch",
        "again",
        "--out",
        tmp_path / "b.md",
    )
    assert proc.returncode == 0, proc.stderr  # on its own base it exports again
    proc = run_cli(
        "export-pr",
        EXPORTABLE[-1].name[:4],
        "--checkout",
        checkout,
        "--base",
        f"{branch_of(EXPORTABLE[-1])}~1",
        "--branch",
        "twice",
    )
    assert proc.returncode == 1 and "already applied" in proc.stderr, proc.stderr
    proc = run_cli("export-pr", "99", "--checkout", checkout)
    assert proc.returncode == 2
    proc = run_cli("export-pr", patch.name[:4], "--checkout", checkout)
    assert proc.returncode == 4 and "already exists" in proc.stderr
    f = checkout / "python" / "sglang" / "version.py"
    f.write_text(f.read_text() + "# local change\n")
    try:
        proc = run_cli(
            "export-pr", patch.name[:4], "--checkout", checkout, "--branch", "x"
        )
        assert proc.returncode == 4 and "uncommitted" in proc.stderr
    finally:
        git(checkout, "checkout", "--", "python/sglang/version.py")
    proc = run_cli("export-pr", patch.name[:4], "--checkout", tmp_path)
    assert proc.returncode == 3
