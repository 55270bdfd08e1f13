"""sglang-mimo's maintainer commands: the series, its docs and its way upstream.

Run from a checkout of the repository (``scripts/dev COMMAND``, or
``python3 -m sglang_mimo.dev COMMAND`` with ``scripts`` on PYTHONPATH): these commands
read and write the repository itself (README.md, CHANGELOG.md, tests/regression,
patches/), which an installed package does not carry. The users' commands are
``sglang-mimo``'s (``sglang_mimo.cli``); both lists are in ``cli.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sglang_mimo import cli, paths

PROG = "scripts/dev"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        paths.require_checkout("pyproject.toml")
    except paths.NotACheckout as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    modules = list(cli.MAINTAINER_COMMANDS.values())
    parser = cli.build_parser(PROG, modules, __doc__.split("\n\n")[0])
    return cli.dispatch(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
