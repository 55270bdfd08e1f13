"""lint: check the series itself (a maintainer command).

- series and files agree: every ``patches/*.patch`` is listed in ``patches/series``
  once, nothing else is, and the order follows the patch numbers;
- each patch is ``git format-patch --zero-commit --full-index`` output with an
  index line (the full pre-image blob) for every file it touches;
- each header is complete and its DEP-3 provenance is true to DEP-3
  (``header_problems``, ``provenance_problems``): ``Backport`` for upstream's own
  fix carried, naming the upstream commit (merged) or the upstream PR (open, which
  the message says), ``From:`` its upstream author; ``Submitted`` only for a PR of
  this project (pyproject.toml ``[tool.sglang-mimo] own-upstream-prs``);
  ``Pending`` and ``Inappropriate`` for this project's own code (``Origin:
  vendor``);
- ``Regression-Test`` trailers name upstream-layout files this repository keeps
  (``regression_test_problems``; required for our own patches, which export-pr
  sends);
- the docs generated from the headers (README.md's table, CHANGELOG.md's list) are
  current.

``problems()`` returns the findings (tests call it in-process); the command
prints one line a finding and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sglang_mimo import docs, paths, series
from sglang_mimo.series import (
    COMMIT_URL,
    FORBIDDEN_TRAILERS,
    ISSUE_URL,
    KNOWN_TRAILERS,
    ORIGIN,
    PR_URL,
    REGRESSION_TEST,
    RELATED,
    REQUIRED_SECTIONS,
    REQUIRED_TRAILERS,
    UPSTREAM_STATUS,
    VENDOR_AUTHOR,
)

ZERO_FROM = "From 0000000000000000000000000000000000000000 "


@dataclass(frozen=True)
class Finding:
    where: str  # a patch file name, "patches/series", or a generated file
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def header_problems(patch: series.Patch, own_prs: list[str] | None = None) -> list[str]:
    """What is missing or malformed in a patch header (empty list: none)."""
    problems = []
    if not patch.tag:
        problems.append("subject has no SGLang bracket tag such as [VLM]")
    for name in REQUIRED_SECTIONS:
        if not patch.section(name):
            problems.append(f"no '{name}:' section in the message")
    for key in REQUIRED_TRAILERS:
        if not patch.trailer(key):
            problems.append(f"no {key} trailer")
    problems += provenance_problems(patch, own_prs)
    if not patch.files:
        problems.append("touches no file")
    for f in patch.files:
        if not f.startswith("python/sglang/"):
            problems.append(f"{f} is not in the upstream layout (python/sglang/...)")
    return problems


def provenance_problems(
    patch: series.Patch, own_prs: list[str] | None = None
) -> list[str]:
    """Where the DEP-3 provenance trailers contradict each other or DEP-3."""
    own = series.own_upstream_prs() if own_prs is None else own_prs
    problems = []
    for key, _ in patch.trailers:
        if key in FORBIDDEN_TRAILERS:
            problems.append(f"{key} trailer: {FORBIDDEN_TRAILERS[key]}")
        elif key not in KNOWN_TRAILERS:
            problems.append(f"unknown trailer {key!r}")
    status = patch.trailer("Upstream-Status")
    word = series.status_word(patch)
    if status and not UPSTREAM_STATUS.match(status):
        problems.append(f"Upstream-Status not Yocto-style: {status!r}")
    origin = patch.trailer("Origin")
    kind = patch.origin_kind
    if origin and not ORIGIN.match(origin):
        problems.append(
            "Origin is neither 'vendor' nor '<upstream|backport>, <url>': "
            f"{origin!r}"
        )
    url = patch.status_url
    if word == "Backport" and url and not (COMMIT_URL.match(url) or PR_URL.match(url)):
        problems.append(
            f"Backport [{url}]: a Backport names upstream's fix: the upstream commit "
            "(https://github.com/sgl-project/sglang/commit/<sha>) or, still open, the "
            "upstream PR (https://github.com/sgl-project/sglang/pull/<n>)"
        )
    if word == "Backport" and kind and kind not in ("upstream", "backport"):
        problems.append(
            f"Backport [{url}] but Origin is {origin!r}: upstream's code is "
            f"'backport, {url}' (adapted) or 'upstream, {url}' (a commit as it is)"
        )
    if word == "Backport" and kind == "upstream" and PR_URL.match(url or ""):
        problems.append(
            f"Backport [{url}] with Origin {origin!r}: an open PR is not upstream's "
            f"code as it is; carried adapted to the pin it is 'backport, {url}'"
        )
    if word == "Backport" and kind in ("upstream", "backport"):
        if patch.origin_url != url:
            problems.append(
                f"{word} [{url}] but Origin is {origin!r}: name the same url"
            )
    n = series.pr_number(url) if word == "Backport" else None
    if n is not None and not re.search(rf"#{n}\b[^.\n]*\bopen\b", patch.body):
        problems.append(
            f"Backport of PR #{n}, not of a merged commit: the message must say the "
            f"PR is open ('#{n} (open)')"
        )
    if word == "Submitted" and url and not PR_URL.match(url):
        problems.append(f"Submitted [{url}] is not an sgl-project/sglang PR URL")
    if word == "Submitted" and url and url not in own:
        problems.append(
            f"Submitted [{url}]: not a PR of this project (pyproject.toml "
            "[tool.sglang-mimo] own-upstream-prs); upstream's own fix carried, merged "
            "or open, is Backport [url] with Origin: backport, <url>; anything else "
            "Related"
        )
    if (
        word in ("Pending", "Submitted", "Inappropriate")
        and origin
        and kind != "vendor"
    ):
        problems.append(
            f"{word} patch with Origin {origin!r}: {word} is this project's code, "
            "Origin: vendor (upstream's fix carried is a Backport)"
        )
    if kind == "other":
        problems.append(
            f"Origin {origin!r}: the series carries its own code (vendor) or "
            "upstream's (Backport [url], Origin: backport, <url>), nothing else"
        )
    if kind == "vendor" and patch.author != VENDOR_AUTHOR:
        problems.append(
            f"Origin vendor (this project's code) but From: {patch.author!r}: "
            f"our code is From: {VENDOR_AUTHOR}"
        )
    if origin and kind != "vendor" and patch.author == VENDOR_AUTHOR:
        problems.append(
            f"Origin {origin!r} but From: this project: a Backport keeps its "
            "upstream author"
        )
    for bug in patch.bugs:
        if not ISSUE_URL.match(bug):
            problems.append(f"Bug is not an sgl-project/sglang issue URL: {bug!r}")
    for value in patch.trailer_all("Related"):
        m = RELATED.match(value)
        if not m or not PR_URL.match(m.group(1)):
            problems.append(f"Related is not '<sglang PR url> (<why>)': {value!r}")
        elif m.group(1) == url:
            problems.append(f"Related repeats the Upstream-Status url {url}")
    return problems


def regression_test_problems(
    patch: series.Patch, repo: str | os.PathLike[str] | None = None
) -> list[str]:
    """What is wrong with a patch's ``Regression-Test`` trailers (empty: none)."""
    tests = patch.regression_tests
    if not tests:
        return ["no Regression-Test trailer (test/registered/unit/.../test_*.py)"]
    problems = []
    for t in tests:
        if not REGRESSION_TEST.match(t):
            problems.append(
                f"Regression-Test is not test/registered/.../test_*.py: {t!r}"
            )
        elif not series.regression_test_file(t, repo).is_file():
            problems.append(
                f"Regression-Test {t}: no {series.regression_test_file(t, repo)}"
            )
    return problems


