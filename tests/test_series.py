"""Series hygiene: series and files agree, headers are complete, the series applies
without fuzz or offset in both layouts (and with quilt), the touched files are the
same in every pinned wheel, and the docs derived from the headers are current."""

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import apply_series, make_checkout, project_files, series_paths

from sglang_mimo import engine, paths, series, wheels

REPO = paths.REPO


def test_series_and_patch_files_agree():
    listed = series.read_series()
    on_disk = sorted(p.name for p in paths.PATCHES.glob("*.patch"))
    assert sorted(listed) == on_disk
    assert len(set(listed)) == len(listed)
    assert listed == sorted(listed), "series order follows the patch numbers"


@pytest.mark.parametrize("name", series.read_series())
def test_patch_header_is_complete(name):
    patch = series.parse_patch(paths.PATCHES / name)
    assert series.header_problems(patch) == []
    assert patch.preimages.keys() == set(patch.files), "every file has an index line"
    assert all(re.fullmatch(r"[0-9a-f]{40}", b) for b in patch.preimages.values())
    text = (paths.PATCHES / name).read_text()
    assert text.startswith("From 0000000000000000000000000000000000000000 ")


def test_header_problems_finds_gaps(tmp_path):
    """The checker itself can fail."""
    good = (paths.PATCHES / series.read_series()[0]).read_text()
    bad = tmp_path / "bad.patch"
    bad.write_text(
        good.replace("Upstream-Status: ", "Upstream-Status: Maybe-")
        .replace("Motivation:\n", "Why:\n")
        .replace("[VLM] ", "")
    )
    problems = series.header_problems(series.parse_patch(bad))
    assert any("Upstream-Status" in p for p in problems)
    assert any("Motivation" in p for p in problems)
    assert any("bracket tag" in p for p in problems)


PR = "https://github.com/sgl-project/sglang/pull/"


UPSTREAM_AUTHOR = "Some Author <some@example.com>"


def with_trailers(tmp_path, *trailers, author=None):
    """The first patch of the series with its trailer paragraph replaced, and
    ``From:`` this project for ``Origin: vendor``, an upstream author otherwise."""
    text = (paths.PATCHES / series.read_series()[0]).read_text()
    if author is None:
        vendor = "Origin: vendor" in trailers
        author = series.VENDOR_AUTHOR if vendor else UPSTREAM_AUTHOR
    text = re.sub(r"(?m)^From: .*$", f"From: {author}", text, count=1)
    head, sep, rest = text.partition("\n---\n")
    paras = head.split("\n\n")
    paras[-1] = "\n".join(("Breaks-Without: something fails",) + trailers)
    path = tmp_path / "p.patch"
    path.write_text("\n\n".join(paras) + sep + rest)
    return series.parse_patch(path)


@pytest.mark.parametrize(
    "trailers, complaint, author",
    [
        (*case, None)[:3]
        for case in [
        # Submitted names a PR this project did not open (0001 once named sglang#24503)
        (
            ("Origin: vendor", f"Upstream-Status: Submitted [{PR}24503]"),
            "not a PR of this project",
        ),
        # the old mixed trailer: cause, closed attempts and fixes in one list
        (
            ("Origin: vendor", f"Upstream-PR: {PR}31343", "Upstream-Status: Pending"),
            "Upstream-PR trailer",
        ),
        # a backport whose Origin names another PR, or this project
        (
            ("Origin: vendor", f"Upstream-Status: Backport [{PR}33198]"),
            "Origin is 'vendor'",
        ),
        (
            (f"Origin: backport, {PR}1", f"Upstream-Status: Backport [{PR}33198]"),
            "name the same url",
        ),
        # our own code claiming to come from upstream
        (
            (f"Origin: backport, {PR}24503", "Upstream-Status: Pending"),
            "ours is 'vendor'",
        ),
        # Bug is an issue, Related a PR with its reason
        (
            ("Origin: vendor", f"Bug: {PR}24602", "Upstream-Status: Pending"),
            "Bug is not",
        ),
        (
            ("Origin: vendor", f"Related: {PR}25515", "Upstream-Status: Pending"),
            "Related is not",
        ),
        (
            (
                "Origin: vendor",
                "Related: https://github.com/sgl-project/sglang/issues/1 (x)",
                "Upstream-Status: Pending",
            ),
            "Related is not",
        ),
        # the fix itself is not also "related"
        (
            (
                f"Origin: backport, {PR}33198",
                f"Related: {PR}33198 (the fix)",
                f"Upstream-Status: Backport [{PR}33198]",
            ),
            "repeats",
        ),
        (("Upstream-Status: Pending",), "no Origin trailer"),
        # this project's code under an upstream author's name (0007 and 0008 were
        # once written from PR descriptions but carried From: the PR authors)
        (
            (
                "Origin: vendor",
                f"Related: {PR}33198 (upstream's own fix, open)",
                "Upstream-Status: Inappropriate [upstream's own fix is open as #33198]",
            ),
            "our code is From:",
            UPSTREAM_AUTHOR,
        ),
        # upstream's code under this project's name
        (
            (f"Origin: backport, {PR}37060", f"Upstream-Status: Backport [{PR}37060]"),
            "a backport keeps its author",
            "sglang-mimo <sglang-mimo@users.noreply.github.com>",
        ),
        (("Origin: upstream", "Upstream-Status: Pending"), "Origin is neither"),
        ]
    ],
)
def test_provenance_confusions_are_rejected(tmp_path, trailers, complaint, author):
    problems = series.header_problems(with_trailers(tmp_path, *trailers, author=author))
    assert any(complaint in p for p in problems), problems


