"""sglang-mimo: the project's one command line.

Each sub-command lives in its own module of this package, which defines
``add_parser(subparsers)``; the module registers its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit code.
"""

import argparse
import importlib
import sys

from sglang_mimo import paths

# Modules that contribute sub-commands, in the order --help lists them.
SUBCOMMAND_MODULES = [
    "docs",
    "image",
    "launch",
    "smoke",
    "status",
    "audit",
    "changelog",
    "rebase",
    "export_pr",
]

# Commands that read or change the repository itself, not only the series, pin and
# recipes an installed package ships: the file each needs.
NEEDS_CHECKOUT = {
    "docs": "README.md",
    "changelog": "CHANGELOG.md",
    "rebase": "pyproject.toml",
    "export-pr": "tests/regression",
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sglang-mimo", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"sglang_mimo.{name}").add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if args.command in NEEDS_CHECKOUT:
            paths.require_checkout(NEEDS_CHECKOUT[args.command])
        return args.func(args)
    except (paths.NotACheckout, FileNotFoundError) as e:
        if isinstance(e, FileNotFoundError) and not paths.INSTALLED:
            raise
        print(f"sglang-mimo {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
