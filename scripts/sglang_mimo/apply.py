"""``scripts/apply_patches.sh``: the command line of the apply engine.

It reads the options (argparse), fetches the pinned wheel (``wheels``) or runs
the series on a tree (``engine.apply_series``), and prints the per-patch report
and the engine's messages. ``trees``, ``rebase``, ``export-pr``, ``status`` and
the tests call the engine in-process instead of running this script. Where
things are (the series, the pin, build/) comes from ``paths``.

Standard library only: the script runs it on a bare ``python3 -I -S`` with git
or GNU patch, nothing installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sglang_mimo import engine, paths, wheels
from sglang_mimo.errors import ToolError, stderr_log

PROG = "apply_patches.sh"
DESCRIPTION = """\
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
commit per patch, and print the tree's path."""
EPILOG = """\
--check, --reverse and --fetch exclude each other.

Environment:
  APPLY_PATCHES_TOOL=git|patch   force the tool (default: git if present)
  SGLANG_MIMO_BUILD=DIR          where downloads and the default tree go
                                 (default: build/ in this repository; for the
                                 copy an installed sglang-mimo ships:
                                 ~/.cache/sglang-mimo)
  SGLANG_MIMO_REPO=DIR           read patches/ (series, pin) from DIR instead
                                 of the repository this script is in

Exit codes:
  0  done (or --check: the whole series is applied or applies cleanly)
  1  a patch does not apply (conflicts); nothing was changed
  2  usage error
  3  DIR is not an SGLang tree, or its sglang version is not the pinned one
  4  DIR is not safe to change (dirty checkout, read-only file, write error);
     nothing was changed
  5  download failed or the wheel's sha256 does not match the pin
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        usage="%(prog)s [OPTIONS] [DIR]",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", nargs="?", metavar="DIR", help="the SGLang tree")
    modes = p.add_mutually_exclusive_group()
    modes.add_argument(
        "--check",
        dest="mode",
        action="store_const",
        const="check",
        help='report each patch as "applies", "already applied" or "conflicts" '
        "(with file and hunk); change nothing; exit 0 only when every patch is "
        "applied or applies",
    )
    modes.add_argument(
        "--reverse",
        dest="mode",
        action="store_const",
        const="reverse",
        help="take the series back out (last patch first)",
    )
    modes.add_argument(
        "--fetch",
        dest="mode",
        action="store_const",
        const="fetch",
        help="only download and verify the pinned wheel, into DIR when given "
        "(default: build/wheels); print its path",
    )
    p.set_defaults(mode="apply")
    p.add_argument(
        "--commit",
        action="store_true",
        help="git checkouts only: one commit per patch, with the patch's own "
        "message (git am --keep-non-patch)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="accept a tree whose sglang version is not the pinned one, and "
        "uncommitted changes in files the series touches",
    )
    p.add_argument(
        "--reject",
        action="store_true",
        help="for refreshing the series on another release only: apply every hunk "
        "that fits, leave each one that does not as FILE.rej beside its file, and "
        "exit 1 if any was rejected (not atomic; no --check, --reverse or --commit)",
    )
    p.add_argument(
        "--series",
        metavar="FILE",
        type=Path,
        help="use another series file (patches are read beside it)",
    )
    p.add_argument(
        "--wheel",
        metavar="KEY",
        help='which pinned wheel to use (a key of "wheels" in pin.json, e.g. '
        "aarch64-cp312); default: this machine's arch and python",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The whole of scripts/apply_patches.sh; returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.reject and (args.mode != "apply" or args.commit):
        parser.error("--reject only applies (no --check, --reverse or --commit)")
    try:
        return _main(args)
    except ToolError as e:
        for s in getattr(e, "states", []):
            print(s.line())
        sys.stdout.flush()
        print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
        return e.code


def _main(args: argparse.Namespace) -> int:
    log = stderr_log(PROG)
    engine.series_names(args.series)  # the series and its files exist
    if not paths.PIN_FILE.is_file():
        raise ToolError(f"pin file not found: {paths.PIN_FILE}", 2)
    pin = paths.load_pin()
    if args.mode == "fetch":
        dest = Path(args.dir) if args.dir else None
        print(wheels.fetch_pinned(pin, paths.BUILD, args.wheel, dest, log), flush=True)
        return 0
    opts = engine.Options(
        mode=args.mode,
        commit=args.commit,
        force=args.force,
        reject=args.reject,
        series=args.series,
    )
    tree = args.dir
    if tree is None:
        tree = wheels.default_tree(pin, paths.BUILD, args.wheel, log)
        # the default tree is made for this: one commit per patch, nothing rejected
        opts = engine.Options(
            mode=args.mode,
            commit=args.mode == "apply",
            force=args.force,
            series=args.series,
        )
    out = engine.apply_series(tree, opts, log, pin)
    for s in out.states:
        print(s.line())
    sys.stdout.flush()
    if out.summary:
        log(out.summary)
    if out.code == 0 and args.dir is None:
        print(f"patched tree: {tree}", flush=True)
    return out.code


if __name__ == "__main__":
    sys.exit(main())
