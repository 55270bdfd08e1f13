"""The apply engine in-process (``sglang_mimo.engine``) and the one diff reader.

The script's own messages, exit codes and atomicity: tests/test_apply_patches.py.
Here: what the tools get back when they call the engine (states, codes, the report
of a refusal), and ``diffs`` against what git itself says of a diff.
"""

import os
import subprocess
from pathlib import Path

import pytest
from conftest import make_checkout

from sglang_mimo import diffs, engine, paths, series
from sglang_mimo.errors import ToolError

PATCHES = series.read_series()
DECODER = "sglang/srt/utils/video_decoder.py"


def test_states_and_codes(series_tree):
    check = engine.apply_series(series_tree, engine.Options(mode="check"))
    assert check.code == 0 and check.summary == ""
    assert [(s.name, s.status) for s in check.states] == [
        (n, "applies") for n in PATCHES
    ]
    done = engine.apply_series(series_tree)
    assert done.code == 0 and done.summary == f"series applied to {series_tree}"
    again = engine.apply_series(series_tree, engine.Options(mode="check"))
    assert {s.status for s in again.states} == {"already applied"}
    back = engine.apply_series(series_tree, engine.Options(mode="reverse"))
    assert [s.name for s in back.states] == PATCHES[::-1]
    assert {s.status for s in back.states} == {"reverses"}


def test_a_conflict_is_a_report(series_tree):
    f = series_tree / DECODER
    f.write_text(f.read_text().replace("pin_memory()", "pin_memory()  # local", 1))
    before = f.read_bytes()
    out = engine.apply_series(series_tree)
    assert out.code == 1 and "unchanged" in out.summary
    first = out.state(PATCHES[0])
    assert first.status == "conflicts" and "video_decoder.py hunk #" in first.detail
    assert f.read_bytes() == before


def test_a_refusal_carries_the_report(series_tree, tmp_path):
    checkout = make_checkout(series_tree, tmp_path / "ckout")
    f = checkout / "python" / DECODER
    f.write_text(f.read_text() + "\n# local change\n")
    with pytest.raises(engine.ApplyError) as e:
        engine.apply_series(checkout)
    assert e.value.code == 4 and "dirty checkout" in str(e.value)
    assert [s.name for s in e.value.states] == PATCHES


def test_usage_errors_are_raised(series_tree):
    for opts, words in [
        (engine.Options(mode="fetch"), "mode must be"),
        (engine.Options(commit=True), "--commit needs a git checkout"),
        (engine.Options(tool="quilt"), "git or patch"),
    ]:
        with pytest.raises(ToolError, match=words) as e:
            engine.apply_series(series_tree, opts)
        assert e.value.code == 2


def test_one_patch_series(series_tree, tmp_path):
    name = PATCHES[-1]
    (tmp_path / name).write_bytes((paths.PATCHES / name).read_bytes())
    (tmp_path / "series").write_text(name + "\n")
    out = engine.apply_series(
        series_tree, engine.Options(mode="check", series=tmp_path / "series")
    )
    assert [s.name for s in out.states] == [name]


def git(repo, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout


def test_diffs_agree_with_git(tmp_path):
    """A diff with a changed, a new, a deleted and a renamed file, a file without a
    final newline and body lines that look like headers: files, pre-images and hunk
    starts as git reports them."""
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    lines = [f"line {i}\n" for i in range(60)]
    (repo / "a.py").write_text("".join(lines))
    (repo / "gone.py").write_text("x\n")
    (repo / "old.py").write_text("".join(lines[:20]))
    (repo / "nonl.py").write_text("a\nb")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    lines[3] = "diff --git a/fake b/fake\n"  # a body line: "-"/"+" before it
    lines[40] = "@@ -1,2 +1,2 @@ not a hunk\n"
    (repo / "a.py").write_text("".join(lines))
    (repo / "new.py").write_text("new\n")
    (repo / "gone.py").unlink()
    (repo / "old.py").rename(repo / "moved.py")
    (repo / "nonl.py").write_text("a\nc")
    git(repo, "add", "-A")
    text = git(repo, "diff", "--cached", "-M", "--full-index", "HEAD")
    parsed = {f.new: f for f in diffs.parse(text)}
    numstat = git(repo, "diff", "--cached", "-M", "--numstat", "HEAD")
    assert set(parsed) == {
        l.split("\t")[-1].split(" => ")[-1] for l in numstat.splitlines()
    } | {"gone.py"}
    assert parsed["moved.py"].old == "old.py"
    blobs = {
        f: git(repo, "rev-parse", f"HEAD:{f}").strip()
        for f in ("a.py", "gone.py", "nonl.py")
    }
    # a pure rename has no index line; a new file's pre-image is all zeros
    blobs.update({"new.py": "0" * 40, "moved.py": None})
    assert {p: f.old_blob for p, f in parsed.items()} == blobs
    assert [h.old_start for h in parsed["a.py"].hunks] == [1, 38]
    assert parsed["a.py"].hunks[1].header == "@@ -38,7 +38,7 @@"
    assert len(parsed["nonl.py"].hunks) == 1 and len(parsed) == 5


def test_every_patch_read_the_same_by_series_and_engine():
    for name in PATCHES:
        patch = series.parse_patch(paths.PATCHES / name)
        files = diffs.read(paths.PATCHES / name)
        assert patch.files == [f.old for f in files]
        assert set(diffs.touched(paths.PATCHES / name)) >= set(patch.files)
        assert all(f.hunks or f.old != f.new for f in files), name
