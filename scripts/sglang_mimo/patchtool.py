"""git apply or GNU patch, and the series run through one of them in a scratch tree.

``Tool`` runs one patch (``fits``, ``apply``, ``conflict``: which hunk of which
file does not apply); ``run_series`` runs the whole series and says per patch
whether it applies, is already applied, conflicts (or, reversing: reverses, is
not applied). Only ``engine`` uses them, on copies of a tree's files.

Standard library only: ``scripts/apply_patches.sh`` imports it under ``python3 -I -S``.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sglang_mimo import diffs, gitutil
from sglang_mimo.errors import ToolError

# What run_series says of a patch.
APPLIES, ALREADY, CONFLICTS = "applies", "already applied", "conflicts"
REVERSES, NOT_APPLIED = "reverses", "not applied"
OFFSET = re.compile(r"(offset -?[0-9]+ lines?|with fuzz [0-9]+)")


@dataclass(frozen=True)
class PatchState:
    name: str
    status: str  # applies | already applied | conflicts | reverses | not applied
    detail: str = ""

    def line(self) -> str:
        """The script's report line: ``NAME: STATUS[: DETAIL]``."""
        return f"{self.name}: {self.status}" + (
            f": {self.detail}" if self.detail else ""
        )


class Tool:
    """git apply or GNU patch, run in a scratch tree."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def choose(cls, name: str | None = None) -> Tool:
        name = (
            name
            or os.environ.get("APPLY_PATCHES_TOOL")
            or ("git" if shutil.which("git") else "patch")
        )
        if name not in ("git", "patch"):
            raise ToolError("APPLY_PATCHES_TOOL must be git or patch", 2)
        if not shutil.which(name):
            raise ToolError(f"{name} is not installed", 2)
        return cls(name)

    def _args(
        self, patch: str, check: bool, verbose: bool, extra: tuple[str, ...]
    ) -> list[str]:
        if self.name == "git":
            return ["git", "apply", *(["--check"] if check else []),
                    *(["-v"] if verbose else []), *extra, patch]  # fmt: skip
        args = ["patch", "-p1", "--fuzz=0", "--force"]
        if check:
            args += ["--dry-run"] + ([] if verbose else ["--silent"])
        else:
            args.append("--no-backup-if-mismatch")
        return args + list(extra) + ["-i", patch]

    def fits(self, where: Path, patch: str, *extra: str) -> bool:
        """Would ``patch`` apply in ``where``?"""
        return gitutil.run(self._args(patch, True, False, extra), cwd=where)[0] == 0

    def apply(self, where: Path, patch: str, *extra: str) -> tuple[int, str]:
        """Apply it; return (returncode, the tool's output)."""
        return gitutil.run(
            self._args(patch, False, self.name == "git", extra), cwd=where
        )

    def conflict(self, where: Path, patch: str, *extra: str) -> str:
        """Why it does not apply: "FILE hunk #N (@@ ... @@)" for each failing hunk."""
        out = gitutil.run(self._args(patch, True, True, extra), cwd=where)[1]
        hunks = {f.old: f.hunks for f in diffs.read(patch)}
        found = []
        if self.name == "git":
            for m in re.finditer(r"patch failed: (\S+):(\d+)", out):
                f, start = m.group(1), int(m.group(2))
                hs = hunks.get(f, [])
                n = next((i for i, h in enumerate(hs, 1) if h.old_start == start), None)
                found.append(
                    f"{f} hunk #{n} {hs[n - 1].header}" if n else f"{f} at line {start}"
                )
            for m in re.finditer(
                r"error: (\S+): (No such file or directory|does not exist in index|"
                r"already exists in working directory)",
                out,
            ):
                found.append(f"{m.group(1)}: {m.group(2)}")
        else:
            cur = None
            for line in out.splitlines():
                fm = re.match(r"(?:patching|checking) file (\S+)", line)
                if fm:
                    cur = fm.group(1)
                hm = re.match(r"Hunk #(\d+) FAILED", line)
                if hm and cur:
                    n, hs = int(hm.group(1)), hunks.get(cur, [])
                    found.append(
                        f"{cur} hunk #{n} {hs[n - 1].header if n <= len(hs) else ''}".rstrip()
                    )
                if re.search(r"can't find file to patch|No such file", line) and cur:
                    found.append(f"{cur}: no such file")
        if not out.strip():
            return "does not apply"
        return "; ".join(dict.fromkeys(found)) or out.strip().splitlines()[-1]


def run_series(
    where: Path,
    names: list[str],
    patchdir: Path,
    tool: Tool,
    mode: str = "apply",
    reject: bool = False,
) -> list[PatchState]:
    """Run the series in the scratch tree ``where``: one PatchState per patch.

    Forward: first peel off, last to first, every patch that is already there,
    so that stacked patches on one file are recognised; then apply all in
    order. ``mode="reverse"``: leave the tree without the series and report
    each patch as "reverses", "not applied" or "conflicts" (last first).
    """
    where = Path(where)
    path = {n: str(Path(patchdir) / n) for n in names}
    if tool.name == "git" and not (where / ".git").is_dir():
        gitutil.git_rc(where, "init", "-q")
    present = set()
    for name in reversed(names):
        if tool.fits(where, path[name], "--reverse"):
            tool.apply(where, path[name], "--reverse")
            present.add(name)
    if mode == "reverse":
        # A patch that is not there must at least apply where the series would put it.
        fwd = Path(str(where) + ".fwd")
        shutil.copytree(where, fwd, symlinks=True)
        fits, why = set(), {}
        for name in names:
            if tool.fits(fwd, path[name]):
                tool.apply(fwd, path[name])
                fits.add(name)
            else:
                why[name] = tool.conflict(fwd, path[name])
        shutil.rmtree(fwd)
        return [
            PatchState(name, REVERSES) if name in present
            else PatchState(name, NOT_APPLIED) if name in fits
            else PatchState(name, CONFLICTS, why[name])
            for name in reversed(names)
        ]  # fmt: skip
    report = []
    for name in names:
        if tool.fits(where, path[name]):
            out = tool.apply(where, path[name])[1]
            off = ",".join(sorted(set(OFFSET.findall(out))))
            report.append(
                PatchState(name, ALREADY) if name in present
                else PatchState(name, APPLIES, f"({off})" if off else "")
            )  # fmt: skip
        else:
            report.append(PatchState(name, CONFLICTS, tool.conflict(where, path[name])))
            if reject:  # keep the hunks that fit, the others go to FILE.rej
                tool.apply(where, path[name], "--reject")
    return report
