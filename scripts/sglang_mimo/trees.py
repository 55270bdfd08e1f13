"""SGLang trees the upstream tools work on, and their calls of the apply engine.

- ``check``: ``engine.apply_series`` in check mode, in-process: the per-patch states;
- ``apply``: the engine with any Options, a conflict raised as ToolError;
- ``fetch_release_wheels``: an SGLang release's wheels, downloaded with pip
  (cached under build/wheels/) and hashed;
- ``pinned_wheel`` / ``pinned_tree``: the pinned wheel, and it unpacked under build/.

The wheel helpers (``unpack_wheel``, ``make_checkout``, ...) are ``sglang_mimo.wheels``'s,
the git helper ``sglang_mimo.gitutil``'s, reached through here by the tools.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from pathlib import Path

from sglang_mimo import engine, paths, wheels
from sglang_mimo.engine import Options, Outcome, tree_version
from sglang_mimo.errors import ToolError
from sglang_mimo.gitutil import IDENT as GIT_IDENT
from sglang_mimo.gitutil import git
from sglang_mimo.patchtool import PatchState
from sglang_mimo.wheels import (
    SKIP_SUFFIXES,
    make_checkout,
    sha256,
    unpack_wheel,
    wheel_filename,
)

# The names the tools reach through here: this module's own and those it re-exports.
__all__ = [
    "BUILD",
    "GIT_IDENT",
    "SKIP_SUFFIXES",
    "Options",
    "Outcome",
    "PatchState",
    "StrPath",
    "ToolError",
    "apply",
    "check",
    "fetch_release_wheels",
    "git",
    "local_wheel_key",
    "make_checkout",
    "package_dir",
    "pinned_tree",
    "pinned_wheel",
    "sha256",
    "single_patch_series",
    "tree_version",
    "unpack_wheel",
    "wheel_filename",
    "wheel_keys",
]

BUILD = paths.BUILD
StrPath = str | Path


def check(
    tree: StrPath, series_file: StrPath | None = None, force: bool = True
) -> list[PatchState]:
    """The per-patch states of ``apply_patches.sh --check [--force] TREE``.

    Whether something conflicts is in the states; anything else the engine
    refuses (not a tree, wrong version without ``force``) is raised as ToolError.
    """
    opts = Options(
        mode="check", force=force, series=Path(series_file) if series_file else None
    )
    return engine.apply_series(tree, opts).states


def apply(tree: StrPath, options: Options) -> Outcome:
    """The engine on ``tree`` as ``options`` say: its Outcome.

    A conflict (code 1) is raised as ToolError naming the patches, unless
    ``options.reject`` (then code 1 says hunks were left as .rej files).
    """
    out = engine.apply_series(tree, options)
    if out.code and not options.reject:
        bad = "; ".join(s.line() for s in out.states if s.status == "conflicts")
        raise ToolError(f"{tree}: {bad or out.summary}", out.code)
    return out


def single_patch_series(patch_path: StrPath, folder: StrPath) -> Path:
    """A series file in ``folder`` listing only ``patch_path`` (copied beside it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(patch_path, folder / Path(patch_path).name)
    series_file = folder / "series"
    series_file.write_text(Path(patch_path).name + "\n")
    return series_file


def wheel_keys() -> list[str]:
    """The wheel keys the pin carries (x86_64-cp311, x86_64-cp312, aarch64-cp312)."""
    return list(paths.load_pin()["wheels"])


def local_wheel_key() -> str:
    """This machine's wheel key when the pin has one, else the pin's first key."""
    return wheels.wheel_key(paths.load_pin())


def fetch_release_wheels(
    version: str, keys: list[str] | None = None, dest: Path | None = None
) -> dict[str, tuple[Path, str]]:
    """Download sglang==version wheels with pip (cached): {key: (path, sha256)}."""
    dest = Path(dest or BUILD / "wheels")
    out = {}
    for key in keys or wheel_keys():
        wheel = wheels.fetch_wheel(version, key, dest)
        out[key] = (wheel, sha256(wheel))
    return out


def package_dir(tree: StrPath) -> Path:
    """The directory that holds ``sglang/`` in a tree of either layout."""
    tree = Path(tree)
    kind, _ = engine.layout(tree)
    if kind:
        return tree / "python" if kind == "checkout" else tree
    raise ToolError(f"{tree} holds no sglang package", 3)


def pinned_wheel() -> Path:
    """The pinned wheel for this machine, downloaded and hash-checked."""
    return wheels.fetch_pinned(paths.load_pin(), BUILD)


def pinned_tree() -> Path:
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
