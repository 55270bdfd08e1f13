"""The one implementation of fetch / unpack / apply / check / reverse / commit.

``scripts/apply_patches.sh`` runs this module (``python3 -m sglang_mimo.apply``);
``trees``, ``rebase``, ``export-pr``, the image build and the tests reach the
series only through that script or through the functions here. Standard library
only: it runs on a bare ``python3`` with git or GNU patch, nothing installed.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sglang_mimo import paths, series

USAGE = """\
Usage: scripts/apply_patches.sh [OPTIONS] [DIR]

Apply the sglang-mimo patch series onto the SGLang tree DIR:
  - a git checkout of SGLang (DIR/python/sglang exists), or
  - a directory holding the sglang package (DIR/sglang exists): a
    site-packages directory or an unpacked wheel.
Both layouts end up with the same files. The whole series is tried on a
scratch copy first: if any patch fails, DIR is left byte for byte as it was.
Patches already present are skipped, so a second run changes nothing.

Without DIR: download the pinned wheel (patches/pin.json) with pip, check its
sha256, unpack it into build/sglang-VERSION as a checkout-layout git
repository tagged with the pinned tag, apply the series there with one
commit per patch, and print the tree's path.

Options:
  --check        report each patch as "applies", "already applied" or
                 "conflicts" (with file and hunk); change nothing; exit 0 only
                 when every patch is applied or applies
  --reverse      take the series back out (last patch first)
  --commit       git checkouts only: one commit per patch, with the patch's own
                 message (git am --keep-non-patch)
  --force        accept a tree whose sglang version is not the pinned one, and
                 uncommitted changes in files the series touches
  --reject       for refreshing the series on another release only: apply every
                 hunk that fits, leave each one that does not as FILE.rej beside
                 its file, and exit 1 if any was rejected (not atomic; no
                 --check, --reverse or --commit)
  --series FILE  use another series file (patches are read beside it)
  --fetch        only download and verify the pinned wheel; print its path
  --wheel KEY    which pinned wheel to use (a key of "wheels" in pin.json, e.g.
                 aarch64-cp312); default: this machine's arch and python
  -h, --help     this text

Environment:
  APPLY_PATCHES_TOOL=git|patch   force the tool (default: git if present)
  SGLANG_MIMO_BUILD=DIR          where downloads and the default tree go
                                 (default: build/ in this repository)

Exit codes:
  0  done (or --check: the whole series is applied or applies cleanly)
  1  a patch does not apply (conflicts); nothing was changed
  2  usage error
  3  DIR is not an SGLang tree, or its sglang version is not the pinned one
  4  DIR is not safe to change (dirty checkout, read-only file, write error);
     nothing was changed
  5  download failed or the wheel's sha256 does not match the pin
"""

PROG = "apply_patches.sh"
# Heavy binaries and CUDA sources: not needed to read, patch or import the Python.
SKIP_SUFFIXES = (".so", ".cu", ".cuh", ".h", ".cpp", ".hip")
GIT_IDENT = {
    "GIT_AUTHOR_NAME": "sglang-mimo",
    "GIT_AUTHOR_EMAIL": "sglang-mimo@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "sglang-mimo",
    "GIT_COMMITTER_EMAIL": "sglang-mimo@users.noreply.github.com",
}


class ApplyError(Exception):
    """A failure with the exit code the script ends with."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def note(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _run(args, cwd=None, env=None):
    """Run a command; return (returncode, stdout and stderr together)."""
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout


def git(repo, *args, env=None):
    """``git -C repo ARGS``: (returncode, output)."""
    return _run(["git", "-C", repo, *args], env=env)


# --- the pinned wheel ------------------------------------------------------------


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_filename(version, key):
    arch, py = key.split("-")
    return f"sglang-{version}-{py}-{py}-manylinux_2_34_{arch}.whl"


def machine_key():
    """This machine's wheel key: ARCH-cpXY."""
    return f"{os.uname().machine}-cp{sys.version_info[0]}{sys.version_info[1]}"


