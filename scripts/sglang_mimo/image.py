"""Values the image build needs from the pin and the series, in one place.

    sglang-mimo image bake-vars [-o FILE]   bake variables file (JSON) for docker/docker-bake.hcl
    sglang-mimo image modules               the Python modules the series patches, one a line
    sglang-mimo image check-args            exit 1 unless the build arguments in the
                                            environment are the pin's and the series' values

``docker buildx bake -f docker/docker-bake.hcl -f FILE`` reads the generated file, so
the bake file never repeats a pinned value; docker/install.sh runs ``check-args``
inside the build, so a stale file fails the build instead of mislabelling the image.
Exit codes: 0 ok, 1 check-args found a difference, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sglang_mimo import paths
from sglang_mimo.series import load_series, read_series


def series_patches(series: str | Path | None = None) -> list[str]:
    """Patch file names of the series, in order."""
    return read_series(series or paths.SERIES)


def patched_files(series: str | Path | None = None) -> list[str]:
    """Checkout-layout paths (python/sglang/...) that the series changes, sorted."""
    return sorted({f for p in load_series(series or paths.SERIES) for f in p.files})


def patched_modules(series: str | Path | None = None) -> list[str]:
    """Dotted names of the Python modules the series changes (sglang.srt....)."""
    mods = []
    for path in patched_files(series):
        if path.startswith("python/") and path.endswith(".py"):
            mod = path[len("python/") : -len(".py")].replace("/", ".")
            mods.append(mod[: -len(".__init__")] if mod.endswith(".__init__") else mod)
    return mods


def build_args(
    pin: Mapping[str, Any] | None = None, series: str | Path | None = None
) -> dict[str, str]:
    """Build arguments whose values come from the pin and the series."""
    pin = pin or paths.load_pin()
    nccl = pin.get("nccl", {})
    return {
        "SGLANG_VERSION": pin["version"],
        "SGLANG_TAG": pin["tag"],
        "DISTRIBUTION": pin["distribution"],
        "PATCHES": ",".join(series_patches(series)),
        "NCCL_PACKAGE": nccl.get("package", ""),
        "NCCL_VERSION": nccl.get("version", ""),
        "NCCL_MIN_VERSION": nccl.get("min_version", ""),
    }


def bake_vars(
    pin: Mapping[str, Any] | None = None, series: str | Path | None = None
) -> dict[str, dict[str, dict[str, str]]]:
    """The bake variables file: HCL's JSON form, one default per variable."""
    return {"variable": {k: {"default": v} for k, v in build_args(pin, series).items()}}


def check_args(environ: Mapping[str, str] | None = None) -> list[str]:
    """Names of the build arguments (from ``environ``) that differ from the pin/series."""
    environ = os.environ if environ is None else environ
    wrong = []
    for key, want in build_args().items():
        if key == "SGLANG_TAG":  # used by the bake file only (base tag)
            continue
        if environ.get(key, "") != want:
            wrong.append(f"{key}={environ.get(key, '')!r}, expected {want!r}")
    return wrong


def _run(args: argparse.Namespace) -> int:
    if args.action == "bake-vars":
        text = json.dumps(bake_vars(), indent=2) + "\n"
        if args.output:
            os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        return 0
    if args.action == "modules":
        print("\n".join(patched_modules()))
        return 0
    wrong = check_args()
    for w in wrong:
        print(f"build argument {w}", file=sys.stderr)
    if wrong:
        print(
            "regenerate the bake variables: sglang-mimo image bake-vars -o build/image-vars.json",
            file=sys.stderr,
        )
    return 1 if wrong else 0


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    p = subparsers.add_parser(
        "image",
        help="values for the image build (bake variables, patched modules)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=["bake-vars", "modules", "check-args"])
    p.add_argument("-o", "--output", help="bake-vars: write to FILE instead of stdout")
    p.set_defaults(func=_run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sglang-mimo image")
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    return _run(parser.parse_args(["image", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
