"""scripts/dev rebase against real SGLang release wheels (downloaded with pip, cached in build/).

The outcome expected for each patch on each release is written down in
tests/data/rebase_expected.json, keyed by patch file name; a patch of the
series without an entry there fails the test (try it, then write it down).
"""

import difflib
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from cli_helpers import BUILD, REPO, repo_copy, run_cli
from conftest import run_apply
from sglang_mimo import changelog, paths, series, trees
from sglang_mimo.rebase import FORMAT_PATCH

EXPECTED = json.loads((REPO / "tests" / "data" / "rebase_expected.json").read_text())
RELEASES = [v for v in EXPECTED if re.fullmatch(r"\d+\.\d+\.\d+", v)]
PIN = paths.load_pin()


def expected_for(version):
    table = EXPECTED[version]
    missing = [n for n in series.read_series() if n not in table]
    assert not missing, (
        f"tests/data/rebase_expected.json has no outcome on {version} for {missing}: "
        f"run `scripts/dev rebase {version}` and write down what it reports"
    )
    return {n: table[n] for n in series.read_series()}


def rebase(version, *args, repo=REPO):
    proc = run_cli("rebase", version, "--json", *args, repo=repo)
    assert proc.returncode in (0, 1, 4), proc.stdout + proc.stderr
    return proc, json.loads(proc.stdout)