def test_provenance_accepts_what_dep3_means(tmp_path):
    ok = [
        ("Origin: vendor", "Upstream-Status: Pending"),
        (
            "Origin: vendor",
            "Bug: https://github.com/sgl-project/sglang/issues/24602",
            f"Related: {PR}25515 (closed unmerged: same approach)",
            "Upstream-Status: Pending",
        ),
        (
            f"Origin: backport, {PR}33198",
            f"Related: {PR}31343 (cause)",
            f"Upstream-Status: Backport [{PR}33198]",
        ),
        # our stand-in while upstream's own fix is open and unreadable
        (
            "Origin: vendor",
            f"Related: {PR}33198 (upstream's own fix, open)",
            "Upstream-Status: Inappropriate [upstream's own fix is open as #33198]",
        ),
    ]
    for trailers in ok:
        assert series.header_problems(with_trailers(tmp_path, *trailers)) == []
    # Submitted is right once the PR is one of ours (pyproject own-upstream-prs)
    ours = with_trailers(
        tmp_path, "Origin: vendor", f"Upstream-Status: Submitted [{PR}99999]"
    )
    assert series.provenance_problems(ours, own_prs=[f"{PR}99999"]) == []
    assert series.provenance_problems(ours, own_prs=[]) != []


def test_own_upstream_prs_is_a_project_field():
    assert isinstance(series.own_upstream_prs(), list)
    for p in series.load_series():
        if series.status_word(p) == "Submitted":
            assert p.status_url in series.own_upstream_prs()


def test_applies_without_offset_in_both_layouts(series_tree, tmp_path):
    checkout = make_checkout(series_tree, tmp_path / "ckout")
    for tree in (series_tree, checkout):
        for tool in ("git", "patch"):
            out = engine.apply_series(tree, engine.Options(mode="check", tool=tool))
            assert out.code == 0 and len(out.states) == len(series.read_series())
            for s in out.states:
                assert (s.status, s.detail) == ("applies", ""), f"{tool}: {s.line()}"


def test_quilt_push_all_on_a_checkout(series_tree, tmp_path):
    if not shutil.which("quilt"):
        pytest.fail("quilt is not installed (make sysdeps installs it)")
    checkout = make_checkout(series_tree, tmp_path / "ckout")
    reference = tmp_path / "ref"
    shutil.copytree(series_tree, reference)
    apply_series(reference)
    env = {
        **os.environ,
        "QUILT_PATCHES": str(paths.PATCHES),
        "QUILT_PC": str(tmp_path / "pc"),
    }
    proc = subprocess.run(
        ["quilt", "push", "-a", "--fuzz=0"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "offset" not in proc.stdout and "fuzz" not in proc.stdout
    for patch in series.load_series():
        for f in patch.files:
            assert (checkout / f).read_bytes() == (
                reference / f.removeprefix("python/")
            ).read_bytes()


def test_touched_files_are_identical_in_every_pinned_wheel():
    # Files the series creates (pre-image 0000000...) are in no wheel.
    touched = {
        f.removeprefix("python/")
        for p in series.load_series()
        for f in p.files
        if p.preimages.get(f, "").strip("0")
    }
    contents = {}
    for key in paths.load_pin()["wheels"]:
        wheel = wheels.fetch_pinned(paths.load_pin(), paths.BUILD, key)
        with zipfile.ZipFile(wheel) as z:
            contents[key] = {f: z.read(f) for f in sorted(touched)}
    first = next(iter(contents.values()))
    for key, files in contents.items():
        assert files == first, f"{key} differs from the others"


def test_pin_is_the_one_source_of_truth():
    pin = paths.load_pin()
    assert pin["tag"] == "v" + pin["version"]
    assert pin["distribution"].startswith(pin["version"] + "-mimo.")
    assert set(pin["wheels"]) >= {"x86_64-cp311", "x86_64-cp312", "aarch64-cp312"}
    for key, w in pin["wheels"].items():
        arch, py = key.split("-")
        assert (
            w["filename"]
            == f"sglang-{pin['version']}-{py}-{py}-manylinux_2_34_{arch}.whl"
        )
        assert re.fullmatch(r"[0-9a-f]{64}", w["sha256"])
    req = (REPO / "tests" / "requirements.txt").read_text()
    assert f"sglang=={pin['version']}\n" in req
    # no other file repeats a wheel hash
    hashes = {w["sha256"] for w in pin["wheels"].values()}
    for path in project_files():
        if (
            path != paths.PIN_FILE
            and path.suffix
            in {".py", ".sh", ".md", ".hcl", ".txt", ".yaml", ".toml", ""}
        ):
            text = path.read_text(errors="ignore")
            assert not any(h in text for h in hashes), f"{path} repeats a pinned hash"


def lines_changed_by(formatter, path):
    """Line numbers (0-based) of ``path`` that black/isort would rewrite."""
    import difflib

    before = path.read_text()
    after = FORMATTERS[formatter](before)
    changed = set()
    matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines())
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag != "equal":
            changed.update(range(i1, max(i2, i1 + 1)))
    return changed


def lines_added_by_series(pristine, patched):
    import difflib

    # A file the series creates has no pristine copy: every line is added.
    before = pristine.read_text().splitlines() if pristine.exists() else []
    after = patched.read_text().splitlines()
    added = set()
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, before, after).get_opcodes():
        if tag in ("insert", "replace"):
            added.update(range(j1, j2))
    return added