def wheel_key(pin, requested=None):
    """The pin's wheel key for ``requested``, or this machine's (else its arch's, else the first)."""
    keys = list(pin["wheels"])
    if requested:
        if requested not in keys:
            raise ApplyError(f"--wheel {requested}: pin.json has no such wheel", 2)
        return requested
    key = machine_key()
    if key in keys:
        return key
    # Same sources in every wheel; take the first one for this machine's arch.
    arch = key.split("-")[0]
    return ([k for k in keys if k.startswith(arch + "-")] or keys)[0]


def fetch_wheel(version, key, dest_dir, sha=None):
    """sglang==version's wheel ``key`` in dest_dir, downloaded with pip when missing.

    With ``sha``, a cached file must match it and a download that does not is
    refused (ApplyError 5) and not kept. Returns the wheel's path.
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
        note(f"downloading {name} from PyPI")
        rc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
            + ["--only-binary=:all:", "--platform", f"manylinux_2_34_{arch}"]
            + ["--implementation", "cp", "--python-version", py[2:], "--abi", py]
            + ["-d", str(tmp), f"sglang=={version}"],
            stdout=2,  # pip's messages go to stderr; stdout is the wheel's path
        ).returncode
        got = tmp / name
        if rc != 0 or not got.is_file():
            raise ApplyError(
                f"could not download {name} (sglang=={version}) with pip", 5
            )
        if sha is not None:
            digest = sha256(got)
            if digest != sha:
                raise ApplyError(f"sha256 of {name} is {digest}, the pin says {sha}", 5)
        got.replace(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetch_pinned(pin, build, key=None):
    """The pinned wheel (``key``, default this machine's), sha256-checked."""
    key = wheel_key(pin, key)
    w = pin["wheels"][key]
    return fetch_wheel(pin["version"], key, Path(build) / "wheels", w["sha256"])


# --- unpacking -----------------------------------------------------------------------


def unpack_wheel(wheel, dest, skip_suffixes=SKIP_SUFFIXES, dist_info=True, only=None):
    """Unpack the sglang package (and its dist-info) of a wheel into dest (site layout).

    ``only``: a predicate on the member's name; members it rejects are left out.
    """
    dest = Path(dest)
    with zipfile.ZipFile(wheel) as z:
        for m in z.infolist():
            top = m.filename.split("/", 1)[0]
            if skip_suffixes and m.filename.endswith(tuple(skip_suffixes)):
                continue
            if only is not None and not only(m.filename):
                continue
            if top == "sglang" or (
                dist_info and top.startswith("sglang-") and top.endswith(".dist-info")
            ):
                z.extract(m, dest)
    return dest


def make_checkout(wheel, dest, version, tag=None, **unpack):
    """A checkout-layout git repository (python/sglang/...) of ``wheel``, tagged.

    ``unpack`` goes to unpack_wheel; with the dist-info (the default) it lands
    beside the package (python/sglang-*.dist-info), where tree_version reads it.
    """
    dest = Path(dest)
    unpack_wheel(wheel, dest / "python", **unpack)
    message = f"SGLang {version}, unpacked from {Path(wheel).name}"
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["commit", "-q", "-m", message],
        ["tag", tag or f"v{version}"],
    ):
        rc, out = git(dest, *args, env=GIT_IDENT)
        if rc != 0:
            raise ApplyError(f"git {' '.join(args)} in {dest}: {out.strip()}", 2)
    return dest


# --- trees --------------------------------------------------------------------------


def layout(tree):
    """("checkout", "") or ("package", "python/"): the layout and the prefix it drops."""
    tree = Path(tree)
    if (tree / "python" / "sglang" / "__init__.py").is_file():
        return "checkout", ""
    if (tree / "sglang" / "__init__.py").is_file():
        return "package", "python/"
    return None, None


def tree_version(tree):
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


def patch_files(patch):
    """The checkout-layout paths a patch touches (both sides of each diff --git line)."""
    text = Path(patch).read_text(encoding="utf-8", errors="replace")
    found = set()
    for a, b in re.findall(r"^diff --git a/(.*) b/(.*)$", text, re.M):
        found.update((a, b))
    return sorted(found)


