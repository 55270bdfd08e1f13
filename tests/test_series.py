"""Series hygiene: ``scripts/dev lint`` (series and files agree, headers are complete
and their provenance true, Regression-Test trailers, the docs derived from the headers
are current) called in-process, and its checks can fail; the series applies without
fuzz or offset in both layouts (and with quilt); the touched files are the same in
every pinned wheel."""

import os
import re
import shutil
import subprocess
import zipfile

import pytest
from cli_helpers import repo_copy, run_cli
from conftest import apply_series, make_checkout, project_files, series_paths
from sglang_mimo import changelog, docs, engine, lint, paths, series, wheels

REPO = paths.REPO


def test_lint_finds_nothing():
    """The whole lint, in-process: series/files, every header, Regression-Test
    trailers, the generated docs."""
    assert [str(f) for f in lint.problems()] == []


def test_lint_command_reports_and_exits_1(tmp_path):
    """``scripts/dev lint``: one line a finding, exit 1; exit 0 on this checkout."""
    run_cli("lint", check_rc=0)
    repo = repo_copy(tmp_path / "repo")
    (repo / "patches" / "0099-stray.patch").write_text("x")
    proc = run_cli("lint", repo=repo, check_rc=1)
    assert "patches/series: does not list 0099-stray.patch\n" in proc.stdout


def test_series_and_patch_files_agree():
    assert lint.series_problems() == []


def test_series_problems_finds_disagreements(tmp_path):
    """The checker itself can fail: an unlisted file, a missing one, a repeat, order."""
    names = series.read_series()
    for n in names[:3]:
        (tmp_path / n).write_text("x")
    (tmp_path / "0099-stray.patch").write_text("x")
    (tmp_path / "series").write_text(
        "\n".join([names[1], names[0], names[1], "0098-gone.patch"]) + "\n"
    )
    found = lint.series_problems(tmp_path / "series")
    for complaint in (
        "lists 0098-gone.patch, which is not",
        f"does not list {names[2]}",
        "does not list 0099-stray.patch",
        f"lists {names[1]} more than once",
        "not in the order",
    ):
        assert any(complaint in p for p in found), (complaint, found)


@pytest.mark.parametrize("name", series.read_series())
def test_patch_header_is_complete(name):
    patch = series.parse_patch(paths.PATCHES / name)
    assert lint.header_problems(patch) == []
    assert lint.format_problems(patch) == []


def test_format_problems_finds_gaps(tmp_path):
    good = (paths.PATCHES / series.read_series()[0]).read_text()
    bad = tmp_path / "bad.patch"
    bad.write_text(
        re.sub(r"(?m)^index [0-9a-f]+\.\.", "index 1234567..", good).replace(
            "From 0000000000000000000000000000000000000000 ", "From 1234 ", 1
        )
    )
    problems = lint.format_problems(series.parse_patch(bad))
    assert any("zero commit" in p for p in problems)
    assert any("full 40-digit blob" in p for p in problems)


def test_header_problems_finds_gaps(tmp_path):
    """The checker itself can fail."""
    good = (paths.PATCHES / series.read_series()[0]).read_text()
    bad = tmp_path / "bad.patch"
    bad.write_text(
        good.replace("Upstream-Status: ", "Upstream-Status: Maybe-")
        .replace("Motivation:\n", "Why:\n")
        .replace("[VLM] ", "")
    )
    problems = lint.header_problems(series.parse_patch(bad))
    assert any("Upstream-Status" in p for p in problems)
    assert any("Motivation" in p for p in problems)
    assert any("bracket tag" in p for p in problems)


