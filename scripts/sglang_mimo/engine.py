"""The one implementation of apply / check / reverse / commit of the series.

``apply_series(tree, Options(...))`` works on an SGLang tree of either layout (a
git checkout, python/sglang/...; or a directory holding ``sglang/``) and returns
an ``Outcome``: one ``PatchState`` per patch and the exit code. It prints
nothing; ``scripts/apply_patches.sh`` (``sglang_mimo.apply``) prints what it
returns, and ``trees``, ``status``, ``rebase``, ``export-pr`` and the tests call
it in-process. The whole series is run on a scratch copy of the files it touches
first (``patchtool``): a failure leaves the tree byte for byte as it was.

Standard library only: ``scripts/apply_patches.sh`` imports it under ``python3 -I -S``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sglang_mimo import diffs, gitutil, paths, series
from sglang_mimo.errors import Log, ToolError
from sglang_mimo.patchtool import (  # noqa: F401  (PatchState: part of this API)
    ALREADY,
    APPLIES,
    CONFLICTS,
    REVERSES,
    PatchState,
    Tool,
    run_series,
)

MODES = ("apply", "check", "reverse")


@dataclass(frozen=True)
class Options:
    """What to do to a tree (the options of ``scripts/apply_patches.sh DIR``)."""

    mode: str = "apply"  # apply | check | reverse
    commit: bool = False  # git checkouts: one commit per patch (git am)
    force: bool = False  # another sglang version; uncommitted changes in touched files
    reject: bool = False  # apply what fits, leave FILE.rej (not atomic; apply only)
    series: Path | None = None  # the series file (default: patches/series)
    tool: str | None = None  # git | patch (default: $APPLY_PATCHES_TOOL, else git)


@dataclass
class Outcome:
    tree: Path
    states: list[PatchState]
    code: int  # 0, or 1: a patch conflicts (--reject: a hunk was rejected)
    summary: str = ""  # the closing message ("series applied to TREE", ...)

    def state(self, name: str) -> PatchState:
        return next(s for s in self.states if s.name == name)


class ApplyError(ToolError):
    """A refusal after the series was tried: ``states`` is the report so far."""

    def __init__(
        self, message: str, code: int = 1, states: list[PatchState] | None = None
    ):
        super().__init__(message, code)
        self.states = states or []


def series_names(series_file: Path | None = None) -> list[str]:
    """The series' patch names; each must exist beside the series file (else ToolError 2)."""
    series_file = Path(series_file or paths.SERIES)
    if not series_file.is_file():
        raise ToolError(f"series file not found: {series_file}", 2)
    names = series.read_series(series_file)
    for name in names:
        if not (series_file.parent / name).is_file():
            raise ToolError(f"patches/series names {name}, which does not exist", 2)
    return names


def layout(tree: str | Path) -> tuple[str | None, str]:
    """("checkout", "") or ("package", "python/"): the layout and the prefix it drops."""
    tree = Path(tree)
    if (tree / "python" / "sglang" / "__init__.py").is_file():
        return "checkout", ""
    if (tree / "sglang" / "__init__.py").is_file():
        return "package", "python/"
    return None, ""


def tree_version(tree: str | Path) -> str | None:
    """The sglang version of a tree (either layout), from its dist-info or _version.py."""
    tree = Path(tree)
    pkg = tree / "python" if (tree / "python" / "sglang").is_dir() else tree
    for meta in sorted(pkg.glob("sglang-*.dist-info/METADATA")):
        for line in meta.read_text(encoding="utf-8").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    vf = pkg / "sglang" / "_version.py"
    if vf.exists():
        m = re.search(
            r"""^__version__ = version = ['"]([^'"]+)""", vf.read_text(), re.M
        )
        if m:
            return m.group(1)
    return None