# --- one patch, with git apply or GNU patch ----------------------------------------------


class Tool:
    """git apply or GNU patch, run in a scratch tree."""

    def __init__(self, name):
        self.name = name

    def _args(self, patch, check, verbose, extra):
        if self.name == "git":
            return (
                ["git", "apply"]
                + (["--check"] if check else [])
                + (["-v"] if verbose else [])
                + list(extra)
                + [patch]
            )
        args = ["patch", "-p1", "--fuzz=0", "--force"]
        if check:
            args.append("--dry-run")
            if not verbose:
                args.append("--silent")
        else:
            args.append("--no-backup-if-mismatch")
        return args + list(extra) + ["-i", patch]

    def fits(self, where, patch, *extra):
        """Would ``patch`` apply in ``where``?"""
        return _run(self._args(patch, True, False, extra), cwd=where)[0] == 0

    def apply(self, where, patch, *extra):
        """Apply it; return (returncode, the tool's output)."""
        return _run(self._args(patch, False, self.name == "git", extra), cwd=where)

    def conflict(self, where, patch, *extra):
        """Why it does not apply: "FILE hunk #N (@@ ... @@)" for each failing hunk."""
        out = _run(self._args(patch, True, True, extra), cwd=where)[1]
        hunks, cur = {}, None
        for line in (
            Path(patch).read_text(encoding="utf-8", errors="replace").split("\n")
        ):
            m = re.match(r"^diff --git a/(\S+) b/", line)
            if m:
                cur = m.group(1)
                hunks[cur] = []
            m = re.match(r"^(@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@)", line)
            if m and cur:
                hunks[cur].append((int(m.group(2)), m.group(1)))
        found = []
        if self.name == "git":
            for m in re.finditer(r"patch failed: (\S+):(\d+)", out):
                f, start = m.group(1), int(m.group(2))
                n = next(
                    (i for i, (s, _) in enumerate(hunks.get(f, []), 1) if s == start),
                    None,
                )
                found.append(
                    f"{f} hunk #{n} {hunks[f][n - 1][1]}"
                    if n
                    else f"{f} at line {start}"
                )
            for m in re.finditer(
                r"error: (\S+): (No such file or directory|does not exist in index|"
                r"already exists in working directory)",
                out,
            ):
                found.append(f"{m.group(1)}: {m.group(2)}")
        else:
            f = None
            for line in out.splitlines():
                m = re.match(r"(?:patching|checking) file (\S+)", line)
                if m:
                    f = m.group(1)
                m = re.match(r"Hunk #(\d+) FAILED", line)
                if m and f:
                    n, h = int(m.group(1)), hunks.get(f, [])
                    found.append(
                        f"{f} hunk #{n} {h[n - 1][1] if n <= len(h) else ''}".rstrip()
                    )
                if re.search(r"can't find file to patch|No such file", line) and f:
                    found.append(f"{f}: no such file")
        if not out.strip():
            return "does not apply"
        return "; ".join(dict.fromkeys(found)) or out.strip().splitlines()[-1]


OFFSET = re.compile(r"(offset -?[0-9]+ lines?|with fuzz [0-9]+)")


def run_series(where, names, patchdir, tool, mode="apply", reject=False):
    """Run the series in the scratch tree ``where``: [(name, status, detail)].

    Forward: first peel off, last to first, every patch that is already there,
    so that stacked patches on one file are recognised; then apply all in
    order. ``mode="reverse"``: leave the tree without the series and report
    each patch as "reverses", "not applied" or "conflicts" (last first).
    """
    where = Path(where)
    path = {n: str(Path(patchdir) / n) for n in names}
    if tool.name == "git" and not (where / ".git").is_dir():
        git(where, "init", "-q")
    present = set()
    for name in reversed(names):
        if tool.fits(where, path[name], "--reverse"):
            tool.apply(where, path[name], "--reverse")
            present.add(name)
    report = []
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
        for name in reversed(names):
            if name in present:
                report.append((name, "reverses", ""))
            elif name in fits:
                report.append((name, "not applied", ""))
            else:
                report.append((name, "conflicts", why[name]))
        return report
    for name in names:
        if tool.fits(where, path[name]):
            out = tool.apply(where, path[name])[1]
            if name in present:
                report.append((name, "already applied", ""))
            else:
                off = ",".join(sorted(set(OFFSET.findall(out))))
                report.append((name, "applies", f"({off})" if off else ""))
        else:
            report.append((name, "conflicts", tool.conflict(where, path[name])))
            # --reject: keep the hunks that fit, the others go to FILE.rej.
            if reject:
                tool.apply(where, path[name], "--reject")
    return report


