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
"""

import argparse
import contextlib
import io
import json
import sys


def _parser():
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser(prog="sglang serve")
    ServerArgs.add_cli_args(parser)
    return parser


# ServerArgs fields reported back, as SGLang parsed them (before resolution).
REPORTED_FIELDS = (
    "model_path", "tp_size", "pp_size", "dp_size", "attn_dp_size", "ep_size", "nnodes",
    "node_rank", "dist_init_addr", "reasoning_parser", "tool_call_parser",
    "speculative_algorithm", "speculative_num_steps", "speculative_eagle_topk",
    "speculative_num_draft_tokens", "enable_multi_layer_eagle", "enable_dp_attention",
    "host", "port",
)  # fmt: skip


def check_argvs(items):
    import sglang
    from sglang.srt.server_args import prepare_server_args

    options = _parser()._option_string_actions
    results = []
    for item in items:
        argv = [str(a) for a in item["argv"]]
        problems = []
        for tok in argv:
            if not tok.startswith("--"):
                continue
            flag = tok.split("=", 1)[0]
            action = options.get(flag)
            if action is None:
                problems.append(f"{flag}: not a flag of sglang {sglang.__version__}")
            elif type(action).__name__.startswith("Deprecated"):
                problems.append(f"{flag}: deprecated in sglang {sglang.__version__}")
        captured = io.StringIO()
        parsed = None
        try:
            with (
                contextlib.redirect_stderr(captured),
                contextlib.redirect_stdout(captured),
            ):
                args = prepare_server_args(argv)
            parsed = {f: getattr(args, f, None) for f in REPORTED_FIELDS}
        except SystemExit as e:
            lines = [ln for ln in captured.getvalue().splitlines() if "error:" in ln]
            problems.append(
                "prepare_server_args: "
                + (lines[-1].strip() if lines else f"exit {e.code}")
            )
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


def main():
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
