"""SGLang trees the upstream tools work on, and the one way they call the apply script.

- ``run_apply`` / ``check``: run ``scripts/apply_patches.sh`` and parse its
  per-patch report (``NAME: applies|already applied|conflicts[: DETAIL]``).
  Nothing here applies, checks or reverses a patch itself.
- ``fetch_release_wheels``: download an SGLang release's wheels with pip
  (cached under build/wheels/) and hash them.
- ``unpack_wheel`` / ``make_checkout``: a site-packages tree or a
  checkout-layout git repository (``python/sglang/...``, tagged ``v<version>``)
  built from a wheel.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sglang_mimo import paths

BUILD = paths.BUILD
# Heavy binaries and CUDA sources: not needed to read, patch or import the Python.
SKIP_SUFFIXES = (".so", ".cu", ".cuh", ".h", ".cpp", ".hip")
GIT_IDENT = {
    "GIT_AUTHOR_NAME": "sglang-mimo",
    "GIT_AUTHOR_EMAIL": "sglang-mimo@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "sglang-mimo",
    "GIT_COMMITTER_EMAIL": "sglang-mimo@users.noreply.github.com",
}
CHECK_LINE = re.compile(
    r"^(?P<name>\S+\.patch): (?P<status>applies|already applied|conflicts|"
    r"reverses|not applied)(?:: (?P<detail>.*))?$"
)


class ToolError(Exception):
    """A failure with the exit code the command should end with."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


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


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_filename(version, key):
    arch, py = key.split("-")
    return f"sglang-{version}-{py}-{py}-manylinux_2_34_{arch}.whl"


def wheel_keys():
    """The wheel keys the pin carries (x86_64-cp311, x86_64-cp312, aarch64-cp312)."""
    return list(paths.load_pin()["wheels"])


def local_wheel_key():
    """This machine's wheel key when the pin has one, else the pin's first key."""
    import platform

    key = f"{platform.machine()}-cp{sys.version_info[0]}{sys.version_info[1]}"
    keys = wheel_keys()
    if key in keys:
        return key
    same_arch = [k for k in keys if k.startswith(platform.machine() + "-")]
    return (same_arch or keys)[0]


def fetch_release_wheels(version, keys=None, dest=None):
    """Download sglang==version wheels with pip (cached): {key: (path, sha256)}."""
    dest = Path(dest or BUILD / "wheels")
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for key in keys or wheel_keys():
        arch, py = key.split("-")
        target = dest / wheel_filename(version, key)
        if not target.exists():
            tmp = Path(tempfile.mkdtemp(prefix=".download.", dir=dest))
            try:
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "download",
                        "--quiet",
                        "--no-deps",
                        "--only-binary=:all:",
                        "--platform",
                        f"manylinux_2_34_{arch}",
                        "--implementation",
                        "cp",
                        "--python-version",
                        py[2:],
                        "--abi",
                        py,
                        "-d",
                        str(tmp),
                        f"sglang=={version}",
                    ],
                    capture_output=True,
                    text=True,
                )
                got = tmp / target.name
                if proc.returncode != 0 or not got.exists():
                    raise ToolError(
                        f"could not download {target.name} (sglang=={version}) with "
                        f"pip: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}",
                        5,
                    )
                got.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        out[key] = (target, sha256(target))
    return out


def unpack_wheel(wheel, dest):
    """Unpack the sglang package and its dist-info (site-packages layout) into dest."""
    dest = Path(dest)
    with zipfile.ZipFile(wheel) as z:
        for m in z.infolist():
            top = m.filename.split("/", 1)[0]
            if m.filename.endswith(SKIP_SUFFIXES):
                continue
            if top == "sglang" or (
                top.startswith("sglang-") and top.endswith(".dist-info")
            ):
                z.extract(m, dest)
    return dest


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


def make_checkout(wheel, dest, version):
    """A checkout-layout git repository (python/sglang/...) of ``wheel``, tagged v<version>.

    The dist-info goes beside the package (python/sglang-*.dist-info), so that
    apply_patches.sh reads the version the same way as for an installed package.
    """
    dest = Path(dest)
    unpack_wheel(wheel, dest / "python")
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    message = f"SGLang {version}, unpacked from {Path(wheel).name}"
    git(dest, "commit", "-q", "-m", message, env=GIT_IDENT)
    git(dest, "tag", f"v{version}", env=GIT_IDENT)
    return dest


def tree_version(tree):
    """The sglang version of a tree (either layout), from its dist-info or _version.py."""
    tree = Path(tree)
    pkg = tree / "python" if (tree / "python" / "sglang").is_dir() else tree
    for meta in pkg.glob("sglang-*.dist-info/METADATA"):
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


def package_dir(tree):
    """The directory that holds ``sglang/`` in a tree of either layout."""
    tree = Path(tree)
    if (tree / "python" / "sglang" / "__init__.py").exists():
        return tree / "python"
    if (tree / "sglang" / "__init__.py").exists():
        return tree
    raise ToolError(f"{tree} holds no sglang package", 3)


def pinned_wheel():
    """The pinned wheel for this machine, downloaded and hash-checked by the apply script."""
    proc = run_apply("--fetch")
    if proc.returncode != 0:
        raise ToolError(proc.stderr.strip(), proc.returncode)
    return Path(proc.stdout.strip().splitlines()[-1])


def pinned_tree():
    """A cached, unpacked pinned base (site-packages layout) under build/."""
    pin = paths.load_pin()
    dest = BUILD / "base" / f"sglang-{pin['version']}"
    if not (dest / "sglang" / "__init__.py").exists():
        wheel = pinned_wheel()
        tmp = Path(tempfile.mkdtemp(prefix=".base.", dir=BUILD))
        unpack_wheel(wheel, tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest
