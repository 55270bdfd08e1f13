"""SGLang trees the upstream tools work on, and the one way they call the apply script.

- ``run_apply`` / ``check``: run ``scripts/apply_patches.sh`` and parse its
  per-patch report (``NAME: applies|already applied|conflicts[: DETAIL]``).
- ``fetch_release_wheels``: an SGLang release's wheels, downloaded with pip
  (cached under build/wheels/) and hashed.
- ``unpack_wheel`` / ``make_checkout`` / ``tree_version``: from
  ``sglang_mimo.apply``, the one implementation behind the apply script.
"""

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sglang_mimo import apply, paths
from sglang_mimo.apply import (  # noqa: F401  (the tools reach them through trees)
    GIT_IDENT,
    SKIP_SUFFIXES,
    make_checkout,
    sha256,
    tree_version,
    unpack_wheel,
    wheel_filename,
)

BUILD = paths.BUILD
CHECK_LINE = re.compile(
    r"^(?P<name>\S+\.patch): (?P<status>applies|already applied|conflicts|"
    r"reverses|not applied)(?:: (?P<detail>.*))?$"
)
# A failure with the exit code the command should end with (message, code=1).
ToolError = apply.ApplyError


@dataclass
class PatchState:
    name: str
    status: str  # applies | already applied | conflicts (| reverses | not applied)
    detail: str = ""


def run_apply(*args, env=None):
    """Run scripts/apply_patches.sh with ``args``; return the CompletedProcess."""
    return subprocess.run(
        [str(paths.APPLY_SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        # The script's own default build/ is beside it: inside the package when installed.
        env={
            **os.environ,
            **({"SGLANG_MIMO_BUILD": str(BUILD)} if paths.INSTALLED else {}),
            **(env or {}),
        },
    )


def parse_report(stdout):
    """The per-patch lines of an apply_patches.sh report, as PatchState."""
    states = []
    for line in stdout.splitlines():
        m = CHECK_LINE.match(line.strip())
        if m:
            states.append(PatchState(m["name"], m["status"], m["detail"] or ""))
    return states


def check(tree, series_file=None, force=True):
    """``apply_patches.sh --check [--force] TREE``: (states, CompletedProcess).

    Exit 0 and 1 are reports (1: something conflicts); any other exit code is
    raised as ToolError with the script's message.
    """
    args = ["--check"]
    if force:
        args.append("--force")
    if series_file:
        args += ["--series", series_file]
    proc = run_apply(*args, tree)
    if proc.returncode not in (0, 1):
        raise ToolError(
            f"apply_patches.sh --check {tree} exited {proc.returncode}: "
            f"{proc.stderr.strip()}",
            proc.returncode,
        )
    return parse_report(proc.stdout), proc


def single_patch_series(patch_path, folder):
    """A series file in ``folder`` listing only ``patch_path`` (copied beside it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(patch_path, folder / Path(patch_path).name)
    series_file = folder / "series"
    series_file.write_text(Path(patch_path).name + "\n")
    return series_file


def wheel_keys():
    """The wheel keys the pin carries (x86_64-cp311, x86_64-cp312, aarch64-cp312)."""
    return list(paths.load_pin()["wheels"])


def local_wheel_key():
    """This machine's wheel key when the pin has one, else the pin's first key."""
    return apply.wheel_key(paths.load_pin())


def fetch_release_wheels(version, keys=None, dest=None):
    """Download sglang==version wheels with pip (cached): {key: (path, sha256)}."""
    dest = Path(dest or BUILD / "wheels")
    out = {}
    for key in keys or wheel_keys():
        wheel = apply.fetch_wheel(version, key, dest)
        out[key] = (wheel, sha256(wheel))
    return out


def git(repo, *args, check=True, env=None):
    proc = subprocess.run(
        ["git", "-C", str(repo), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise ToolError(f"git {' '.join(map(str, args))}: {proc.stderr.strip()}")
    return proc.stdout


def package_dir(tree):
    """The directory that holds ``sglang/`` in a tree of either layout."""
    tree = Path(tree)
    kind, _ = apply.layout(tree)
    if kind:
        return tree / "python" if kind == "checkout" else tree
    raise ToolError(f"{tree} holds no sglang package", 3)


def pinned_wheel():
    """The pinned wheel for this machine, downloaded and hash-checked."""
    return apply.fetch_pinned(paths.load_pin(), BUILD)


def pinned_tree():
    """A cached, unpacked pinned base (site-packages layout) under build/."""
    pin = paths.load_pin()
    dest = BUILD / "base" / f"sglang-{pin['version']}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    # One process unpacks it; another one (a second test worker, a second command)
    # waits here instead of finding it half replaced.
    with open(dest.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (dest / "sglang" / "__init__.py").exists():
            wheel = pinned_wheel()
            tmp = Path(tempfile.mkdtemp(prefix=".base.", dir=BUILD))
            unpack_wheel(wheel, tmp)
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
    return dest
