"""docs: regenerate what README.md and CHANGELOG.md derive from the patch headers.

The README's patch table (rendered here) and the CHANGELOG's list of carried
patches for the current release (rendered by sglang_mimo.changelog, its one
writer) sit between marker comments. ``--write`` rewrites the README table from
the headers and hands CHANGELOG.md to ``scripts/dev changelog --write``;
``--check`` exits 1 when either is stale.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from sglang_mimo import blocks, changelog, paths, series, tables

README = paths.REPO / "README.md"
TABLE = "patch-table"


def link(url: str) -> str:
    """``[#N](url)`` for an sglang issue or PR URL, ``[sha](url)`` for a commit, the
    URL itself otherwise."""
    m = re.search(r"/(?:pull|issues)/(\d+)$", url)
    if m:
        return f"[#{m.group(1)}]({url})"
    m = series.COMMIT_URL.match(url)
    return f"[{m.group(1)[:10]}]({url})" if m else url


def status_cell(patch: series.Patch) -> str:
    """'Pending', 'Backport of [#N](url) (open PR) by <author>' or 'Backport of
    [sha](url) by <author>' (upstream's fix: open PR or merged commit), 'Submitted as
    [#N](url)' (our own PR), 'Inappropriate: ...'."""
    word, url = series.status_word(patch), patch.status_url
    if word == "Backport" and url:
        open_pr = " (open PR)" if patch.backports_open_pr else ""
        return f"Backport of {link(url)}{open_pr} by {patch.author_name}"
    if word == "Submitted" and url:
        return f"Submitted as {link(url)}"
    if word == "Inappropriate":
        return f"Inappropriate: {linked_reason(patch)}"
    return word


def linked_reason(patch: series.Patch) -> str:
    """The ``[why]`` of ``Inappropriate [why]``, each ``#N`` it names linked to the
    URL the header gives for it (Related or Bug)."""
    urls = {u.rsplit("/", 1)[1]: u for u, _ in patch.related} | {
        u.rsplit("/", 1)[1]: u for u in patch.bugs
    }
    return re.sub(
        r"#(\d+)",
        lambda n: f"[#{n[1]}]({urls[n[1]]})" if n[1] in urls else n[0],
        series.inappropriate_reason(patch),
    )


def render_patch_table(patches: list[series.Patch]) -> str:
    """The README's patch table (Markdown), derived from the headers."""
    rows = []
    for p in patches:
        rows.append(
            [
                p.name.split("-", 1)[0],
                p.subject,
                status_cell(p),
                ", ".join(link(u) for u in p.bugs),
                ", ".join(f"{link(u)} ({why})" for u, why in p.related),
                p.trailer("Breaks-Without") or "",
            ]
        )
    header = [
        "#",
        "patch",
        "upstream status",
        "bug",
        "related upstream PRs",
        "what breaks without it",
    ]
    return tables.render(header, rows)


def rendered(patches: list[series.Patch] | None = None) -> dict[Path, str]:
    """{README: its text with the patch table regenerated}."""
    patches = series.load_series() if patches is None else patches
    text = README.read_text(encoding="utf-8")
    return {README: blocks.replace_block(text, TABLE, render_patch_table(patches))}


def stale(patches: list[series.Patch] | None = None) -> list[Path]:
    """The files whose generated blocks (rendered here) are not what the headers
    give."""
    return [p for p, t in rendered(patches).items() if p.read_text("utf-8") != t]


def problems(patches: list[series.Patch] | None = None) -> list[str]:
    """Everything generated from the headers that is stale: README.md's table and
    CHANGELOG.md's list (empty: all current)."""
    patches = series.load_series() if patches is None else patches
    out = [
        f"{p.relative_to(paths.REPO)} is stale: run `scripts/dev docs --write`"
        for p in stale(patches)
    ]
    return out + [f"CHANGELOG.md: {p}" for p in changelog.problems(patches=patches)]


def run(args: argparse.Namespace) -> int:
    if args.write:
        for p in stale():
            p.write_text(rendered()[p], encoding="utf-8")
            print(f"updated {p.relative_to(paths.REPO)}")
        return changelog.write()
    # What is stale is the check's report (stdout, like changelog's and audit's).
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "docs",
        help="regenerate the README patch table and (through changelog) the CHANGELOG list",
        description=__doc__,
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="rewrite the generated blocks")
    g.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a generated block is stale (default)",
    )
    p.set_defaults(func=run)