# --- the command ----------------------------------------------------------------------


FLAGS = {
    "--check": ("mode", "check"),
    "--reverse": ("mode", "reverse"),
    "--fetch": ("mode", "fetch"),
    "--commit": ("commit", True),
    "--force": ("force", True),
    "--reject": ("reject", True),
}
# Options that take a value: (key, message when it is missing).
VALUED = {
    "--wheel": ("wheel", "--wheel needs a key of pin.json's wheels"),
    "--series": ("series", "--series needs a file"),
}


def parse_args(argv):
    """The script's options, read left to right as the shell script always did."""
    opts = dict(
        mode="apply",
        commit=False,
        force=False,
        reject=False,
        dir=None,
        series=None,
        wheel=None,
    )
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in FLAGS:
            key, value = FLAGS[a]
            opts[key] = value
        elif a in VALUED:
            key, missing = VALUED[a]
            if not args:
                raise ApplyError(missing, 2)
            opts[key] = args.pop(0)
        elif a in ("-h", "--help"):
            opts["mode"] = "help"
            return opts
        elif a.startswith("-"):
            raise ApplyError(f"unknown option: {a} (see --help)", 2)
        else:
            if opts["dir"] is not None:
                raise ApplyError("only one DIR may be given (see --help)", 2)
            opts["dir"] = a
    return opts


def choose_tool():
    name = os.environ.get("APPLY_PATCHES_TOOL") or (
        "git" if shutil.which("git") else "patch"
    )
    if name not in ("git", "patch"):
        raise ApplyError("APPLY_PATCHES_TOOL must be git or patch", 2)
    if not shutil.which(name):
        raise ApplyError(f"{name} is not installed", 2)
    return Tool(name)


def default_tree(pin, build, wheel_key_=None):
    """build/sglang-VERSION: the pinned wheel as a tagged checkout (made once)."""
    tree = Path(build) / f"sglang-{pin['version']}"
    if not tree.is_dir():
        if not shutil.which("git"):
            raise ApplyError("git is required to build the default tree", 2)
        wheel = fetch_pinned(pin, build, wheel_key_)
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
        except ApplyError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ApplyError(f"could not create a git repository in {build}", 2)
        tmp.rename(tree)
    return tree


def main(argv=None, repo=None):
    """The whole of scripts/apply_patches.sh; returns its exit code."""
    try:
        return _main(sys.argv[1:] if argv is None else argv, repo)
    except ApplyError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
        return e.code


def _main(argv, repo):
    repo = Path(repo or Path(__file__).resolve().parents[2])
    opts = parse_args(argv)
    if opts["mode"] == "help":
        sys.stdout.write(USAGE)
        return 0
    series_file = opts["series"] or str(repo / "patches" / "series")
    pin_file = repo / "patches" / "pin.json"
    build = Path(os.environ.get("SGLANG_MIMO_BUILD") or repo / "build")
    if not os.path.isfile(series_file):
        raise ApplyError(f"series file not found: {series_file}", 2)
    if not pin_file.is_file():
        raise ApplyError(f"pin file not found: {pin_file}", 2)
    patchdir = Path(os.path.abspath(os.path.dirname(series_file) or "."))
    tool = choose_tool()
    pin = paths.load_pin(pin_file)

    names = series.read_series(series_file)
    for name in names:
        if not (patchdir / name).is_file():
            raise ApplyError(f"patches/series names {name}, which does not exist", 2)

    if opts["mode"] == "fetch":
        print(fetch_pinned(pin, build, opts["wheel"]), flush=True)
        return 0

    if opts["dir"] is None:
        tree = default_tree(pin, build, opts["wheel"])
        code = run(
            tree,
            names,
            patchdir,
            tool,
            pin,
            mode=opts["mode"],
            commit=opts["mode"] == "apply",
            force=opts["force"],
        )
        if code:
            return code
        print(f"patched tree: {tree}", flush=True)
        return 0
    return run(
        opts["dir"],
        names,
        patchdir,
        tool,
        pin,
        mode=opts["mode"],
        commit=opts["commit"],
        force=opts["force"],
        reject=opts["reject"],
    )


