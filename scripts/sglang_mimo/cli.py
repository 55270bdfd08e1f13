"""sglang-mimo: the command line of the project's users.

Each sub-command lives in its own module of this package, which defines
``add_parser(subparsers)``; the module registers its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit code.
The maintainers' commands (docs, changelog, rebase, export-pr, audit) are
``sglang_mimo.dev``'s, run from a checkout as ``scripts/dev``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sglang_mimo import paths
from sglang_mimo.errors import ToolError

PROG = "sglang-mimo"
# The users' commands (an installed package's `sglang-mimo`), in the order --help lists
# them. The series' own apply entry is scripts/apply_patches.sh.
USER_COMMANDS = ["image", "launch", "cluster", "doctor", "smoke", "status"]

# The maintainers' commands: ``scripts/dev`` (``sglang_mimo.dev``), from a checkout
# only; command name -> the module of this package that registers it, in --help's order.
MAINTAINER_COMMANDS = {
    "docs": "docs",
    "changelog": "changelog",
    "audit": "audit",
    "rebase": "rebase",
    "export-pr": "export_pr",
    "lint": "lint",
}


class Parser(argparse.ArgumentParser):
    """The top parser, which knows each command's own parser (``commands``), so that
    a mistyped flag shows that command's usage."""

    commands: dict[str, argparse.ArgumentParser]


def build_parser(
    prog: str = PROG,
    modules: Sequence[str] = USER_COMMANDS,
    description: str | None = None,
) -> Parser:
    """The parser of ``prog`` with the sub-commands of ``modules`` (module names of
    this package)."""
    parser = Parser(prog=prog, description=description or __doc__.split("\n\n")[0])
    pin = paths.load_pin()
    parser.add_argument(
        "--version",
        action="version",
        version=f"sglang-mimo {pin['distribution']} (SGLang {pin['version']})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(f"sglang_mimo.{name}").add_parser(sub)
    parser.commands = dict(sub.choices)
    return parser


def dispatch(parser: Parser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run the command; a ToolError ends it with its message and
    code (``PROG COMMAND: error: MESSAGE``), as argparse ends a usage error."""
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
        code: int = args.func(args)
        return code
    except ToolError as e:
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except FileNotFoundError as e:
        if not paths.INSTALLED:
            raise
        print(f"{parser.prog} {args.command}: {e}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in MAINTAINER_COMMANDS:
        print(
            f"{PROG}: {argv[0]} is a maintainer command and needs a checkout of the "
            f"sglang-mimo repository: in a clone, run `scripts/dev {argv[0]} ...` "
            "(or `python3 -m sglang_mimo.dev` with SGLANG_MIMO_REPO pointing at the "
            "clone)",
            file=sys.stderr,
        )
        return 2
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