def format_problems(patch: series.Patch) -> list[str]:
    """Where the file is not ``git format-patch --zero-commit --full-index`` output."""
    problems = []
    if not patch.path.read_text(encoding="utf-8").startswith(ZERO_FROM):
        problems.append("does not start with the zero commit's 'From 000...' line")
    if patch.preimages.keys() != set(patch.files):
        missing = sorted(set(patch.files) - patch.preimages.keys())
        problems.append(f"no index line (pre-image blob) for {', '.join(missing)}")
    for f, blob in patch.preimages.items():
        if not re.fullmatch(r"[0-9a-f]{40}", blob):
            problems.append(f"{f}: index line {blob!r} is not a full 40-digit blob")
    return problems


def series_problems(series_file: str | os.PathLike[str] = paths.SERIES) -> list[str]:
    """Where patches/series and the patch files beside it disagree."""
    listed = series.read_series(series_file)
    on_disk = sorted(p.name for p in Path(series_file).parent.glob("*.patch"))
    problems = []
    for name in sorted(set(listed) - set(on_disk)):
        problems.append(f"lists {name}, which is not in patches/")
    for name in sorted(set(on_disk) - set(listed)):
        problems.append(f"does not list {name}")
    for name in sorted({n for n in listed if listed.count(n) > 1}):
        problems.append(f"lists {name} more than once")
    if listed != sorted(listed):
        problems.append("is not in the order of the patch numbers")
    return problems


def patch_problems(patch: series.Patch, own_prs: list[str] | None = None) -> list[str]:
    """Everything wrong with one patch: format, header, Regression-Test trailers
    (required for our own patches, checked for every patch that has them)."""
    found = format_problems(patch) + header_problems(patch, own_prs)
    word = series.status_word(patch)
    if patch.regression_tests or (patch.is_ours and word in ("Pending", "Submitted")):
        found += regression_test_problems(patch)
    return found


def problems(series_file: str | os.PathLike[str] = paths.SERIES) -> list[Finding]:
    """Every finding of the lint (empty: the series is clean)."""
    found = [Finding("patches/series", p) for p in series_problems(series_file)]
    folder = Path(series_file).parent
    patches = []
    own = series.own_upstream_prs()
    for name in series.read_series(series_file):
        if not (folder / name).is_file():
            continue  # reported above
        try:
            patch = series.parse_patch(folder / name)
        except ValueError as e:
            found.append(Finding(name, str(e)))
            continue
        patches.append(patch)
        found += [Finding(name, p) for p in patch_problems(patch, own)]
    if Path(series_file).resolve() == paths.SERIES.resolve():
        # the generated docs are the checkout's, derived from its own series
        found += [Finding("docs", p) for p in docs.problems(patches)]
    return found


def run(args: argparse.Namespace) -> int:
    found = problems()
    for f in found:
        print(f)
    if not found:
        print(f"series clean: {len(series.read_series())} patches")
    return 1 if found else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "lint",
        help="check the series: headers, Regression-Test trailers, series/files, "
        "generated docs",
        description=__doc__,
    )
    p.set_defaults(func=run)
