"""The one reader of unified diffs (``git format-patch`` / ``git diff`` output).

Standard library only (``scripts/apply_patches.sh`` imports it under
``python3 -I -S``). Hunk bodies are consumed by their line counts, so a body line
that happens to read like a header is never taken for one; text before the first
``diff --git`` line (a commit message) is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DIFF_GIT = re.compile(r"^diff --git a/(\S+) b/(\S+)$")
HUNK = re.compile(r"^(@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@)")
INDEX = re.compile(r"^index ([0-9a-f]+)\.\.([0-9a-f]+)")


@dataclass(frozen=True)
class Hunk:
    old_start: int
    header: str  # "@@ -A,B +C,D @@", without the function context after it


@dataclass
class FileDiff:
    old: str  # the path on the a/ side (checkout layout)
    new: str  # the path on the b/ side
    old_blob: str | None = None  # the pre-image blob of the ``index`` line
    hunks: list[Hunk] = field(default_factory=list)


def parse(text: str) -> list[FileDiff]:
    """Every file of a diff, in order, with its hunks."""
    files: list[FileDiff] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = DIFF_GIT.match(line)
        if m:
            files.append(FileDiff(m.group(1), m.group(2)))
            continue
        if not files:
            continue
        m = INDEX.match(line)
        if m and not files[-1].hunks and files[-1].old_blob is None:
            files[-1].old_blob = m.group(1)
            continue
        m = HUNK.match(line)
        if m:
            files[-1].hunks.append(Hunk(int(m.group(2)), m.group(1)))
            old = int(m.group(3)) if m.group(3) is not None else 1
            new = int(m.group(5)) if m.group(5) is not None else 1
            # the body: context counts on both sides, '-' old only, '+' new only
            while (old > 0 or new > 0) and i < len(lines):
                body = lines[i]
                i += 1
                if body.startswith("\\"):  # "\ No newline at end of file"
                    continue
                tag = body[:1] or " "
                old -= tag in " -"
                new -= tag in " +"
    return files


def read(patch: str | Path) -> list[FileDiff]:
    """``parse`` of a patch file."""
    return parse(Path(patch).read_text(encoding="utf-8", errors="replace"))


def touched(patch: str | Path) -> list[str]:
    """The checkout-layout paths a patch touches (both sides of each file), sorted."""
    return sorted({p for f in read(patch) for p in (f.old, f.new)})
