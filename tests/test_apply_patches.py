"""scripts/apply_patches.sh on real trees from the pinned wheel: layouts, modes, faults.

Every fault case checks that the tree is byte for byte as it was and that the
message names what went wrong. The trees hold what the script reads (every file
the series touches, the top of ``sglang/``, the dist-info; see conftest.small_unpack).
"""

import hashlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import run_apply

from sglang_mimo import series

DECODER = "sglang/srt/utils/video_decoder.py"
PATCHES = series.read_series()


def digest(tree):
    """Every file's path, mode and bytes (and, in a git checkout, HEAD and status)."""
    h = hashlib.sha256()
    tree = Path(tree)
    for p in sorted(tree.rglob("*")):
        rel = p.relative_to(tree)
        if rel.parts[0] == ".git" or not p.is_file():
            continue
        h.update(f"{rel}\0{stat.S_IMODE(p.stat().st_mode)}\0".encode())
        h.update(p.read_bytes())
    if (tree / ".git").exists():
        h.update(git(tree, "rev-parse", "HEAD").encode())
        h.update(git(tree, "status", "--porcelain").encode())
    return h.hexdigest()


def git(tree, *args):
    return subprocess.run(
        ["git", "-C", str(tree), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def checkout(series_checkout):
    return series_checkout


def lines(proc):
    return dict(l.split(": ", 1) for l in proc.stdout.splitlines() if ": " in l)


# --- layouts and modes --------------------------------------------------------------


def test_check_on_pinned_tree_reports_applies(series_tree):
    proc = run_apply("--check", series_tree)
    assert proc.returncode == 0, proc.stderr
    assert lines(proc) == {p: "applies" for p in PATCHES}


def test_both_layouts_give_the_same_files(series_tree, checkout):
    assert run_apply(series_tree).returncode == 0
    assert run_apply(checkout).returncode == 0
    for patch in series.load_series():
        for f in patch.files:
            rel = f.removeprefix("python/")
            assert (series_tree / rel).read_bytes() == (checkout / f).read_bytes(), f


def test_apply_is_idempotent_and_reversible(series_tree):
    before = digest(series_tree)
    assert run_apply(series_tree).returncode == 0
    after = digest(series_tree)
    assert after != before
    proc = run_apply(series_tree)
    assert proc.returncode == 0 and "already applied" in proc.stderr
    assert digest(series_tree) == after
    check = run_apply("--check", series_tree)
    assert check.returncode == 0
    assert set(lines(check).values()) == {"already applied"}
    assert run_apply("--reverse", series_tree).returncode == 0
    assert digest(series_tree) == before


def test_commit_makes_one_commit_per_patch(checkout):
    base = git(checkout, "rev-parse", "HEAD").strip()
    proc = run_apply("--commit", checkout)
    assert proc.returncode == 0, proc.stderr
    subjects = git(
        checkout, "log", "--reverse", "--format=%s", f"{base}..HEAD"
    ).splitlines()
    assert subjects == [p.subject for p in series.load_series()]
    assert git(checkout, "status", "--porcelain", "--untracked-files=no") == ""
    # the index lines are the real v0.5.23 pre-images, commit by commit
    commits = git(checkout, "rev-list", "--reverse", f"{base}..HEAD").split()
    for patch, commit in zip(series.load_series(), commits):
        for f, blob in patch.preimages.items():
            if not blob.strip("0"):  # a file the patch creates
                assert git(checkout, "ls-tree", f"{commit}^", f) == ""
                continue
            assert git(checkout, "rev-parse", f"{commit}^:{f}").strip() == blob
    again = run_apply("--commit", checkout)
    assert (
        again.returncode == 0
        and git(checkout, "rev-parse", "HEAD").strip() == commits[-1]
    )


def test_default_tree_from_the_pinned_wheel(tmp_path, pinned_wheel):
    build = tmp_path / "build"
    (build / "wheels").mkdir(parents=True)
    shutil.copy(pinned_wheel, build / "wheels")  # the download itself: test_fetch_*
    proc = run_apply(env={"SGLANG_MIMO_BUILD": str(build)})
    assert proc.returncode == 0, proc.stderr
    tree = build / "sglang-0.5.23"
    assert f"patched tree: {tree}" in proc.stdout
    assert git(tree, "describe", "--tags", "--abbrev=0").strip() == "v0.5.23"
    assert len(git(tree, "rev-list", "v0.5.23..HEAD").split()) == len(PATCHES)
    assert run_apply("--check", tree).returncode == 0


def test_fetch_checks_the_sha256(tmp_path):
    """A wheel whose hash is not the pinned one is refused and not kept."""
    repo = tmp_path / "repo"
    shutil.copytree(Path(series.paths.REPO) / "scripts", repo / "scripts")
    shutil.copytree(Path(series.paths.REPO) / "patches", repo / "patches")
    pin = (repo / "patches" / "pin.json").read_text()
    key_sha = series.paths.load_pin()["wheels"]["aarch64-cp312"]["sha256"]
    (repo / "patches" / "pin.json").write_text(pin.replace(key_sha, "0" * 64))
    proc = subprocess.run(
        [
            str(repo / "scripts" / "apply_patches.sh"),
            "--fetch",
            "--wheel",
            "aarch64-cp312",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 5, proc.stderr
    assert "sha256" in proc.stderr and "0" * 64 in proc.stderr
    assert not list((repo / "build" / "wheels").glob("*.whl"))


def test_gnu_patch_fallback_gives_the_same_files(series_tree, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(series_tree, other)
    assert run_apply(series_tree).returncode == 0
    proc = run_apply(other, env={"APPLY_PATCHES_TOOL": "patch"})
    assert proc.returncode == 0, proc.stderr
    assert (other / DECODER).read_bytes() == (series_tree / DECODER).read_bytes()
    again = run_apply("--check", other, env={"APPLY_PATCHES_TOOL": "patch"})
    assert set(lines(again).values()) == {"already applied"}


def test_help_documents_exit_codes():
    proc = run_apply("--help")
    assert proc.returncode == 0
    for code in range(6):
        assert f"\n  {code}  " in proc.stdout
    assert run_apply("--bogus").returncode == 2


# --- faults: the tree stays as it was ---------------------------------------------------


@pytest.mark.parametrize("tool", ["git", "patch"])
def test_broken_preimage(series_tree, tool):
    f = series_tree / DECODER
    f.write_text(
        f.read_text().replace(
            "        return output if output.is_cuda else output.pin_memory()",
            "        return output if output.is_cuda else output.pin_memory()  # local",
        )
    )
    before = digest(series_tree)
    proc = run_apply(series_tree, env={"APPLY_PATCHES_TOOL": tool})
    assert proc.returncode == 1
    assert digest(series_tree) == before
    status = lines(proc)[PATCHES[0]]
    assert status.startswith(
        "conflicts: python/sglang/srt/utils/video_decoder.py hunk #"
    )
    assert "unchanged" in proc.stderr


def test_wrong_version_is_refused(series_tree):
    meta = next(series_tree.glob("sglang-*.dist-info")) / "METADATA"
    meta.write_text(meta.read_text().replace("Version: 0.5.23", "Version: 0.5.22"))
    before = digest(series_tree)
    proc = run_apply(series_tree)
    assert proc.returncode == 3
    assert (
        "0.5.22" in proc.stderr and "0.5.23" in proc.stderr and "--force" in proc.stderr
    )
    assert digest(series_tree) == before
    assert run_apply("--force", series_tree).returncode == 0


def test_checkout_without_version_file_uses_the_tag(checkout):
    git(checkout, "rm", "-q", "python/sglang/_version.py")
    git(checkout, "commit", "-qm", "drop generated file")
    assert run_apply("--check", checkout).returncode == 0
    git(checkout, "tag", "-d", "v0.5.23")
    git(checkout, "tag", "v0.5.22")
    proc = run_apply("--check", checkout)
    assert proc.returncode == 3 and "0.5.22" in proc.stderr


@pytest.mark.parametrize("make", ["empty", "other-package", "missing"])
def test_not_an_sglang_tree(tmp_path, make):
    d = tmp_path / "d"
    if make != "missing":
        d.mkdir()
    if make == "other-package":
        (d / "vllm").mkdir()
        (d / "vllm" / "__init__.py").write_text("")
    proc = run_apply(d)
    assert proc.returncode == 3
    assert "sglang" in proc.stderr or "no such directory" in proc.stderr
    if make != "missing":
        assert [p.name for p in d.iterdir()] == ([] if make == "empty" else ["vllm"])


def test_partially_applied_series_is_completed(series_tree, tmp_path):
    first_only = tmp_path / "series"
    first_only.write_text(PATCHES[0] + "\n")
    shutil.copy(series.paths.PATCHES / PATCHES[0], tmp_path / PATCHES[0])
    assert run_apply("--series", first_only, series_tree).returncode == 0
    check = lines(run_apply("--check", series_tree))
    assert check[PATCHES[0]] == "already applied"
    assert all(check[p] == "applies" for p in PATCHES[1:])
    assert run_apply(series_tree).returncode == 0
    assert set(lines(run_apply("--check", series_tree)).values()) == {"already applied"}


def test_half_applied_patch_conflicts(series_tree, tmp_path):
    """One hunk of a patch present, the others not: nothing is changed."""
    f = series_tree / DECODER
    f.write_text(
        f.read_text().replace(
            "        return output if output.is_cuda else output.pin_memory()",
            "        return _maybe_pin(output)",
        )
    )
    before = digest(series_tree)
    proc = run_apply(series_tree)
    assert proc.returncode == 1 and digest(series_tree) == before
    assert lines(proc)[PATCHES[0]].startswith("conflicts: ")


def test_read_only_file(series_tree):
    f = series_tree / DECODER
    f.chmod(0o444)
    before = digest(series_tree)
    proc = run_apply(series_tree)
    assert proc.returncode == 4
    assert "read-only" in proc.stderr and str(f) in proc.stderr
    assert digest(series_tree) == before


def test_dirty_checkout(checkout):
    f = checkout / "python" / DECODER
    f.write_text(f.read_text() + "\n# local change\n")
    before = digest(checkout)
    proc = run_apply(checkout)
    assert proc.returncode == 4
    assert "dirty checkout" in proc.stderr and "video_decoder.py" in proc.stderr
    assert digest(checkout) == before


def test_commit_needs_a_clean_checkout(checkout):
    (checkout / "python" / "sglang" / "README.md").write_text("local\n")
    before = digest(checkout)
    proc = run_apply("--commit", checkout)
    assert proc.returncode == 4 and "dirty checkout" in proc.stderr
    assert digest(checkout) == before


def test_uncommitted_series_is_not_dirty(checkout):
    """Applied without --commit: re-runs and --reverse still work."""
    before = digest(checkout)
    assert run_apply(checkout).returncode == 0
    assert run_apply(checkout).returncode == 0
    assert run_apply("--reverse", checkout).returncode == 0
    assert digest(checkout) == before


def test_commit_outside_a_checkout_is_a_usage_error(series_tree):
    before = digest(series_tree)
    proc = run_apply("--commit", series_tree)
    assert proc.returncode == 2 and "git checkout" in proc.stderr
    assert digest(series_tree) == before


def test_reverse_then_apply_on_a_committed_checkout(checkout):
    """--commit, then --reverse (uncommitted), then apply again: the uncommitted
    changes are the series taken out, so applying puts HEAD's files back."""
    assert run_apply("--commit", checkout).returncode == 0
    committed = digest(checkout)
    proc = run_apply("--reverse", checkout)
    assert proc.returncode == 0, proc.stderr
    assert set(lines(proc).values()) == {"reverses"}
    reversed_ = digest(checkout)
    assert reversed_ != committed
    assert run_apply("--check", checkout).returncode == 0
    proc = run_apply(checkout)
    assert proc.returncode == 0, proc.stderr
    assert set(lines(proc).values()) == {"applies"}
    assert digest(checkout) == committed  # HEAD's files, nothing uncommitted
    assert git(checkout, "status", "--porcelain", "--untracked-files=no") == ""
    # and back again: reversing and re-applying is repeatable
    assert run_apply("--reverse", checkout).returncode == 0
    assert digest(checkout) == reversed_


def test_reversed_committed_checkout_with_a_local_change_is_dirty(checkout):
    """Taken out and then edited by hand: not the series any more, refused."""
    assert run_apply("--commit", checkout).returncode == 0
    assert run_apply("--reverse", checkout).returncode == 0
    f = checkout / "python" / DECODER
    f.write_text(f.read_text() + "\n# local change\n")
    before = digest(checkout)
    proc = run_apply(checkout)
    assert proc.returncode == 4
    assert "dirty checkout" in proc.stderr and "video_decoder.py" in proc.stderr
    assert digest(checkout) == before


@pytest.mark.parametrize(
    "modes",
    [["--check", "--reverse"], ["--reverse", "--check"], ["--fetch", "--check"]],
)
def test_modes_exclude_each_other(series_tree, modes):
    before = digest(series_tree)
    proc = run_apply(*modes, series_tree)
    assert proc.returncode == 2
    assert "not allowed with argument" in proc.stderr, proc.stderr
    assert digest(series_tree) == before


def test_fetch_honours_dir(tmp_path, pinned_wheel):
    """--fetch DIR: the pinned wheel in DIR (a cached one is checked, not downloaded
    again), its path printed; nothing goes to the build directory."""
    dest, build = tmp_path / "wheels-here", tmp_path / "build"
    dest.mkdir()
    shutil.copy(pinned_wheel, dest)  # the download itself: test_fetch_checks_the_sha256
    proc = run_apply("--fetch", dest, env={"SGLANG_MIMO_BUILD": str(build)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(dest / pinned_wheel.name)
    assert not build.exists()


def test_repo_comes_from_paths(series_tree, tmp_path):
    """The script reads the series and pin where sglang_mimo.paths says:
    SGLANG_MIMO_REPO when set."""
    repo = tmp_path / "repo"
    shutil.copytree(series.paths.PATCHES, repo / "patches")
    (repo / "patches" / "series").write_text(PATCHES[0] + "\n")
    proc = run_apply("--check", series_tree, env={"SGLANG_MIMO_REPO": str(repo)})
    assert proc.returncode == 0, proc.stderr
    assert lines(proc) == {PATCHES[0]: "applies"}