def run(
    dir_,
    names,
    patchdir,
    tool,
    pin,
    mode="apply",
    commit=False,
    force=False,
    reject=False,
):
    """Apply / check / reverse the series ``names`` on the tree ``dir_``: the exit code."""
    if not os.path.isdir(dir_):
        raise ApplyError(f"{dir_}: no such directory", 3)
    top = Path(os.path.abspath(dir_))
    kind, prefix = layout(top)
    if kind is None:
        raise ApplyError(
            f"{top} holds no sglang package (expected {top}/python/sglang or {top}/sglang)",
            3,
        )

    def target(f):
        return top / (f[len(prefix) :] if f.startswith(prefix) else f)

    is_git = (
        kind == "checkout"
        and shutil.which("git") is not None
        and git(top, "rev-parse", "--show-toplevel")[1].strip() == str(top)
    )
    if commit and not is_git:
        raise ApplyError(f"--commit needs a git checkout; {top} is not one", 2)
    if commit and mode == "reverse":
        raise ApplyError("--reverse --commit is not supported: use git revert", 2)
    if reject and (mode != "apply" or commit):
        raise ApplyError("--reject only applies (no --check, --reverse or --commit)", 2)

    version = tree_version(top)
    if not version and is_git:
        rc, out = git(top, "describe", "--tags", "--abbrev=0")
        version = out.strip().removeprefix("v") if rc == 0 else ""
    if version != pin["version"]:
        shown = version or "of unknown version"
        if not force:
            raise ApplyError(
                f"{top} has sglang {shown}, the series is for {pin['version']} "
                "(use --force to try anyway)",
                3,
            )
        note(f"warning: sglang {shown}, not {pin['version']} (--force)")

    with tempfile.TemporaryDirectory() as scratch:
        return _apply(
            top,
            target,
            Path(scratch),
            names,
            patchdir,
            tool,
            mode,
            commit,
            force,
            reject,
            is_git,
        )