def apply_series(
    tree: str | Path,
    options: Options = Options(),
    log: Log | None = None,
    pin: dict[str, Any] | None = None,
) -> Outcome:
    """Apply / check / reverse the series on ``tree`` as ``options`` say.

    Returns the Outcome (code 0, or 1 when a patch conflicts: then nothing was
    changed, except with ``reject``). Raises ToolError for a usage error (2), a
    tree that is not the pinned SGLang (3), and ApplyError (with the report) for
    a tree that is not safe to change (4). ``log`` gets warnings as they come.
    """
    if options.mode not in MODES:
        raise ToolError(f"mode must be one of {', '.join(MODES)}", 2)
    names = series_names(options.series)
    patchdir = Path(os.path.abspath(options.series or paths.SERIES)).parent
    tool = Tool.choose(options.tool)
    pin = pin or paths.load_pin()
    if not os.path.isdir(tree):
        raise ToolError(f"{tree}: no such directory", 3)
    top = Path(os.path.abspath(tree))
    kind, prefix = layout(top)
    if kind is None:
        raise ToolError(
            f"{top} holds no sglang package (expected {top}/python/sglang or {top}/sglang)",
            3,
        )
    is_git = (
        kind == "checkout" and shutil.which("git") is not None and gitutil.is_top(top)
    )
    if options.commit and not is_git:
        raise ToolError(f"--commit needs a git checkout; {top} is not one", 2)
    if options.commit and options.mode == "reverse":
        raise ToolError("--reverse --commit is not supported: use git revert", 2)
    if options.reject and (options.mode != "apply" or options.commit):
        raise ToolError("--reject only applies (no --check, --reverse or --commit)", 2)

    version = tree_version(top)
    if not version and is_git:
        rc, out = gitutil.git_rc(top, "describe", "--tags", "--abbrev=0")
        version = out.strip().removeprefix("v") if rc == 0 else ""
    if version != pin["version"]:
        shown = version or "of unknown version"
        if not options.force:
            raise ToolError(
                f"{top} has sglang {shown}, the series is for {pin['version']} "
                "(use --force to try anyway)",
                3,
            )
        if log:
            log(f"warning: sglang {shown}, not {pin['version']} (--force)")
    with tempfile.TemporaryDirectory() as scratch:
        run = _Run(top, prefix, Path(scratch), names, patchdir, tool, options, is_git)
        return run.go()


