"""rebase: try the series on another SGLang release, and with --write move onto it.

Downloads the release's wheels with pip (the keys of patches/pin.json "wheels";
cached under build/wheels/, sha256 recorded), unpacks this machine's wheel into
build/rebase/sglang-VERSION as a checkout-layout git repository tagged
vVERSION, and runs the apply engine's check there (``--check --force``). Per
patch: "applies" (maybe with an offset), "already upstream" (it reverse-applies:
drop it) or "conflicts". Conflicting hunks are then left as FILE.rej in that
tree (the engine's ``--reject``). ``scripts/dev audit`` runs on the new base.

--write (only when nothing conflicts): regenerate every carried patch with
``git format-patch`` from the engine's ``--commit`` in that repository
(fresh offsets and index lines), drop the patches already upstream (series,
file, and a CHANGELOG "Dropped" entry), move patches/pin.json (version, tag,
distribution VERSION-mimo.1, wheels with their sha256) and the files that
repeat the version (tests/requirements.txt, pyproject.toml), and regenerate the
CHANGELOG list and README table.

Exit codes: 0 the series applies (or is upstream) and the audit finds no gap;
1 a patch conflicts (.rej files left; nothing written); 2 usage; 4 the audit
found a gap on the new base; 5 a wheel could not be downloaded.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sglang_mimo import audit, changelog, docs, paths, series, tables, trees

OUTCOME = {
    "applies": "applies",
    "already applied": "already upstream",
    "conflicts": "conflicts",
}
FORMAT_PATCH = ["format-patch", "-1", "-N", "--full-index", "--zero-commit"]
FORMAT_PATCH += ["--no-signature", "--stdout"]


def work_tree(version: str, wheel: Path) -> Path:
    """build/rebase/sglang-VERSION: ``wheel`` as a checkout tagged vVERSION, nothing else.

    A tree made from the same wheel before is reset to its tag (commits, changes
    and .rej files of the last run dropped) instead of being unpacked again.
    """
    dest = trees.BUILD / "rebase" / f"sglang-{version}"
    first = f"SGLang {version}, unpacked from {Path(wheel).name}"
    if (dest / ".git").is_dir() and trees.git(
        dest, "log", "-1", "--format=%s", f"v{version}", check=False
    ).strip() == first:
        trees.git(dest, "am", "--abort", check=False)
        trees.git(dest, "reset", "-q", "--hard", f"v{version}")
        trees.git(dest, "clean", "-q", "-f", "-d", "-x")
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tree.", dir=dest.parent))
    trees.make_checkout(wheel, tmp, version)
    tmp.rename(dest)
    return dest


def try_series(version: str) -> dict[str, Any]:
    """Fetch, unpack and check: a dict with wheels, tree, rows and audit findings."""
    wheels = trees.fetch_release_wheels(version)
    pin = paths.load_pin()
    if version == pin["version"]:
        for k, (path, digest) in wheels.items():
            if digest != pin["wheels"][k]["sha256"]:
                raise trees.ToolError(
                    f"sha256 of {path.name} is {digest}, the pin says "
                    f"{pin['wheels'][k]['sha256']}",
                    5,
                )
    key = trees.local_wheel_key()
    tree = work_tree(version, wheels[key][0])
    states = trees.check(tree)
    by_name = {s.name: s for s in states}
    rows: list[dict[str, Any]] = []
    for p in series.load_series():
        s = by_name[p.name]
        rows.append(
            {
                "patch": p.name,
                "outcome": OUTCOME[s.status],
                "detail": s.detail,
                "rej": [],
            }
        )
    findings = audit.audit(tree)[0]  # on the release itself, before any .rej
    conflicts = [r for r in rows if r["outcome"] == "conflicts"]
    if conflicts:
        trees.apply(tree, trees.Options(reject=True, force=True))
        rejs = sorted(
            p.relative_to(tree).as_posix() for p in (tree / "python").rglob("*.rej")
        )
        seen: dict[str, list[str]] = {}  # conflicting patches so far: name -> files
        for r in conflicts:
            files = [f for f in series.parse_patch(paths.PATCHES / r["patch"]).files]
            r["rej"] = [j for j in rejs if j[: -len(".rej")] in files]
            below = [n for n, fs in seen.items() if set(fs) & set(files)]
            if not r["rej"] and below:
                # Its hunks all fit once the earlier patch's did (--reject keeps
                # those): it conflicts only through that patch.
                r["stacked_on"] = below
                r["detail"] += f"; stacked on {', '.join(below)}, which conflicts"
            seen[r["patch"]] = files
    return {
        "version": version,
        "tree": str(tree),
        "wheels": {
            k: {"filename": p.name, "sha256": h} for k, (p, h) in wheels.items()
        },
        "patches": rows,
        "audit": [str(f) for f in findings],
    }


def refresh(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """--write: regenerate the carried patches, drop the upstreamed ones, move the pin."""
    version, tree = result["version"], Path(result["tree"])
    rows = result["patches"]
    carried = [r["patch"] for r in rows if r["outcome"] == "applies"]
    dropped = [r["patch"] for r in rows if r["outcome"] == "already upstream"]
    trees.apply(tree, trees.Options(commit=True, force=True))
    commits = trees.git(tree, "rev-list", "--reverse", f"v{version}..HEAD").split()
    if len(commits) != len(carried):
        raise trees.ToolError(
            f"{len(commits)} commits for {len(carried)} carried patches in {tree}"
        )
    for name, sha in zip(carried, commits):
        text = trees.git(tree, *FORMAT_PATCH, sha)
        (paths.PATCHES / name).write_text(text, encoding="utf-8")
    old = {p.name: p for p in series.load_series()}
    lines = paths.SERIES.read_text(encoding="utf-8").splitlines(keepends=True)
    paths.SERIES.write_text(
        "".join(ln for ln in lines if ln.split("#", 1)[0].strip() not in dropped),
        encoding="utf-8",
    )
    for name in dropped:
        (paths.PATCHES / name).unlink()

    pin = paths.load_pin()
    if pin["version"] != version:
        pin.update(
            version=version,
            tag=f"v{version}",
            distribution=f"{version}-mimo.1",
            wheels=result["wheels"],
        )
        paths.PIN_FILE.write_text(json.dumps(pin, indent=2) + "\n", encoding="utf-8")
        req = paths.REPO / "tests" / "requirements.txt"
        if req.exists():
            req.write_text(
                re.sub(
                    r"^sglang==\S+$", f"sglang=={version}", req.read_text(), flags=re.M
                )
            )
        pyproject = paths.REPO / "pyproject.toml"
        if pyproject.exists():
            pyproject.write_text(
                re.sub(
                    r'^version = "[^"+]+\+mimo\.\d+"$',
                    f'version = "{version}+mimo.1"',
                    pyproject.read_text(),
                    flags=re.M,
                )
            )
    text = changelog.ensure_release_section(
        changelog.CHANGELOG.read_text(encoding="utf-8"), pin
    )
    for name in dropped:
        text = changelog.add_dropped(
            text, pin["distribution"], changelog.dropped_entry(old[name], version)
        )
    changelog.CHANGELOG.write_text(changelog.render(text, pin=pin), encoding="utf-8")
    for path, text in docs.rendered().items():
        path.write_text(text, encoding="utf-8")
    return carried, dropped


def render(result: dict[str, Any]) -> str:
    out = [f"SGLang {result['version']}: series tried in {result['tree']}", ""]
    wheels = [[k, w["filename"], w["sha256"]] for k, w in result["wheels"].items()]
    out += [tables.render(["wheel", "file", "sha256"], wheels), ""]
    rows = []
    for r in result["patches"]:
        detail = r["detail"]
        if r["outcome"] == "already upstream":
            detail = "drop it (CHANGELOG: Dropped)"
        if r["rej"]:
            detail += f"; rejected hunks: {', '.join(r['rej'])}"
        rows.append([r["patch"], r["outcome"], detail])
    out += [tables.render(["patch", "outcome", "detail"], rows), ""]
    out += result["audit"] or ["audit: no gap on this base"]
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    result = try_series(args.version)
    conflicts = any(r["outcome"] == "conflicts" for r in result["patches"])
    code = 1 if conflicts else (4 if result["audit"] else 0)
    if args.write and code == 0:
        carried, dropped = refresh(result)
        result["written"] = {"refreshed": carried, "dropped": dropped}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(render(result))
        if args.write and code:
            print("\nnothing written: resolve the conflicts (or audit gaps) first")
        elif args.write:
            w = result["written"]
            print(
                f"\nwritten: {len(w['refreshed'])} patches refreshed, "
                f"{len(w['dropped'])} dropped; pin at {args.version}"
            )
    return code


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rebase",
        help="try the series on another SGLang release (--write: move onto it)",
        description=__doc__,
    )
    p.add_argument("version", help="an SGLang release on PyPI, e.g. 0.5.22")
    p.add_argument("--write", action="store_true", help="refresh patches and pin")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