def _black(text):
    import black

    return black.format_str(text, mode=black.Mode())


def _isort(text):
    import isort

    return isort.code(text, profile="black", known_first_party=["sglang"])


# black and isort through their Python APIs (one import, no process per file).
FORMATTERS = {"black": _black, "isort": _isort}


@pytest.mark.parametrize("formatter", FORMATTERS)
def test_patch_lines_are_black_and_isort_clean(series_trees, formatter):
    """SGLang's style: no line the series adds is one black or isort would rewrite.

    Upstream files that are not clean at v0.5.23 are not reformatted (smallest diff).
    """
    # Each file once, however many patches touch it (black takes seconds on the big ones).
    for rel in series_paths():
        if not rel.endswith(".py"):
            continue
        patched = series_trees["patched"] / rel
        dirty = lines_changed_by(formatter, patched)
        added = lines_added_by_series(series_trees["unpatched"] / rel, patched)
        text = patched.read_text().splitlines()
        bad = sorted(dirty & added)
        assert not bad, f"{formatter} would rewrite lines {rel} adds:\n" + "\n".join(
            f"{n + 1}: {text[n]}" for n in bad[:10]
        )


def test_readme_patch_table_is_derived_from_headers():
    readme = (REPO / "README.md").read_text()
    m = re.search(
        r"<!-- patch-table:begin -->\n(.*?)\n<!-- patch-table:end -->", readme, re.S
    )
    assert m, "README.md has no patch-table markers"
    assert (
        m.group(1).strip() == series.render_patch_table(series.load_series()).strip()
    ), "README patch table is stale: run `sglang-mimo docs --write`"


def test_changelog_lists_every_patch_of_the_current_release():
    changelog = (REPO / "CHANGELOG.md").read_text()
    release = paths.load_pin()["distribution"]
    m = re.search(
        rf"^## \[{re.escape(release)}\].*?(?=^## \[|\Z)", changelog, re.M | re.S
    )
    assert m, f"CHANGELOG.md has no section for {release}"
    for patch in series.load_series():
        assert patch.subject in m.group(
            0
        ), f"CHANGELOG {release} does not list {patch.name}"


def test_regression_test_trailers_name_upstream_layout_files(tmp_path):
    """``Regression-Test``: the patch's test at its upstream path, kept under
    tests/regression/registered/. Our own patches need one (export-pr sends it)."""
    for p in series.load_series():
        if p.regression_tests or series.status_word(p) in ("Pending", "Submitted"):
            assert series.regression_test_problems(p) == [], p.name
    base = ("Origin: vendor", "Upstream-Status: Pending")
    for value, complaint in (
        (None, "no Regression-Test trailer"),
        ("tests/regression/registered/unit/utils/test_x.py", "is not test/registered"),
        ("test/registered/unit/utils/helpers.py", "is not test/registered"),
        ("test/registered/unit/utils/test_nowhere.py", "no "),
    ):
        trailers = base + ((f"Regression-Test: {value}",) if value else ())
        patch = with_trailers(tmp_path, *trailers)
        assert series.header_problems(patch) == []  # a known trailer
        problems = series.regression_test_problems(patch)
        assert any(complaint in p for p in problems), (value, problems)
