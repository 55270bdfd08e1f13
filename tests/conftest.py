"""Shared fixtures: the pinned wheel, and the unpatched and patched SGLang trees.

The trees are site-packages layout (a directory holding ``sglang/``) unpacked
from the pinned wheel; the patched ones are patched by the apply engine
(``sglang_mimo.engine``, in-process), never by a copy of its logic. ``tests/regression/`` is not collected by
the outer run: ``tests/test_both_ways.py`` runs each of its files against both
trees in a subprocess.

Whole trees (``fresh_tree``, ``trees``) are for code that imports sglang. What
only reads or patches the files of the series takes the small ones
(``series_tree``, ``series_checkout``, ``series_trees``): every file the series
touches plus the files the apply script reads to recognise a tree (the top of
``sglang/`` and the dist-info), a few dozen files instead of 5,400.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from sglang_mimo import bothways, engine, paths, wheels  # noqa: E402
from sglang_mimo.bothways import series_paths  # noqa: E402,F401  (tests import it)

APPLY = paths.APPLY_SCRIPT

if not os.environ.get("SGLANG_MIMO_TREE"):
    collect_ignore = ["regression", "engine"]


def run_apply(*args, env=None, check=False):
    """Run scripts/apply_patches.sh; return the CompletedProcess (text)."""
    proc = subprocess.run(
        [str(APPLY), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"apply_patches.sh {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc


def apply_series(tree, **options):
    """The apply engine on ``tree`` (``options``: engine.Options fields), in-process;
    the Outcome, which must be a success."""
    out = engine.apply_series(tree, engine.Options(**options))
    if out.code != 0:
        raise AssertionError(
            f"the series does not apply to {tree}: "
            + "; ".join(s.line() for s in out.states)
        )
    return out


def unpack_wheel(wheel, dest):
    """Unpack a wheel into ``dest`` (site-packages layout, dist-info included)."""
    return wheels.unpack_wheel(wheel, dest, skip_suffixes=())


def small_unpack(wheel, dest):
    """The part of the pinned wheel the series sees, unpacked (site-packages layout).

    The files directly in ``sglang/`` (``__init__.py``, ``_version.py``, ...),
    the dist-info, and every file the series touches that the wheel has.
    """
    touched = set(series_paths())

    def seen(name):
        parts = name.split("/")
        return name in touched or len(parts) == 2 or parts[0].endswith(".dist-info")

    return wheels.unpack_wheel(wheel, dest, skip_suffixes=(), only=seen)


def make_checkout(site_tree, dest, tag=True):
    """An upstream-layout git checkout (python/sglang/...) of a site-packages tree.

    Only ``sglang/`` goes in (no dist-info: the version comes from
    ``_version.py`` or the tag), committed by a local identity.
    """
    dest = Path(dest)
    (dest / "python").mkdir(parents=True)
    shutil.copytree(Path(site_tree) / "sglang", dest / "python" / "sglang")
    env = dict(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
    )
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "v0.5.23"]):
        subprocess.run(
            ["git", "-C", str(dest), *args], check=True, env={**os.environ, **env}
        )
    if tag:
        subprocess.run(["git", "-C", str(dest), "tag", "v0.5.23"], check=True)
    for key, value in (("user.name", "t"), ("user.email", "t@t")):
        subprocess.run(["git", "-C", str(dest), "config", key, value], check=True)
    return dest


@pytest.fixture(scope="session")
def pinned_wheel():
    """The pinned wheel for this interpreter, downloaded and sha256-checked."""
    return wheels.fetch_pinned(paths.load_pin(), paths.BUILD)


@pytest.fixture(scope="session")
def pristine_tree(pinned_wheel, tmp_path_factory):
    """The unpacked pinned wheel. Never modify it: copy it (see ``fresh_tree``)."""
    return unpack_wheel(pinned_wheel, tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def fresh_tree(pristine_tree, tmp_path):
    """A private copy of the pristine site-packages tree, python files only."""
    dest = tmp_path / "site"
    shutil.copytree(
        pristine_tree,
        dest,
        ignore=shutil.ignore_patterns("*.so", "*.cu", "*.cuh", "*.h", "*.cpp"),
    )
    return dest


@pytest.fixture(scope="session")
def series_pristine(pinned_wheel, tmp_path_factory):
    """``small_unpack`` of the pinned wheel. Never modify it: see ``series_tree``."""
    return small_unpack(pinned_wheel, tmp_path_factory.mktemp("series-pristine"))


@pytest.fixture
def series_tree(series_pristine, tmp_path):
    """A private site-packages tree holding only what the series sees (``small_unpack``)."""
    dest = tmp_path / "site"
    shutil.copytree(series_pristine, dest)
    return dest


@pytest.fixture
def series_checkout(series_tree, tmp_path):
    """A private checkout-layout git repository of ``series_tree``, tagged v0.5.23."""
    return make_checkout(series_tree, tmp_path / "ckout")


@pytest.fixture(scope="session")
def series_trees(series_pristine, tmp_path_factory):
    """{"unpatched": Path, "patched": Path} like ``trees``, with only what the series sees."""
    base = tmp_path_factory.mktemp("series-trees")
    unpatched = shutil.copytree(series_pristine, base / "unpatched")
    patched = shutil.copytree(series_pristine, base / "patched")
    apply_series(patched)
    return {"unpatched": unpatched, "patched": patched}


@pytest.fixture(scope="session")
def trees(pristine_tree, tmp_path_factory):
    """{"unpatched": Path, "patched": Path}: the two trees the regression tests run on.

    Both are read-only by contract; they share the pristine tree's files through
    hard links, except the files the series changes, which the patched one owns.
    """
    built, _ = bothways.build_trees(pristine_tree, tmp_path_factory.mktemp("trees"))
    return built


def project_files():
    """The project's files: tracked or new, not ignored (``.venv`` and ``build/`` are
    not walked); every file below the checkout but ``.git`` where git cannot list them.
    """
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others"]
        + ["--exclude-standard"],
        capture_output=True,
        text=True,
    )
    if out.returncode == 0:
        return [REPO / f for f in out.stdout.split("\0") if f and (REPO / f).is_file()]
    return [p for p in REPO.rglob("*") if p.is_file() and ".git" not in p.parts]


def project_lines(pattern, skip=(), flags=re.I):
    """``path:line: text`` of every line of the project's text files (patches and
    media aside, and the files named in ``skip``) that matches ``pattern``."""
    bad = re.compile(pattern, flags)
    hits = []
    for path in project_files():
        if path.suffix in {".patch", ".mp4", ".whl"} or path.name in skip:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if bad.search(line):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    return hits


BOTH_WAYS_RUN = re.compile(
    r"test_both_ways\.py::test_regression_file\[(?P<name>.+)-(?P<tree>unpatched|patched)\]$"
)


def xdist_scope(nodeid):
    """The unit of work one pytest-xdist worker takes whole: one both-ways run (all
    regression files on one tree, or one engine file on one tree), else one test file
    (its module fixtures, such as test_export_pr's exports, are built once)."""
    m = BOTH_WAYS_RUN.search(nodeid)
    if m:
        from test_both_ways import run_key

        return "-".join(run_key(m["name"], m["tree"]))
    return nodeid.split("::")[0]


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` of ``make test``, with the groups of xdist_scope.

    pytest-xdist 3.8 marks a test's group by rewriting ``item._nodeid``, which pytest
    9.2 no longer reads: its own loadgroup spreads every test on its own (two workers
    ran one file's rebase at once, and both built test_export_pr's exports).
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByScope(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return xdist_scope(nodeid)

    return ByScope(config, log)


def pytest_collection_modifyitems(config, items):
    """The order in which the work goes out (``--no-loadscope-reorder``).

    Longest first: the both-ways runs (the engine servers take minutes each), then
    the other files; last the checks that read every both-ways run, so that no
    worker waits for a run another one is doing.
    """

    def rank(item):
        if "test_both_ways.py::test_regression_file" in item.nodeid:
            return 0
        return 2 if "test_both_ways.py::" in item.nodeid else 1

    items.sort(key=rank)
