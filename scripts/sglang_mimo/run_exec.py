"""The exec runner: this process becomes ``python3 -m sglang.launch_server`` for one rank."""

import os
import sys


def exec_rank(launch, python, environ):
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