def snapshot(repo):
    return {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.parametrize("version", RELEASES)
def test_rebase_onto_a_real_release(version):
    want = expected_for(version)
    proc, result = rebase(version)
    got = {r["patch"]: r["outcome"] for r in result["patches"]}
    assert got == want, proc.stdout
    assert proc.returncode == (1 if "conflicts" in want.values() else 0)
    tree = Path(result["tree"])
    assert trees.tree_version(tree) == version
    for r in result["patches"]:
        if r["outcome"] == "conflicts":
            # the rejected hunks are left beside their files, unless the patch
            # conflicts only through an earlier conflicting patch on its files
            assert r["rej"] or r.get("stacked_on"), r
            for rej in r["rej"]:
                assert (tree / rej).read_text().startswith("diff a/")
        else:
            assert r["rej"] == []
    assert result["audit"] == []  # the two dropped topics stay fixed there
    assert set(result["wheels"]) == set(PIN["wheels"])
    for key, w in result["wheels"].items():
        assert w["filename"] == trees.wheel_filename(version, key)
        assert w["sha256"] == trees.sha256(BUILD / "wheels" / w["filename"])


def test_rebase_write_on_the_pinned_release_changes_nothing(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    before = snapshot(repo)
    proc, result = rebase(PIN["version"], "--write", repo=repo)
    assert proc.returncode == 0, proc.stdout
    assert {r["outcome"] for r in result["patches"]} == {"applies"}
    assert result["written"]["refreshed"] == series.read_series()
    after = snapshot(repo)
    changed = [k for k in after if before.get(k) != after[k]]
    assert not changed, f"regenerating on the pinned release changed {changed}"


@pytest.mark.parametrize("version", RELEASES[:1])
def test_rebase_write_moves_the_series_and_pin(version, tmp_path):
    want = expected_for(version)
    repo = repo_copy(tmp_path / "repo")
    before = snapshot(repo)
    proc, result = rebase(version, "--write", repo=repo)
    if "conflicts" in want.values():
        assert proc.returncode == 1 and "written" not in result
        assert snapshot(repo) == before
        return
    assert proc.returncode == 0, proc.stdout
    pin = json.loads((repo / "patches" / "pin.json").read_text())
    assert (pin["version"], pin["tag"], pin["distribution"]) == (
        version,
        f"v{version}",
        f"{version}-mimo.1",
    )
    assert pin["wheels"] == result["wheels"]
    assert f"sglang=={version}\n" in (repo / "tests" / "requirements.txt").read_text()
    tree = Path(result["tree"])
    seen = set()
    for name in series.read_series(repo / "patches" / "series"):
        patch = series.parse_patch(repo / "patches" / name)
        for f, blob in patch.preimages.items():
            if set(blob) == {"0"}:
                continue  # a file the patch creates
            if f not in seen:  # the first patch on a file starts from the release
                real = trees.git(tree, "rev-parse", f"v{version}:{f}").strip()
                assert blob == real, f"{name}: index of {f} is not the {version} blob"
            seen.add(f)
            trees.git(tree, "cat-file", "-e", blob)  # every pre-image is real there
    run_cli("changelog", "--check", repo=repo, check_rc=0)
    run_cli("docs", "--check", repo=repo, check_rc=0)
    text = (repo / "CHANGELOG.md").read_text()
    assert f"## [{version}-mimo.1]" in text and f"## [{PIN['distribution']}]" in text
    # the refreshed series applies to the new base without offset
    trees.git(tree, "checkout", "-q", f"v{version}")
    proc = subprocess.run(
        [str(repo / "scripts" / "apply_patches.sh"), "--check", str(tree)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(l.endswith(": applies") for l in proc.stdout.splitlines())


def small_upstream_change(old_wheel, new_wheel):
    """(path, old, new): a small real change of one sglang .py file between two wheels."""
    with zipfile.ZipFile(old_wheel) as zo, zipfile.ZipFile(new_wheel) as zn:
        old_names = set(zo.namelist())
        for name in sorted(zn.namelist()):
            if not (name.startswith("sglang/srt/") and name.endswith(".py")):
                continue
            if name not in old_names:
                continue
            a, b = zo.read(name), zn.read(name)
            if a == b or len(b) > 20000:
                continue
            a_s, b_s = a.decode(), b.decode()
            changed = [
                l
                for l in difflib.unified_diff(a_s.splitlines(), b_s.splitlines(), n=0)
                if l[:1] in "+-" and not l.startswith(("+++", "---"))
            ]
            if 0 < len(changed) <= 6:
                return name, a_s, b_s
    raise AssertionError("no small change between the two wheels")


def test_rebase_drops_a_patch_that_is_already_upstream(tmp_path):
    """A real upstream change (an older release to the pinned one), carried as 0099."""
    older = RELEASES[0]
    old_wheel, _ = trees.fetch_release_wheels(older, keys=[trees.local_wheel_key()])[
        trees.local_wheel_key()
    ]
    new_wheel = trees.pinned_wheel()
    name, old, new = small_upstream_change(old_wheel, new_wheel)
    work = tmp_path / "mk"
    (work / "python" / name).parent.mkdir(parents=True)
    (work / "python" / name).write_text(old)
    trees.git(work, "init", "-q")
    trees.git(work, "add", "-A")
    trees.git(work, "commit", "-q", "-m", "base", env=trees.GIT_IDENT)
    (work / "python" / name).write_text(new)
    trees.git(
        work,
        "commit",
        "-qa",
        "-m",
        f"[Misc] {Path(name).stem}: carry an upstream change\n\n"
        "Motivation:\nupstream changed this after "
        f"{older}.\n\nModifications:\nthe change itself, upstream's #1 (open).\n\n"
        "Breaks-Without: nothing\nOrigin: backport, https://github.com/"
        "sgl-project/sglang/pull/1\nUpstream-Status: Backport [https://github.com/"
        "sgl-project/sglang/pull/1]",
        # a Backport keeps its upstream author (lint)
        env={
            **trees.GIT_IDENT,
            "GIT_AUTHOR_NAME": "Upstream Author",
            "GIT_AUTHOR_EMAIL": "upstream@example.com",
        },
    )
    repo = repo_copy(tmp_path / "repo")
    patch_name = "0099-carry-an-upstream-change.patch"
    (repo / "patches" / patch_name).write_text(trees.git(work, *FORMAT_PATCH, "HEAD"))
    with open(repo / "patches" / "series", "a") as f:
        f.write(patch_name + "\n")
    run_cli("docs", "--write", repo=repo, check_rc=0)
    carried = {n: (repo / "patches" / n).read_bytes() for n in series.read_series()}

    proc, result = rebase(PIN["version"], "--write", repo=repo)
    assert proc.returncode == 0, proc.stdout
    outcome = {r["patch"]: r["outcome"] for r in result["patches"]}
    assert outcome[patch_name] == "already upstream"
    assert result["written"]["dropped"] == [patch_name]
    assert patch_name not in series.read_series(repo / "patches" / "series")
    assert not (repo / "patches" / patch_name).exists()
    for n, data in carried.items():
        assert (repo / "patches" / n).read_bytes() == data
    text = (repo / "CHANGELOG.md").read_text()
    entries = changelog.dropped_entries(
        changelog.section_text(text, PIN["distribution"])
    )
    assert any(
        "carry an upstream change" in e
        and f"upstream in SGLang {PIN['version']}" in e
        and "#1" in e
        for e in entries
    ), entries
    run_cli("changelog", "--check", repo=repo, check_rc=0)


NEXT = "0.5.24.dev0"  # a release that does not exist: built below


def next_release_wheels(backports, tmp_path):
    """Wheels of a "next release": the pinned wheel with upstream's own changes
    for the carried patches merged (as the series carries them adapted to
    v0.5.23: that is what upstream's PRs are on this base) and the version moved
    to NEXT. Written into the wheel cache under every pinned key's file name
    (only this machine's is unpacked; the others are only hashed)."""
    tree = tmp_path / "next"
    trees.unpack_wheel(trees.pinned_wheel(), tree)
    folder = tmp_path / "upstream-changes"
    folder.mkdir()
    for p in backports:
        (folder / p.name).write_bytes(p.path.read_bytes())
    (folder / "series").write_text("".join(p.name + "\n" for p in backports))
    trees.apply(tree, trees.Options(series=folder / "series"))
    (info,) = tree.glob("sglang-*.dist-info")
    meta = (info / "METADATA").read_text()
    (info / "METADATA").write_text(
        meta.replace(f"Version: {PIN['version']}\n", f"Version: {NEXT}\n", 1)
    )
    info.rename(tree / f"sglang-{NEXT}.dist-info")
    wheel = tmp_path / "next.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(tree.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                z.write(f, f.relative_to(tree).as_posix())
    written = []
    for key in PIN["wheels"]:
        target = BUILD / "wheels" / trees.wheel_filename(NEXT, key)
        target.write_bytes(wheel.read_bytes())
        written.append(target)
    return written


def test_next_release_with_upstreams_fixes_drops_the_backports(tmp_path):
    """Upstream merges the PRs the series carries from their authors; `rebase` onto
    that release reports those patches "already upstream" and drops them, and keeps
    (and refreshes) our own."""
    patches = series.load_series()
    backports = [p for p in patches if not p.is_ours and p.fix_pr]
    ours = [p.name for p in patches if p not in backports]
    assert backports and ours
    wheels = next_release_wheels(backports, tmp_path)
    try:
        repo = repo_copy(tmp_path / "repo")
        proc, result = rebase(NEXT, "--write", repo=repo)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outcome = {r["patch"]: r["outcome"] for r in result["patches"]}
        assert outcome == {
            **{p.name: "already upstream" for p in backports},
            **{n: "applies" for n in ours},
        }
        assert result["written"]["dropped"] == [p.name for p in backports]
        assert series.read_series(repo / "patches" / "series") == ours
        for p in backports:
            assert not (repo / "patches" / p.name).exists()
        text = (repo / "CHANGELOG.md").read_text()
        entries = changelog.dropped_entries(
            changelog.section_text(text, f"{NEXT}-mimo.1")
        )
        for p in backports:
            assert any(
                p.subject in e
                and f"upstream in SGLang {NEXT}" in e
                and f"#{p.fix_pr}" in e
                for e in entries
            ), entries
        # what stays is still proven to apply, now on the next release
        tree = Path(result["tree"])
        trees.git(tree, "checkout", "-q", f"v{NEXT}")
        proc = subprocess.run(
            [str(repo / "scripts" / "apply_patches.sh"), "--check", str(tree)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run_cli("changelog", "--check", repo=repo, check_rc=0)
    finally:
        for w in wheels:
            w.unlink(missing_ok=True)


def test_a_conflict_leaves_rej_files_and_writes_nothing(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    first = series.read_series()[0]
    path = repo / "patches" / first
    text = path.read_text()
    hunk_at = text.index("\n@@ ")
    body = text[hunk_at:].splitlines(keepends=True)
    i = next(k for k, l in enumerate(body[2:], 2) if l.startswith(" ") and l.strip())
    body[i] = " " + body[i][1:].rstrip("\n") + "  # not upstream\n"
    path.write_text(text[:hunk_at] + "".join(body))
    before = snapshot(repo)
    proc, result = rebase(PIN["version"], "--write", repo=repo)
    assert proc.returncode == 1, proc.stdout
    row = next(r for r in result["patches"] if r["patch"] == first)
    assert row["outcome"] == "conflicts" and "hunk #1" in row["detail"]
    tree = Path(result["tree"])
    assert row["rej"] and all((tree / r).exists() for r in row["rej"])
    assert "written" not in result
    assert snapshot(repo) == before


@pytest.mark.parametrize("mode", ["--check", "--reverse"])
def test_apply_script_rejects_only_when_applying(mode, pristine_tree):
    proc = run_apply("--reject", mode, pristine_tree)
    assert proc.returncode == 2 and "--reject only applies" in proc.stderr
    # the engine itself refuses it too, for callers that do not go through the script
    with pytest.raises(trees.ToolError, match="--reject only applies") as e:
        opts = trees.Options(mode=mode.lstrip("-"), reject=True)
        trees.apply(pristine_tree, opts)
    assert e.value.code == 2
