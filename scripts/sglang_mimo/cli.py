"""sglang-mimo: the project's one command line.

Each sub-command lives in its own module of this package, which defines
``add_parser(subparsers)``; the module registers its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit code.
"""

import argparse
import importlib
import sys

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
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