PR = "https://github.com/sgl-project/sglang/pull/"
COMMIT = "https://github.com/sgl-project/sglang/commit/"
SHA = "0123456789abcdef0123456789abcdef01234567"


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
            # Submitted names a PR this project did not open (0001 once named sglang#24503
            # as ours)
            (
                ("Origin: vendor", f"Upstream-Status: Submitted [{PR}24503]"),
                "not a PR of this project",
            ),
            # the old mixed trailer: cause, closed attempts and fixes in one list
            (
                (
                    "Origin: vendor",
                    f"Upstream-PR: {PR}31343",
                    "Upstream-Status: Pending",
                ),
                "Upstream-PR trailer",
            ),
            # a Backport names upstream's commit or PR, nothing else
            (
                (
                    f"Origin: backport, {PR[:-5]}tree/main",
                    f"Upstream-Status: Backport [{PR[:-5]}tree/main]",
                ),
                "a Backport names upstream's fix",
            ),
            # a backport whose Origin names another commit, or this project
            (
                ("Origin: vendor", f"Upstream-Status: Backport [{COMMIT}{SHA}]"),
                "Origin is 'vendor'",
            ),
            (
                (
                    f"Origin: backport, {COMMIT}{SHA[:8]}",
                    f"Upstream-Status: Backport [{COMMIT}{SHA}]",
                ),
                "name the same url",
            ),
            # upstream's open PR: a Backport (0001 and 0006 were once "Submitted" with
            # Origin: other), Origin backport with the same url, the message saying open
            (
                (f"Origin: backport, {PR}1", f"Upstream-Status: Backport [{PR}24503]"),
                "name the same url",
            ),
            (
                (
                    f"Origin: upstream, {PR}24503",
                    f"Upstream-Status: Backport [{PR}24503]",
                ),
                "not upstream's code as it is",
            ),
            (
                (
                    f"Origin: backport, {PR}37060",
                    f"Upstream-Status: Backport [{PR}37060]",
                ),
                "must say the PR is open",
            ),
            # Submitted is only for our own PR: not for upstream's open PR carried
            (
                (
                    f"Origin: other, {PR}24503",
                    f"Upstream-Status: Submitted [{PR}24503]",
                ),
                "not a PR of this project",
            ),
            (
                (
                    f"Origin: backport, {PR}24503",
                    f"Upstream-Status: Submitted [{PR}24503]",
                ),
                "Submitted is this project's code",
            ),
            (
                (f"Origin: other, {PR}24503", "Upstream-Status: Pending"),
                "nothing else",
            ),
            (
                (f"Origin: other, {PR}24503", f"Upstream-Status: Backport [{PR}24503]"),
                "Origin is 'other",
            ),
            # our stand-in, not for upstream, is still our code
            (
                (
                    f"Origin: backport, {PR}33198",
                    "Upstream-Status: Inappropriate [upstream's own fix is open as #33198]",
                ),
                "Inappropriate is this project's code",
            ),
            # our own code claiming to come from upstream
            (
                (f"Origin: backport, {COMMIT}{SHA}", "Upstream-Status: Pending"),
                "Pending is this project's code",
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
            # the backported PR itself is not also "related"
            (
                (
                    f"Origin: backport, {PR}24503",
                    f"Related: {PR}24503 (the fix)",
                    f"Upstream-Status: Backport [{PR}24503]",
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
            # upstream's code, merged or an open PR, under this project's name
            (
                (
                    f"Origin: backport, {COMMIT}{SHA}",
                    f"Upstream-Status: Backport [{COMMIT}{SHA}]",
                ),
                "keeps its upstream author",
                series.VENDOR_AUTHOR,
            ),
            (
                (
                    f"Origin: backport, {PR}24503",
                    f"Upstream-Status: Backport [{PR}24503]",
                ),
                "keeps its upstream author",
                series.VENDOR_AUTHOR,
            ),
            (("Origin: upstream", "Upstream-Status: Pending"), "Origin is neither"),
        ]
    ],
)
def test_provenance_confusions_are_rejected(tmp_path, trailers, complaint, author):
    problems = lint.header_problems(with_trailers(tmp_path, *trailers, author=author))
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
        # upstream's merged commit, adapted or as it is
        (
            f"Origin: backport, {COMMIT}{SHA}",
            f"Related: {PR}31343 (cause)",
            f"Upstream-Status: Backport [{COMMIT}{SHA}]",
        ),
        (
            f"Origin: upstream, {COMMIT}{SHA}",
            f"Upstream-Status: Backport [{COMMIT}{SHA}]",
        ),
        # upstream's open PR, adapted, by its author (the message of the first patch,
        # 0001, says sglang#24503 is open)
        (
            f"Origin: backport, {PR}24503",
            "Bug: https://github.com/sgl-project/sglang/issues/37059",
            f"Upstream-Status: Backport [{PR}24503]",
        ),
        # our stand-in while upstream's own fix is open and unreadable
        (
            "Origin: vendor",
            f"Related: {PR}33198 (upstream's own fix, open)",
            "Upstream-Status: Inappropriate [upstream's own fix is open as #33198]",
        ),
    ]
    for trailers in ok:
        assert lint.header_problems(with_trailers(tmp_path, *trailers)) == []
    # Submitted is right once the PR is one of ours (pyproject own-upstream-prs)
    ours = with_trailers(
        tmp_path, "Origin: vendor", f"Upstream-Status: Submitted [{PR}99999]"
    )
    assert lint.provenance_problems(ours, own_prs=[f"{PR}99999"]) == []
    assert lint.provenance_problems(ours, own_prs=[]) != []


def test_own_upstream_prs_is_a_project_field():
    assert isinstance(series.own_upstream_prs(), list)
    for p in series.load_series():
        if series.status_word(p) == "Submitted":  # only ever our own PR
            assert p.is_ours and p.status_url in series.own_upstream_prs()
        elif series.status_word(p) == "Backport":  # upstream's fix, by its author
            assert p.origin_url == p.status_url
            assert p.status_url not in series.own_upstream_prs()
            assert p.author != series.VENDOR_AUTHOR


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
        if path != paths.PIN_FILE and path.suffix in {
            ".py",
            ".sh",
            ".md",
            ".hcl",
            ".txt",
            ".yaml",
            ".toml",
            "",
        }:
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
        m.group(1).strip() == docs.render_patch_table(series.load_series()).strip()
    ), "README patch table is stale: run `scripts/dev docs --write`"


def test_stale_generated_docs_are_found():
    """The lint's docs check can fail: a series of one patch less makes both the
    README table and the CHANGELOG list stale."""
    patches = series.load_series()
    assert changelog.render_patches(patches) in (REPO / "CHANGELOG.md").read_text()
    found = docs.problems(patches[:-1])
    assert any(p.startswith("README.md is stale") for p in found), found
    assert any(p.startswith("CHANGELOG.md: ") for p in found), found


def test_changelog_lists_every_patch_of_the_current_release():
    text = (REPO / "CHANGELOG.md").read_text()
    release = paths.load_pin()["distribution"]
    m = re.search(rf"^## \[{re.escape(release)}\].*?(?=^## \[|\Z)", text, re.M | re.S)
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
            assert lint.regression_test_problems(p) == [], p.name
    base = ("Origin: vendor", "Upstream-Status: Pending")
    for value, complaint in (
        (None, "no Regression-Test trailer"),
        ("tests/regression/registered/unit/utils/test_x.py", "is not test/registered"),
        ("test/registered/unit/utils/helpers.py", "is not test/registered"),
        ("test/registered/unit/utils/test_nowhere.py", "no "),
    ):
        trailers = base + ((f"Regression-Test: {value}",) if value else ())
        patch = with_trailers(tmp_path, *trailers)
        assert lint.header_problems(patch) == []  # a known trailer
        problems = lint.regression_test_problems(patch)
        assert any(complaint in p for p in problems), (value, problems)
