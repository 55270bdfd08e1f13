"""status: where each patch of the series stands upstream and in a given SGLang tree.

For each patch: its title, upstream PR(s) and Upstream-Status (from the patch
header), and whether TREE already contains it ("contains": the patch
reverse-applies cleanly), needs it ("needs": it applies) or "conflicts", as
as the apply engine's check mode reports it (in-process). TREE is a git checkout
(python/sglang/...) or a directory holding ``sglang/`` (site-packages, an
unpacked wheel); default: the pinned base, unpacked from the pinned wheel.

Exit codes: 0 every patch is contained or applies; 1 a patch conflicts;
2 usage; 3 TREE is not an SGLang tree; 5 the pinned wheel could not be fetched.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sglang_mimo import series, tables, trees

WORDS = {"applies": "needs", "already applied": "contains", "conflicts": "conflicts"}


def collect(
    tree: str | Path | None = None, series_file: str | Path | None = None
) -> tuple[str, str | None, list[dict[str, Any]]]:
    """(tree, version, rows): one dict per patch of the series."""
    tree = tree or trees.pinned_tree()
    kwargs = {"series_file": series_file} if series_file else {}
    patches = series.load_series(**kwargs)
    states = trees.check(tree, series_file=series_file)
    by_name = {s.name: s for s in states}
    rows = []
    for p in patches:
        state = by_name.get(p.name)
        if state is None:
            raise trees.ToolError(f"the apply engine did not report {p.name}")
        rows.append(
            {
                "patch": p.name,
                "title": p.subject,
                "upstream_prs": p.upstream_prs,
                "upstream_status": p.trailer("Upstream-Status"),
                "tree": WORDS.get(state.status, state.status),
                "detail": state.detail,
            }
        )
    return str(tree), trees.tree_version(tree), rows


def render_table(rows: list[dict[str, Any]]) -> str:
    return tables.render(
        ["patch", "title", "upstream PR", "Upstream-Status", "in this tree"],
        [
            [
                r["patch"][:4],
                r["title"],
                ", ".join(f"#{n}" for n in r["upstream_prs"]) or "-",
                r["upstream_status"],
                r["tree"] + (f" ({r['detail']})" if r["detail"] else ""),
            ]
            for r in rows
        ],
    )


def run(args: argparse.Namespace) -> int:
    tree, version, rows = collect(args.tree)
    if args.json:
        print(json.dumps({"tree": tree, "version": version, "patches": rows}, indent=1))
    else:
        print(f"SGLang tree: {tree} (sglang {version or 'of unknown version'})\n")
        print(render_table(rows))
    return 1 if any(r["tree"] == "conflicts" for r in rows) else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        help="per patch: upstream PR and status, and whether a tree contains it",
        description=__doc__,
    )
    p.add_argument("tree", nargs="?", help="SGLang tree (default: the pinned base)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