def _apply(
    top, target, scratch, names, patchdir, tool, mode, commit, force, reject, is_git
):
    work = scratch / "work"
    work.mkdir()
    allfiles = sorted({f for n in names for f in patch_files(patchdir / n)})
    for f in allfiles:
        t = target(f)
        if t.exists():
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(t, work / f)

    report = run_series(work, names, patchdir, tool, mode, reject)
    conflicts = changes = False
    for name, status, detail in report:
        print(f"{name}: {status}" + (f": {detail}" if detail else ""))
        conflicts |= status == "conflicts"
        changes |= status in ("applies", "reverses")
    sys.stdout.flush()

    if conflicts and not reject:
        note(f"{top} is unchanged: the series does not apply (see 'conflicts' above)")
        return 1
    rejected = []
    if reject:
        # The .rej files are written back with everything else.
        rejected = sorted(
            p.relative_to(work).as_posix()
            for p in work.rglob("*.rej")
            if p.is_file() and ".git" not in p.relative_to(work).parts
        )
        allfiles += rejected
        changes |= bool(rejected)
    if mode == "check":
        return 0
    if not changes:
        if mode == "reverse":
            note(f"nothing to reverse: no patch of the series is applied in {top}")
        else:
            note(f"nothing to do: the series is already applied in {top}")
        return 0

    # Files whose content the series changes.
    changed = []
    for f in allfiles:
        w, t = work / f, target(f)
        if w.exists() and t.exists():
            if w.read_bytes() != t.read_bytes():
                changed.append(f)
        elif w.exists() or t.exists():
            changed.append(f)

    # --- safety checks: nothing has been touched yet
    if is_git and not force:
        if commit:
            dirty = git(top, "status", "--porcelain", "--untracked-files=no")[1]
            if dirty.strip():
                first = " ".join(l[3:] for l in dirty.splitlines()[:3])
                raise ApplyError(
                    f"dirty checkout: {top} has uncommitted changes ({first}); "
                    "--commit needs a clean tree: commit or stash them",
                    4,
                )
        else:
            # Uncommitted changes in touched files are refused, unless they are
            # exactly the series applied on top of HEAD (so that --reverse and
            # re-runs work).
            head = None
            for f in changed:
                if git(top, "diff", "--quiet", "HEAD", "--", f)[0] == 0:
                    continue
                if head is None:
                    head = scratch / "head"
                    for g in allfiles:
                        _show(top, g, head / g)
                    run_series(head, names, patchdir, tool, "apply", reject)
                t = target(f)
                same = (head / f).exists() == t.exists() and (
                    not t.exists() or (head / f).read_bytes() == t.read_bytes()
                )
                if not same:
                    raise ApplyError(
                        f"dirty checkout: {f} has uncommitted changes that are not "
                        "this series; commit or stash them (or --force)",
                        4,
                    )
    for f in changed:
        t = target(f)
        if t.exists():
            if not (os.access(t, os.W_OK) and t.stat().st_mode & 0o222):
                raise ApplyError(f"read-only file: {t}; nothing was changed", 4)
        else:
            d = t.parent
            while not d.is_dir():
                d = d.parent
            if not os.access(d, os.W_OK):
                raise ApplyError(f"read-only directory: {d}; nothing was changed", 4)

    if commit:
        return _commit(top, report, patchdir)

    # --- write back, restoring everything on any failure
    backup = {}
    for f in changed:
        if target(f).exists():
            backup[f] = target(f).read_bytes()

    def restore():
        for f in changed:
            t = target(f)
            try:
                if f in backup:
                    with open(t, "wb") as out:
                        out.write(backup[f])
                elif t.exists():
                    t.unlink()
            except OSError:
                pass

    for f in changed:
        t, w = target(f), work / f
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
            raise ApplyError(
                f"could not {what} {t} ({e.strerror or e}); every file was restored", 4
            )
    if reject and conflicts:
        note(
            f"applied what fits to {top}; rejected hunks are in: "
            + " ".join(str(target(f)) for f in rejected)
        )
        return 1
    note(
        f"series taken out of {top}"
        if mode == "reverse"
        else f"series applied to {top}"
    )
    return 0


def _show(top, path, dest):
    """Write HEAD:path of the checkout ``top`` to dest (nothing when HEAD has none)."""
    proc = subprocess.run(
        ["git", "-C", str(top), "show", f"HEAD:{path}"], capture_output=True
    )
    if proc.returncode == 0:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(proc.stdout)


def _commit(top, report, patchdir):
    """One ``git am`` per applying patch; on any failure reset to where it started."""
    before = git(top, "rev-parse", "HEAD")[1].strip()
    ident = []
    if git(top, "config", "user.email")[0] != 0:
        ident = ["-c", "user.name=sglang-mimo apply_patches.sh"]
        ident += ["-c", "user.email=sglang-mimo@users.noreply.github.com"]
    for name, status, _ in report:
        if status != "applies":
            continue
        rc, out = git(top, *ident, "am", "--quiet", "--keep-non-patch", patchdir / name)
        if rc != 0:
            git(top, "am", "--abort")
            git(top, "reset", "--quiet", "--hard", before)
            last = out.strip().splitlines()[-1] if out.strip() else ""
            raise ApplyError(
                f"git am failed on {name} ({last}); {top} reset to {before}", 4
            )
    count = git(top, "rev-list", "--count", f"{before}..HEAD")[1].strip()
    note(f"committed the series in {top} ({count} new commits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
