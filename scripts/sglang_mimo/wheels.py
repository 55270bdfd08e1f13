"""The pinned SGLang wheel: download it (pip), check its sha256, unpack it.

- ``fetch_wheel`` / ``fetch_pinned``: sglang==VERSION's wheel for a key of
  ``patches/pin.json`` "wheels" (ARCH-cpXY), downloaded with pip when not cached,
  and refused (exit code 5) when its sha256 is not the pinned one;
- ``unpack_wheel``: the sglang package of a wheel in site-packages layout;
- ``make_checkout``: a wheel as a checkout-layout git repository (python/sglang/...),
  tagged; ``default_tree``: build/sglang-VERSION, the pinned one.

Standard library only: ``scripts/apply_patches.sh`` imports it under ``python3 -I -S``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sglang_mimo import gitutil
from sglang_mimo.errors import Log, ToolError, stderr_log

# Heavy binaries and CUDA sources: not needed to read, patch or import the Python.
SKIP_SUFFIXES = (".so", ".cu", ".cuh", ".h", ".cpp", ".hip")
Pin = dict[str, Any]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_filename(version: str, key: str) -> str:
    arch, py = key.split("-")
    return f"sglang-{version}-{py}-{py}-manylinux_2_34_{arch}.whl"


def machine_key() -> str:
    """This machine's wheel key: ARCH-cpXY."""
    return f"{os.uname().machine}-cp{sys.version_info[0]}{sys.version_info[1]}"


def wheel_key(pin: Pin, requested: str | None = None) -> str:
    """The pin's wheel key for ``requested``, or this machine's (else its arch's, else the first)."""
    keys: list[str] = list(pin["wheels"])
    if requested:
        if requested not in keys:
            raise ToolError(f"--wheel {requested}: pin.json has no such wheel", 2)
        return requested
    key = machine_key()
    if key in keys:
        return key
    # Same sources in every wheel; take the first one for this machine's arch.
    arch = key.split("-")[0]
    return ([k for k in keys if k.startswith(arch + "-")] or keys)[0]


def fetch_wheel(
    version: str,
    key: str,
    dest_dir: Path,
    sha: str | None = None,
    log: Log | None = None,
) -> Path:
    """sglang==version's wheel ``key`` in dest_dir, downloaded with pip when missing.

    With ``sha``, a cached file must match it and a download that does not is
    refused (ToolError 5) and not kept. Returns the wheel's path.
    """
    dest_dir = Path(dest_dir)
    name = wheel_filename(version, key)
    dest = dest_dir / name
    if dest.is_file() and (sha is None or sha256(dest) == sha):
        return dest
    arch, py = key.split("-")
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download.", dir=dest_dir))
    try:
        (log or stderr_log("sglang-mimo"))(f"downloading {name} from PyPI")
        rc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            + ["--only-binary=:all:", "--platform", f"manylinux_2_34_{arch}"]
            + ["--implementation", "cp", "--python-version", py[2:], "--abi", py]
            + ["-d", str(tmp), f"sglang=={version}"],
            stdout=2,  # pip's messages go to stderr; stdout is the wheel's path
        ).returncode
        got = tmp / name
        if rc != 0 or not got.is_file():
            raise ToolError(
                f"could not download {name} (sglang=={version}) with pip", 5
            )
        if sha is not None:
            digest = sha256(got)
            if digest != sha:
                raise ToolError(f"sha256 of {name} is {digest}, the pin says {sha}", 5)
        got.replace(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetch_pinned(
    pin: Pin,
    build: Path,
    key: str | None = None,
    dest: Path | None = None,
    log: Log | None = None,
) -> Path:
    """The pinned wheel (``key``, default this machine's), sha256-checked, in
    ``dest`` (default: BUILD/wheels)."""
    key = wheel_key(pin, key)
    where = Path(dest) if dest is not None else Path(build) / "wheels"
    return fetch_wheel(pin["version"], key, where, pin["wheels"][key]["sha256"], log)


def unpack_wheel(
    wheel: Path,
    dest: Path,
    skip_suffixes: Iterable[str] = SKIP_SUFFIXES,
    dist_info: bool = True,
    only: Callable[[str], bool] | None = None,
) -> Path:
    """Unpack the sglang package (and its dist-info) of a wheel into dest (site layout).

    ``only``: a predicate on the member's name; members it rejects are left out.
    """
    dest = Path(dest)
    skip = tuple(skip_suffixes)
    with zipfile.ZipFile(wheel) as z:
        for m in z.infolist():
            top = m.filename.split("/", 1)[0]
            if skip and m.filename.endswith(skip):
                continue
            if only is not None and not only(m.filename):
                continue
            if top == "sglang" or (
                dist_info and top.startswith("sglang-") and top.endswith(".dist-info")
            ):
                z.extract(m, dest)
    return dest


def make_checkout(
    wheel: Path,
    dest: Path,
    version: str,
    tag: str | None = None,
    skip_suffixes: Iterable[str] = SKIP_SUFFIXES,
    dist_info: bool = True,
) -> Path:
    """A checkout-layout git repository (python/sglang/...) of ``wheel``, tagged.

    With the dist-info (the default) it lands beside the package
    (python/sglang-*.dist-info), where ``engine.tree_version`` reads it.
    """
    dest = Path(dest)
    unpack_wheel(wheel, dest / "python", skip_suffixes, dist_info)
    message = f"SGLang {version}, unpacked from {Path(wheel).name}"
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["commit", "-q", "-m", message],
        ["tag", tag or f"v{version}"],
    ):
        rc, out = gitutil.git_rc(dest, *args, env=gitutil.IDENT)
        if rc != 0:
            raise ToolError(f"git {' '.join(args)} in {dest}: {out.strip()}", 2)
    return dest


def default_tree(
    pin: Pin, build: Path, key: str | None = None, log: Log | None = None
) -> Path:
    """BUILD/sglang-VERSION: the pinned wheel as a tagged checkout (made once)."""
    build = Path(build)
    tree = build / f"sglang-{pin['version']}"
    if not tree.is_dir():
        if not shutil.which("git"):
            raise ToolError("git is required to build the default tree", 2)
        wheel = fetch_pinned(pin, build, key, log=log)
        tmp = Path(tempfile.mkdtemp(prefix=".tree.", dir=build))
        try:
            make_checkout(
                wheel,
                tmp,
                pin["version"],
                pin["tag"],
                skip_suffixes=(),
                dist_info=False,
            )
        except ToolError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ToolError(f"could not create a git repository in {build}", 2) from e
        tmp.rename(tree)
    return tree
