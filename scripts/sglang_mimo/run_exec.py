"""The exec runner: this process becomes ``python3 -m sglang.launch_server`` for one rank."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from sglang_mimo.rank import RankLaunch


def exec_rank(launch: RankLaunch, python: str, environ: Mapping[str, str]) -> int:
    env = dict(environ)
    env.update(launch.env)
    argv = [python, "-m", "sglang.launch_server", *launch.argv]
    print(f"launch: {launch.recipe} node rank {launch.node_rank}: " + " ".join(argv),
          file=sys.stderr, flush=True)  # fmt: skip
    sys.stdout.flush()
    try:
        os.execvpe(python, argv, env)
    except FileNotFoundError:
        print(f"launch: error: {python} not found", file=sys.stderr)
        return 127