@dataclass
class _Run:
    """One run of the series on ``top``, through a scratch copy of the files it touches."""

    top: Path
    prefix: str  # what the tree's layout drops from a checkout-layout path
    scratch: Path
    names: list[str]
    patchdir: Path
    tool: Tool
    opts: Options
    is_git: bool
    files: list[str] = field(default_factory=list)  # every file the series touches
    report: list[PatchState] = field(default_factory=list)

    def target(self, f: str) -> Path:
        return self.top / (f[len(self.prefix) :] if f.startswith(self.prefix) else f)

    def go(self) -> Outcome:
        opts, top = self.opts, self.top
        work = self.scratch / "work"
        work.mkdir()
        self.files = sorted(
            {f for n in self.names for f in diffs.touched(self.patchdir / n)}
        )
        for f in self.files:
            if self.target(f).exists():
                (work / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.target(f), work / f)
        self.report = run_series(
            work, self.names, self.patchdir, self.tool, opts.mode, opts.reject
        )
        conflicts = any(s.status == CONFLICTS for s in self.report)
        changes = any(s.status in (APPLIES, REVERSES) for s in self.report)
        if conflicts and not opts.reject:
            return self.outcome(
                1,
                f"{top} is unchanged: the series does not apply (see 'conflicts' above)",
            )
        rejected = []
        if opts.reject:  # the .rej files are written back with everything else
            rejected = sorted(
                p.relative_to(work).as_posix()
                for p in work.rglob("*.rej")
                if p.is_file() and ".git" not in p.relative_to(work).parts
            )
            self.files += rejected
            changes |= bool(rejected)
        if opts.mode == "check":
            return self.outcome(0)
        if not changes:
            if opts.mode == "reverse":
                return self.outcome(
                    0, f"nothing to reverse: no patch of the series is applied in {top}"
                )
            return self.outcome(
                0, f"nothing to do: the series is already applied in {top}"
            )
        changed = [
            f for f in self.files if _content(work / f) != _content(self.target(f))
        ]
        self.check_safe(work, changed)
        if opts.commit:
            return self.commit()
        self.write_back(work, changed)
        if opts.reject and conflicts:
            shown = " ".join(str(self.target(f)) for f in rejected)
            return self.outcome(
                1, f"applied what fits to {top}; rejected hunks are in: {shown}"
            )
        return self.outcome(
            0,
            (
                f"series taken out of {top}"
                if opts.mode == "reverse"
                else f"series applied to {top}"
            ),
        )

    def outcome(self, code: int, summary: str = "") -> Outcome:
        return Outcome(self.top, self.report, code, summary)

    def refuse(self, message: str) -> ApplyError:
        return ApplyError(message, 4, self.report)

    def check_safe(self, work: Path, changed: list[str]) -> None:
        """Refuse (nothing touched yet) a dirty checkout or a file that cannot be written."""
        top = self.top
        if self.is_git and not self.opts.force and self.opts.commit:
            dirty = gitutil.git(
                top, "status", "--porcelain", "--untracked-files=no", check=False
            )
            if dirty.strip():
                first = " ".join(ln[3:] for ln in dirty.splitlines()[:3])
                raise self.refuse(
                    f"dirty checkout: {top} has uncommitted changes ({first}); "
                    "--commit needs a clean tree: commit or stash them"
                )
        elif self.is_git and not self.opts.force:
            # Uncommitted changes in touched files are refused, unless they are the
            # series itself: HEAD's file with the series applied (so that re-runs and
            # --reverse work), or with it taken out (HEAD has the series committed,
            # --reverse took it out: this run puts HEAD's file back).
            head, before = None, {}
            for f in changed:
                if gitutil.git_rc(top, "diff", "--quiet", "HEAD", "--", f)[0] == 0:
                    continue
                if head is None:
                    head = self.scratch / "head"
                    head.mkdir()
                    for g in self.files:
                        blob = gitutil.show(top, g)
                        if blob is not None:
                            (head / g).parent.mkdir(parents=True, exist_ok=True)
                            (head / g).write_bytes(blob)
                    before = {g: _content(head / g) for g in self.files}
                    run_series(
                        head,
                        self.names,
                        self.patchdir,
                        self.tool,
                        "apply",
                        self.opts.reject,
                    )
                now = _content(self.target(f))
                if now != _content(head / f) and _content(work / f) != before[f]:
                    raise self.refuse(
                        f"dirty checkout: {f} has uncommitted changes that are not "
                        "this series; commit or stash them (or --force)"
                    )
        for f in changed:
            t = self.target(f)
            if t.exists():
                if not (os.access(t, os.W_OK) and t.stat().st_mode & 0o222):
                    raise self.refuse(f"read-only file: {t}; nothing was changed")
            else:
                d = t.parent
                while not d.is_dir():
                    d = d.parent
                if not os.access(d, os.W_OK):
                    raise self.refuse(f"read-only directory: {d}; nothing was changed")

    def write_back(self, work: Path, changed: list[str]) -> None:
        """Write the scratch copy's files over the tree's, restoring all on any failure."""
        backup = {
            f: self.target(f).read_bytes() for f in changed if self.target(f).exists()
        }

        def restore() -> None:
            for f in changed:
                t = self.target(f)
                try:
                    if f in backup:
                        with open(t, "wb") as out:
                            out.write(backup[f])
                    elif t.exists():
                        t.unlink()
                except OSError:
                    pass

        for f in changed:
            t, w = self.target(f), work / f
            try:
                if w.exists():
                    t.parent.mkdir(parents=True, exist_ok=True)
                    # Writing in place keeps the target's inode, owner and mode.
                    with open(t, "wb") as out:
                        out.write(w.read_bytes())
                elif t.exists():
                    t.unlink()
            except OSError as e:
                restore()
                what = "write" if w.exists() else "remove"
                raise self.refuse(
                    f"could not {what} {t} ({e.strerror or e}); every file was restored"
                ) from e

    def commit(self) -> Outcome:
        """One ``git am`` per applying patch; on any failure reset to where it started."""
        top = self.top
        before = gitutil.git(top, "rev-parse", "HEAD", check=False).strip()
        ident = []
        if gitutil.git_rc(top, "config", "user.email")[0] != 0:
            ident = ["-c", "user.name=sglang-mimo apply_patches.sh"]
            ident += ["-c", "user.email=sglang-mimo@users.noreply.github.com"]
        for s in self.report:
            if s.status != APPLIES:
                continue
            rc, out = gitutil.git_rc(
                top, *ident, "am", "--quiet", "--keep-non-patch", self.patchdir / s.name
            )
            if rc != 0:
                gitutil.git_rc(top, "am", "--abort")
                gitutil.git_rc(top, "reset", "--quiet", "--hard", before)
                last = out.strip().splitlines()[-1] if out.strip() else ""
                raise self.refuse(
                    f"git am failed on {s.name} ({last}); {top} reset to {before}"
                )
        count = gitutil.git(
            top, "rev-list", "--count", f"{before}..HEAD", check=False
        ).strip()
        return self.outcome(0, f"committed the series in {top} ({count} new commits)")


def _content(path: Path) -> bytes | None:
    """A file's bytes, or None when it does not exist."""
    return path.read_bytes() if path.exists() else None
