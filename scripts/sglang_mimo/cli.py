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
    "cluster",
    "doctor",
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
    pin = paths.load_pin()
    parser.add_argument(
        "--version",
        action="version",
        version=f"sglang-mimo {pin['distribution']} (SGLang {pin['version']})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"sglang_mimo.{name}").add_parser(sub)
    # Each command's own parser, so that a mistyped flag shows that command's usage.
    parser.commands = sub.choices
    return parser


def main(argv=None):
    parser = build_parser()
    # argparse hands a command's unknown flags up to the top parser, whose usage says
    # nothing about them: report them with the command's own usage instead.
    args, unknown = parser.parse_known_args(argv)
    command = parser.commands.get(getattr(args, "command", None) or "", parser)
    if args.command == "launch" and getattr(args, "recipe", None) == "smoke":
        command.error(
            "'smoke' is not a recipe: check a live server with "
            "`sglang-mimo smoke --url URL [--recipe RECIPE]`"
        )
    if unknown:
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
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
