"""Check rendered ``sglang.launch_server`` argv against the installed SGLang's own parser.

    python -m sglang_mimo.argcheck < launches.json > results.json

Input: a JSON array of objects with ``argv`` (as ``launch --dry-run --json`` prints).
Output: the same array, each object with ``ok``, ``problems`` (list of strings) and the
SGLang version added. For each argv it
  1. names every ``--flag`` that is not an exact option of this SGLang (an unknown flag,
     or an abbreviation argparse would silently expand, such as ``--tp``);
  2. names every deprecated flag (SGLang's Deprecated* argparse actions);
  3. runs ``sglang.srt.server_args.prepare_server_args(argv)`` and reports its error.
Parsing is offline: no model, GPU or network is touched. Needs sglang importable, so run
it with the Python that has the pinned SGLang. Exit 0 when every argv is ok, 1 otherwise.

This module is the one probe of SGLang's argument parser: ``server_parser`` (its
options), ``flag_problems`` and ``prepare`` (``prepare_server_args`` with its output
captured), which sglang_mimo.startup uses too.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import sys
from collections.abc import Sequence
from typing import Any


@functools.lru_cache(maxsize=1)
def server_parser() -> argparse.ArgumentParser:
    """SGLang's own ``sglang serve`` parser (``ServerArgs.add_cli_args``)."""
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser(prog="sglang serve")
    ServerArgs.add_cli_args(parser)
    return parser


class Refused(Exception):
    """SGLang's argparse refused an argv: ``str()`` is its error line, ``code`` the
    exit code it asked for."""

    def __init__(self, message: str, code: Any) -> None:
        super().__init__(message)
        self.code = code


def error_line(text: str) -> str:
    """The line of argparse's output that says what is wrong (its last ``error:``
    line; else the last line; '' when there is none)."""
    lines = [ln.strip() for ln in text.splitlines() if "error:" in ln]
    if lines:
        return lines[-1]
    rest = text.strip().splitlines()
    return rest[-1].strip() if rest else ""


def prepare(argv: Sequence[object]) -> Any:
    """``sglang.srt.server_args.prepare_server_args(argv)`` (SGLang's own argparse and
    ServerArgs) with its output captured: the ServerArgs, or ``Refused`` when argparse
    exits. Exceptions of ServerArgs' own validation propagate."""
    from sglang.srt.server_args import prepare_server_args

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(captured):
            return prepare_server_args([str(a) for a in argv])
    except SystemExit as e:
        raise Refused(error_line(captured.getvalue()), e.code) from None


def flag_problems(argv: Sequence[object]) -> list[str]:
    """Every ``--flag`` of ``argv`` that is not an exact option of this SGLang (an
    unknown flag, or an abbreviation argparse would expand) or that is deprecated."""
    import sglang

    options = server_parser()._option_string_actions
    problems = []
    for tok in map(str, argv):
        if not tok.startswith("--"):
            continue
        flag = tok.split("=", 1)[0]
        action = options.get(flag)
        if action is None:
            problems.append(f"{flag}: not a flag of sglang {sglang.__version__}")
        elif type(action).__name__.startswith("Deprecated"):
            problems.append(f"{flag}: deprecated in sglang {sglang.__version__}")
    return problems


# ServerArgs fields reported back, as SGLang parsed them (before resolution).
REPORTED_FIELDS = (
    "model_path", "tp_size", "pp_size", "dp_size", "attn_dp_size", "ep_size", "nnodes",
    "node_rank", "dist_init_addr", "reasoning_parser", "tool_call_parser",
    "speculative_algorithm", "speculative_num_steps", "speculative_eagle_topk",
    "speculative_num_draft_tokens", "enable_multi_layer_eagle", "enable_dp_attention",
    "host", "port",
)  # fmt: skip


def check_argvs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import sglang

    results = []
    for item in items:
        argv = [str(a) for a in item["argv"]]
        problems = flag_problems(argv)
        parsed = None
        try:
            args = prepare(argv)
            parsed = {f: getattr(args, f, None) for f in REPORTED_FIELDS}
        except Refused as e:
            problems.append(f"prepare_server_args: {str(e) or f'exit {e.code}'}")
        except Exception as e:  # a validation error raised while building ServerArgs
            problems.append(f"prepare_server_args: {type(e).__name__}: {e}")
        results.append(
            dict(
                item,
                ok=not problems,
                problems=problems,
                parsed=parsed,
                sglang=sglang.__version__,
            )
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    items = json.load(sys.stdin)
    out = sys.stdout
    results = check_argvs(items)
    json.dump(results, out, indent=2)
    out.write("\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
