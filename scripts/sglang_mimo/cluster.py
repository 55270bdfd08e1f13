"""Drive every rank of a recipe from the head node, over ssh.

    cluster doctor RECIPE --hosts H0,H1,.. --rank-addr A0,A1,.. [--nic IF] [--ib-hca DEV]
    cluster setup  RECIPE --hosts .. [--model-path DIR] [--image-from pull|copy]
    cluster start  RECIPE --hosts .. --rank-addr .. [--head-addr A0:PORT] [--dry-run]
    cluster status RECIPE --hosts ..
    cluster logs   [RECIPE] RANK [--tail N] [--follow]
    cluster stop   RECIPE --hosts ..

Every value can come from an inventory file instead (``--inventory cluster.yaml``; the
flags override it):

    recipe: mimo-v2.5-gb10x4
    hosts: [192.0.2.10, 192.0.2.11, 192.0.2.12, 192.0.2.13]   # ssh destinations, rank
                          # order ("local": this machine, no ssh)
    rank_addr: [192.0.2.10, 192.0.2.11, 192.0.2.12, 192.0.2.13]
    nic: enP2p1s0f0np0
    ib_hca: roceP2p1s0f0
    model_path: /models/MiMo-V2.5
    runner: docker        # docker (default) or exec (python3 -m sglang.launch_server on the host)
    ssh_options: [-i, ~/.ssh/cluster_ed25519]
    env: {NCCL_DEBUG: INFO}

Rank 0 is the head: its fabric address is the torch.distributed address
(--head-addr defaults to RANK0_ADDR:20000). The per-rank launch is what ``sglang-mimo
launch RECIPE --node-rank N`` renders; ``start`` runs it on each host, the head first,
detached, with its output kept (docker: the container is not removed, ``--restart``
sets its policy; exec: LOG_DIR/RECIPE-rankN.log), and then reports a rank that did not
come up. ``status`` shows each rank's process, health and the last telling line of its
log; ``logs`` a rank's log; ``stop`` stops them (keeping containers and logs).
``setup`` copies the checkpoint directory to every rank (resumable: only files missing
or of another size go, after a free-disk check) and, for docker, loads the image on
every rank (``docker pull`` there, or ``docker save | ssh HOST docker load``).
``doctor`` reaches every rank over ssh (BatchMode, a 5 s connect timeout) and compares
its clock with the head's (a warning beyond --max-skew), runs ``doctor.py`` on every rank
(with the rank's NCCL_IB_GID_INDEX, the docker line's memlock limit and the recipe's
shm size), compares the MTU and the addresses across the ranks, and ends with an all-reduce across the ranks (``allreduce.py``: NCCL in the
image for docker, or --backend gloo on the CPU), within --timeout seconds.

Hosts need sshd with key login from the head (BatchMode), python3, tar, and docker for
the docker runner; nothing of this project.

Exit codes: 0 ok; 1 a rank or a check failed; 2 bad input; 3 a recipe fails validation.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from sglang_mimo import rank as K
from sglang_mimo import recipes as R

EXIT_FAIL, EXIT_BAD_INPUT, EXIT_BAD_RECIPE = 1, 2, 3
HERE = Path(__file__).resolve().parent
DOCTOR_SCRIPT = HERE / "doctor.py"
ALLREDUCE_SCRIPT = HERE / "allreduce.py"
LOG_DIR = "/var/tmp/sglang-mimo"
READY_LINE = "The server is fired up and ready to roll!"
# The compute capability each image target is built for (docker/docker-bake.hcl).
IMAGE_ARCH = {"sm90": "9.0", "sm121a": "12.1"}
INVENTORY_KEYS = {
    "recipe", "hosts", "rank_addr", "head_addr", "nic", "ib_hca", "model_path",
    "runner", "image", "python", "log_dir", "ssh_options", "env", "restart",
}  # fmt: skip
_print_lock = threading.Lock()
_T = TypeVar("_T")


class ClusterError(Exception):
    """Bad input: the message says what and how to fix it."""


def say(*parts: object, file: IO[str] | None = None) -> None:
    with _print_lock:
        print(*parts, file=file or sys.stdout, flush=True)


# --------------------------------------------------------------------------- the cluster


class Cluster:
    """The recipe, the hosts in rank order, and each rank's rendered launch."""

    def __init__(self, recipe: R.Recipe, hosts: list[str], rank_addrs: list[str] | None,
                 head_addr: str | None, given: Mapping[str, str | None],
                 runner: str = "docker", image: str | None = None, python: str = "python3",
                 log_dir: str = LOG_DIR, ssh_options: Iterable[str] = (),
                 env: Mapping[str, str] | None = None, restart: str = "no",
                 environ: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.recipe = recipe
        self.name = recipe.name
        self.n = recipe.hardware.nodes
        self.hosts = hosts
        self.rank_addrs = rank_addrs
        self.head_addr = head_addr
        self.given = given
        self.runner = runner
        self.image = image
        self.python = python
        self.log_dir = log_dir
        self.ssh_options = list(ssh_options)
        self.env = dict(env or {})
        self.restart = restart
        self.environ = os.environ if environ is None else environ
        self._launches: list[K.RankLaunch] | None = None

    def rank_name(self, r: int) -> str:
        return f"{self.name}-rank{r}"

    def launches(self) -> list[K.RankLaunch]:
        if self._launches is None:
            out = []
            for r in range(self.n):
                given = dict(self.given)
                if self.rank_addrs:
                    given["rank_addr"] = self.rank_addrs[r]
                values = R.resolve_site(self.recipe, given, self.environ)
                launch = K.render_rank(
                    self.recipe, r, values, self.head_addr if self.n > 1 else None
                )
                launch.env.update(self.env)
                out.append(launch)
            self._launches = out
        return self._launches

    def model_path(self) -> str | None:
        return K.argv_value(self.launches()[0].argv, "--model-path")

    # ------------------------------------------------------------------ transport

    def argv(self, r: int, script: str, connect_timeout: int = 10) -> list[str]:
        """argv running a shell script on rank r's host (ssh, or sh here for "local")."""
        host = self.hosts[r]
        if host == "local":
            return ["sh", "-c", script]
        # ssh keeps the first value of an option: the operator's come first.
        return ["ssh", *self.ssh_options, "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={connect_timeout}", host, script]  # fmt: skip

    def sh(
        self,
        r: int,
        script: str,
        timeout: float = 120,
        stdin: int | IO[Any] | None = None,
        input: str | None = None,
        connect_timeout: int = 10,
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                self.argv(r, script, connect_timeout), capture_output=True, text=True,
                timeout=timeout,
                stdin=stdin, input=input,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            # What the command wrote before the timeout comes as bytes, text=True or not.
            out = e.stdout or ""
            if isinstance(out, bytes):
                out = out.decode(errors="replace")
            return subprocess.CompletedProcess(e.cmd, 124, out, "timed out")

    def each(
        self, fn: Callable[[int], _T], ranks: Iterable[int] | None = None
    ) -> list[_T]:
        ranks = list(range(self.n)) if ranks is None else list(ranks)
        with concurrent.futures.ThreadPoolExecutor(max(len(ranks), 1)) as pool:
            return list(pool.map(fn, ranks))

    def where(self, r: int) -> str:
        return f"rank {r} ({self.hosts[r]})"


def ssh_failed(proc: subprocess.CompletedProcess[str]) -> str | None:
    """ssh's own failure (exit 255): the line of stderr that says why, else None."""
    if proc.returncode != 255:
        return None
    lines = [x for x in (proc.stderr or "").strip().splitlines() if x.strip()]
    return lines[-1] if lines else "ssh exited 255"


SSH_FIX = (
    "passwordless ssh from the head: `ssh-copy-id HOST`, then "
    "`ssh -o BatchMode=yes HOST true` must work (--ssh-option for a key or config)"
)


# ------------------------------------------------------------------------- input


def load_inventory(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = R._yaml().safe_load(f) or {}
    except OSError as e:
        raise ClusterError(f"--inventory {path}: {e.strerror}") from e
    except R._yaml().YAMLError as e:
        raise ClusterError(f"--inventory {path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ClusterError(
            f"--inventory {path}: a YAML mapping of {sorted(INVENTORY_KEYS)}"
        )
    unknown = sorted(set(data) - INVENTORY_KEYS)
    if unknown:
        raise ClusterError(
            f"--inventory {path}: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(INVENTORY_KEYS))}"
        )
    return data


def as_list(value: str | Iterable[object] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value]


def parse_env(items: Iterable[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClusterError(f"--env {item!r}: give NAME=VALUE")
        out[key] = value
    return out


def build(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Cluster:
    """The Cluster of the flags and the inventory (flags win)."""
    environ = os.environ if environ is None else environ
    inv = load_inventory(args.inventory) if args.inventory else {}

    def pick(flag_value: Any, key: str, env: str | None = None) -> Any:
        if flag_value not in (None, [], ""):
            return flag_value
        if key in inv:
            return inv[key]
        return environ.get(env) if env else None

    name = pick(args.recipe, "recipe")
    if not name:
        raise ClusterError("give a recipe (RECIPE or `recipe:` in --inventory)")
    try:
        recipe = R.load_recipe(name, getattr(args, "recipes_dir", None))
    except R.RecipeInvalid as e:
        raise _BadRecipe(str(e)) from e
    except R.RecipeError as e:
        raise ClusterError(str(e)) from e
    n = recipe.hardware.nodes
    hosts = as_list(pick(args.hosts, "hosts"))
    if not hosts:
        raise ClusterError(
            f"recipe {recipe.name} runs on {n} node(s): give --hosts H0,..,H{n - 1} "
            "(ssh destinations in rank order; rank 0 is the head) or `hosts:` in --inventory"
        )
    if len(hosts) != n:
        raise ClusterError(
            f"--hosts lists {len(hosts)} host(s); recipe {recipe.name} has {n} rank(s)"
        )
    addrs = as_list(pick(args.rank_addr, "rank_addr", R.SITE_INPUTS["rank_addr"][1]))
    if addrs is not None:
        if len(addrs) != n:
            raise ClusterError(
                f"--rank-addr lists {len(addrs)} address(es); recipe {recipe.name} "
                f"has {n} rank(s): one per rank, in rank order"
            )
        addrs = [R.check_host(a, "--rank-addr") for a in addrs]
    elif n > 1:
        raise ClusterError(
            f"give --rank-addr A0,..,A{n - 1} (each rank's fabric address, rank order) or "
            "`rank_addr:` in --inventory"
        )
    head = pick(args.head_addr, "head_addr", R.HEAD_ADDR_INPUT[1])
    if not head and addrs:
        head = f"{addrs[0]}:{R.HEAD_PORT}"
    if head:
        head = R.check_head_addr(head)
    given = {
        "model_path": pick(args.model_path, "model_path"),
        "nic": pick(args.nic, "nic"),
        "ib_hca": pick(args.ib_hca, "ib_hca"),
    }
    runner = pick(args.runner, "runner") or "docker"
    if runner not in ("docker", "exec"):
        raise ClusterError(f"runner {runner!r}: docker or exec")
    from sglang_mimo import run_docker

    env = dict(inv.get("env") or {})
    env.update(parse_env(args.env))
    ssh_options = list(inv.get("ssh_options") or []) + list(args.ssh_option or [])
    return Cluster(
        recipe, hosts, addrs, head, given, runner=runner,
        image=pick(args.image, "image") or run_docker.image_name(recipe),
        python=pick(args.python, "python") or "python3",
        log_dir=pick(args.log_dir, "log_dir") or LOG_DIR,
        ssh_options=[os.path.expanduser(str(o)) for o in ssh_options],
        env={str(k): str(v) for k, v in env.items()},
        restart=run_docker.check_restart(
            str(pick(getattr(args, "restart", None), "restart") or "no")
        ),
        environ=environ,
    )  # fmt: skip


class _BadRecipe(Exception):
    pass


# ------------------------------------------------------------------ address checks


def address_checks(cl: Cluster) -> list[dict[str, Any]]:
    """The addresses agree (``recipes.check_rank_addrs``, as ``launch`` checks them):
    rank 0's is the head's host, no address twice. Ranks sharing one host (several
    ranks on one machine) count as one node there."""
    from sglang_mimo.doctor import FAIL, PASS, result

    if cl.n == 1:
        return [result("addrs", PASS, "one node: no torch.distributed head")]
    # build() gives a cluster of several nodes both (it refuses one without them).
    assert cl.rank_addrs is not None and cl.head_addr is not None
    first_of_host: dict[str, int] = {}
    for r, h in enumerate(cl.hosts):
        first_of_host.setdefault(h, r)
    nodes = {r: cl.rank_addrs[r] for r in sorted(first_of_host.values())}
    try:
        R.check_rank_addrs(cl.head_addr, nodes)
    except R.RecipeError as e:
        return [
            result(
                "addrs", FAIL, str(e),
                "the head is rank 0: --head-addr RANK0_ADDR:PORT, and --hosts and "
                "--rank-addr in the same rank order",
            )  # fmt: skip
        ]
    return [
        result("addrs", PASS, f"head {cl.head_addr} is rank 0's address; "
               f"{len(set(nodes.values()))} distinct node address(es)")  # fmt: skip
    ]


# ------------------------------------------------------------------------ runners


def _q(argv: Iterable[object]) -> str:
    """A shell line of argv; "${HOME}/..." stays expandable (the docker runner's cache mount)."""
    return " ".join(
        f'"{a}"' if K._SHELL_VAR_RE.match(a) else shlex.quote(a) for a in map(str, argv)
    )


def docker_run_argv(cl: Cluster, launch: K.RankLaunch) -> list[str]:
    """The recipe's ``docker run`` for a rank as ``launch --render docker`` renders it:
    kept after it ends (no --rm), with the cluster's restart policy."""
    from sglang_mimo import run_docker

    assert cl.image  # the docker runner's (build gives it one)
    return run_docker.docker_argv(cl.recipe, launch, cl.image, cl.restart)


def start_script(cl: Cluster, r: int) -> str:
    launch = cl.launches()[r]
    name = cl.rank_name(r)
    if cl.runner == "docker":
        q = shlex.quote(name)
        return (
            f'if [ "$(docker inspect -f {{{{.State.Running}}}} {q} 2>/dev/null)" = true ]; '
            f'then echo "{name} is already running (cluster stop first)" >&2; exit 3; fi\n'
            f"docker rm {q} >/dev/null 2>&1 || true\n"
            f"{_q(docker_run_argv(cl, launch))}\n"
        )
    env = [f"{k}={v}" for k, v in launch.env.items()]
    cmd = ["env", *env, cl.python, "-m", "sglang.launch_server", *launch.argv]
    d = shlex.quote(cl.log_dir)
    return (
        f"set -e\nmkdir -p {d}\ncd {d}\n"
        f'if [ -f {name}.pid ] && kill -0 "$(cat {name}.pid)" 2>/dev/null; then '
        f'echo "{name} is already running (pid $(cat {name}.pid); cluster stop first)" >&2; '
        "exit 3; fi\n"
        f"rm -f {name}.exit\n"
        f"if [ -f {name}.log ]; then mv -f {name}.log {name}.log.1; fi\n"
        f"setsid nohup sh -c '\"$@\"; echo $? > {name}.exit' sh {_q(cmd)} "
        f">{name}.log 2>&1 </dev/null &\n"
        f"echo $! > {name}.pid\n"
    )


def stop_script(cl: Cluster, r: int, grace: int = 30) -> str:
    name = cl.rank_name(r)
    if cl.runner == "docker":
        q = shlex.quote(name)
        return (
            f"if docker inspect {q} >/dev/null 2>&1; then docker stop -t {grace} {q} "
            f">/dev/null && echo stopped; else echo 'not started'; fi\n"
        )
    d = shlex.quote(cl.log_dir)
    return (
        f"cd {d} 2>/dev/null && [ -f {name}.pid ] || {{ echo 'not started'; exit 0; }}\n"
        f"pid=$(cat {name}.pid)\n"
        'if kill -0 -- "-$pid" 2>/dev/null; then\n'
        '  kill -TERM -- "-$pid" 2>/dev/null || true\n'
        f'  i=0; while kill -0 -- "-$pid" 2>/dev/null && [ $i -lt {grace * 10} ]; do '
        "sleep 0.1; i=$((i+1)); done\n"
        '  kill -KILL -- "-$pid" 2>/dev/null || true\n'
        f"  echo stopped > {name}.exit; echo stopped\n"
        "else echo 'not running'; fi\n"
    )


STATE_MARK = "--- sglang-mimo log ---"


def status_script(cl: Cluster, r: int, lines: int = 200) -> str:
    name = cl.rank_name(r)
    q = shlex.quote(name)
    if cl.runner == "docker":
        return (
            f"docker inspect -f 'state={{{{.State.Status}}}} code={{{{.State.ExitCode}}}} "
            f"health={{{{if .State.Health}}}}{{{{.State.Health.Status}}}}{{{{end}}}}' {q} "
            "2>/dev/null || echo state=absent\n"
            f"echo '{STATE_MARK}'\ndocker logs --tail {lines} {q} 2>&1 || true\n"
        )
    d = shlex.quote(cl.log_dir)
    return (
        f"if ! cd {d} 2>/dev/null || [ ! -f {name}.pid ]; then echo state=absent; exit 0; fi\n"
        f'if kill -0 "$(cat {name}.pid)" 2>/dev/null; then echo "state=running pid=$(cat {name}.pid)"; '
        f'elif [ -f {name}.exit ]; then echo "state=exited code=$(cat {name}.exit)"; '
        "else echo state=exited code=unknown; fi\n"
        f"echo '{STATE_MARK}'\ntail -n {lines} {name}.log 2>/dev/null || true\n"
    )


def health_script(cl: Cluster) -> str:
    """rank 0's /health over HTTP from its own host (python3's urllib)."""
    argv = cl.launches()[0].argv
    port = K.argv_value(argv, "--port") or "30000"
    host = K.argv_value(argv, "--host") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    url = f"http://{host}:{port}/health"
    code = (
        "import urllib.request\n"
        "try:\n"
        f"    print(urllib.request.urlopen({url!r}, timeout=5).status)\n"
        "except Exception as e:\n"
        "    print(getattr(e, 'code', None) or type(e).__name__)\n"
    )
    return f"python3 -c {shlex.quote(code)} 2>/dev/null || echo unknown"


def log_summary(log: str) -> str:
    """The most telling line of a rank's log: ready, the last error, else the last line."""
    lines = [x.rstrip() for x in log.splitlines() if x.strip()]
    if any(READY_LINE in x for x in lines):
        return "ready"
    markers = ("Error", "error:", "Exception", "NCCL WARN", "Traceback", "Killed")
    errors = [x for x in lines if any(m in x for m in markers) and "Traceback" not in x]
    if errors:
        return "error: " + errors[-1].strip()[:200]
    return lines[-1].strip()[:200] if lines else "(empty log)"


def rank_state(cl: Cluster, r: int) -> dict[str, str]:
    """{"state": running|exited|absent|unreachable, "code", "health", "log"} of a rank."""
    proc = cl.sh(r, status_script(cl, r), timeout=60)
    why = ssh_failed(proc)
    if why:
        return {"state": "unreachable", "log": why}
    head, _, log = proc.stdout.partition(STATE_MARK + "\n")
    fields = dict(
        kv.split("=", 1) for kv in head.split() if "=" in kv
    )  # state=.. code=.. pid=.. health=..
    fields["log"] = log_summary(log)
    if fields.get("state") in ("exited", "dead") and fields.get("code") == "stopped":
        fields["state"] = "stopped"
    return fields


def describe(st: Mapping[str, str]) -> str:
    state = st.get("state", "?")
    if state == "running":
        text = "running" + (f" (pid {st['pid']})" if st.get("pid") else "")
    elif state in ("exited", "dead"):
        text = f"exited {st.get('code', '?')}"
    else:
        text = state
    if st.get("health"):
        text += f", health {st['health']}"
    return text


# ----------------------------------------------------------------------- commands


def cmd_start(cl: Cluster, args: argparse.Namespace) -> int:
    checks = address_checks(cl)
    scripts = [start_script(cl, r) for r in range(cl.n)]  # renders every rank first
    if args.dry_run:
        for r in range(cl.n):
            say(f"# {cl.where(r)}")
            say(_q(cl.argv(r, scripts[r])[:-1]) + " " + shlex.quote(scripts[r]))
        return 0
    from sglang_mimo.doctor import FAIL, format_result

    if any(c["status"] == FAIL for c in checks):
        for c in checks:
            say(format_result(c), file=sys.stderr)
        return EXIT_FAIL

    def start(r: int) -> str | None:
        proc = cl.sh(r, scripts[r], timeout=300)
        why = ssh_failed(proc)
        if why:
            return f"cannot reach it over ssh: {why}"
        if proc.returncode:
            err = [
                x for x in (proc.stderr or proc.stdout).strip().splitlines()
                if x.strip() and not x.startswith("Run 'docker")  # docker's usage hint
            ]  # fmt: skip
            return f"start exited {proc.returncode}: {err[-1] if err else ''}"
        say(f"{cl.where(r)}: started {cl.rank_name(r)}")
        return None

    failed: dict[int, str] = {}
    # The head first: it holds the torch.distributed store the others join.
    err = start(0)
    if err:
        say(f"{cl.where(0)}: failed to start: {err}", file=sys.stderr)
        if cl.n > 1:
            say("the other ranks were not started (they would wait for the head)",
                file=sys.stderr)  # fmt: skip
        return EXIT_FAIL
    for r, err in zip(range(1, cl.n), cl.each(start, range(1, cl.n))):
        if err:
            failed[r] = err
    deadline = time.monotonic() + args.settle
    while time.monotonic() < deadline:
        time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
    states = cl.each(lambda r: rank_state(cl, r))
    for r, st in enumerate(states):
        if r in failed:
            continue
        if st.get("state") != "running":
            failed[r] = f"{describe(st)} -- {st.get('log', '')}"
    for r in sorted(failed):
        say(f"{cl.where(r)}: failed to start: {failed[r]}", file=sys.stderr)
    if failed:
        say(f"see `sglang-mimo cluster logs {cl.name} RANK`; stop the rest with "
            f"`sglang-mimo cluster stop {cl.name}`", file=sys.stderr)  # fmt: skip
        return EXIT_FAIL
    say(f"{cl.name}: {cl.n} rank(s) running; `sglang-mimo cluster status` follows them")
    return 0


def cmd_stop(cl: Cluster, args: argparse.Namespace) -> int:
    def stop(r: int) -> str | None:
        proc = cl.sh(r, stop_script(cl, r, args.grace), timeout=args.grace + 60)
        why = ssh_failed(proc)
        if why:
            return f"cannot reach it over ssh: {why}"
        if proc.returncode:
            return f"stop exited {proc.returncode}: {proc.stderr.strip()}"
        say(f"{cl.where(r)}: {proc.stdout.strip() or 'stopped'}")
        return None

    # Workers first, the head last.
    errs = cl.each(stop, range(1, cl.n)) + [stop(0)]
    bad = [e for e in errs if e]
    for e in bad:
        say(e, file=sys.stderr)
    return EXIT_FAIL if bad else 0


def cmd_status(cl: Cluster, args: argparse.Namespace) -> int:
    states = cl.each(lambda r: rank_state(cl, r))
    if cl.runner == "exec" and states[0].get("state") == "running":
        proc = cl.sh(0, health_script(cl), timeout=30)
        code = proc.stdout.strip() or "unknown"
        states[0]["health"] = "ok" if code == "200" else code
    if args.json:
        json.dump([{"rank": r, "host": cl.hosts[r], **st} for r, st in enumerate(states)],
                  sys.stdout, indent=2)  # fmt: skip
        sys.stdout.write("\n")
    else:
        for r, st in enumerate(states):
            say(
                f"rank {r}  {cl.hosts[r]:16} {describe(st):28} log: {st.get('log', '')}"
            )
    return 0 if all(st.get("state") == "running" for st in states) else EXIT_FAIL


def cmd_logs(cl: Cluster, args: argparse.Namespace) -> int:
    r = args.rank
    if not 0 <= r < cl.n:
        raise ClusterError(f"rank {r} is outside 0..{cl.n - 1}")
    name = shlex.quote(cl.rank_name(r))
    follow = " -f" if args.follow else ""
    if cl.runner == "docker":
        script = f"docker logs --tail {args.tail}{follow} {name}"
    else:
        path = shlex.quote(f"{cl.log_dir}/{cl.rank_name(r)}.log")
        script = f"tail -n {args.tail}{follow} {path}"
    return subprocess.call(cl.argv(r, script))


# -------------------------------------------------------------------------- setup


def _list_script(path: str) -> str:
    p = shlex.quote(path)
    return (
        f'p={p}; while [ ! -d "$p" ]; do p=$(dirname "$p"); done\n'
        'df -PB1 "$p" | awk \'NR==2 {print "free", $4}\'\n'
        f"if [ -d {p} ]; then cd {p} && find . -type f -printf 'file %s %P\\n'; fi\n"
    )


def _parse_listing(text: str) -> tuple[int | None, dict[str, int]]:
    free: int | None = None
    files: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("free "):
            free = int(line.split()[1])
        elif line.startswith("file "):
            _, size, name = line.split(" ", 2)
            files[name] = int(size)
    return free, files


def local_files(path: str | Path) -> dict[str, int]:
    out: dict[str, int] = {}
    root = Path(path)
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[p.relative_to(root).as_posix()] = p.stat().st_size
    return out


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def copy_model(
    cl: Cluster,
    r: int,
    src: str,
    files: Mapping[str, int],
    progress_every: float = 2.0,
) -> str | None:
    """Copy the files of ``src`` that rank r lacks (or holds at another size); verify."""
    where = cl.where(r)
    proc = cl.sh(r, _list_script(src))
    why = ssh_failed(proc)
    if why:
        return f"{where}: cannot reach it over ssh: {why}"
    free, there = _parse_listing(proc.stdout)
    todo = sorted(f for f, size in files.items() if there.get(f) != size)
    need = sum(files[f] for f in todo)
    total = sum(files.values())
    if not todo:
        say(f"{where}: model {src}: all {len(files)} files there ({_gib(total)})")
        return None
    if free is not None and free < need:
        return (
            f"{where}: model {src} needs {_gib(need)} more; {_gib(free)} free there "
            "-- free disk space or give another --model-path"
        )
    say(
        f"{where}: model {src}: copying {len(todo)} of {len(files)} files, {_gib(need)}"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as lst:
        lst.write("\0".join(todo) + "\0")
    try:
        tar = subprocess.Popen(
            ["tar", "-C", src, "--null", "-T", lst.name, "-cf", "-"],
            stdout=subprocess.PIPE,
        )
        q = shlex.quote(src)
        dest = subprocess.Popen(
            cl.argv(r, f"mkdir -p {q} && tar -C {q} -xf -"),
            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert tar.stdout and dest.stdin and dest.stderr  # all PIPEs
        sent, last = 0, time.monotonic()
        while True:
            chunk = tar.stdout.read(1 << 20)
            if not chunk:
                break
            try:
                dest.stdin.write(chunk)
            except BrokenPipeError:
                break
            sent += len(chunk)
            if time.monotonic() - last >= progress_every:
                last = time.monotonic()
                say(f"{where}: model {_gib(min(sent, need))} / {_gib(need)} "
                    f"({100 * min(sent, need) // max(need, 1)}%)")  # fmt: skip
        dest.stdin.close()
        err = dest.stderr.read().decode(errors="replace").strip()
        rc_dest, rc_tar = dest.wait(), tar.wait()
    finally:
        os.unlink(lst.name)
    if rc_tar or rc_dest:
        return (
            f"{where}: model copy failed (tar {rc_tar}, remote {rc_dest}): {err[-300:]}"
        )
    _, there = _parse_listing(cl.sh(r, _list_script(src)).stdout)
    wrong = [f for f, size in files.items() if there.get(f) != size]
    if wrong:
        return f"{where}: model copy incomplete: {len(wrong)} file(s) differ, e.g. {wrong[0]}"
    say(f"{where}: model {src}: verified {len(files)} files, {_gib(total)}")
    return None


def load_image(cl: Cluster, r: int, how: str) -> str | None:
    where = cl.where(r)
    assert cl.image  # the docker runner's (build gives it one)
    img = shlex.quote(cl.image)
    proc = cl.sh(r, f"docker image inspect {img} >/dev/null 2>&1 && echo present")
    why = ssh_failed(proc)
    if why:
        return f"{where}: cannot reach it over ssh: {why}"
    if proc.stdout.strip() == "present":
        say(f"{where}: image {cl.image} is there")
        return None
    if how == "pull":
        proc = cl.sh(r, f"docker pull {img}", timeout=3600)
        if proc.returncode:
            return (
                f"{where}: docker pull {cl.image} failed: {proc.stderr.strip()[-300:]}"
            )
    else:
        save = subprocess.Popen(["docker", "save", cl.image], stdout=subprocess.PIPE)
        proc = subprocess.run(cl.argv(r, "docker load"), stdin=save.stdout,
                              capture_output=True, text=True)  # fmt: skip
        if save.stdout:  # a PIPE
            save.stdout.close()
        if save.wait() or proc.returncode:
            return f"{where}: docker save | docker load failed: {proc.stderr.strip()[-300:]}"
    say(f"{where}: image {cl.image} loaded ({how})")
    return None


def cmd_setup(cl: Cluster, args: argparse.Namespace) -> int:
    errs: list[str] = []
    if cl.runner == "docker" and not args.no_image:
        how = args.image_from
        if how is None:
            have = subprocess.run(["docker", "image", "inspect", str(cl.image)],
                                  capture_output=True).returncode == 0  # fmt: skip
            how = "copy" if have else "pull"
        errs += [e for e in cl.each(lambda r: load_image(cl, r, how)) if e]
    model = cl.model_path()
    if not args.no_model and model:
        if not R.is_local_path(model):
            say(f"--model-path {model} is a hub id: each rank downloads it into its own "
                "cache; give a local checkpoint directory to copy it once")  # fmt: skip
        elif not os.path.isdir(model):
            errs.append(f"--model-path {model}: no such directory on the head")
        else:
            files = local_files(model)
            errs += [e for e in cl.each(lambda r: copy_model(cl, r, model, files)) if e]
    for e in errs:
        say(e, file=sys.stderr)
    return EXIT_FAIL if errs else 0


# ------------------------------------------------------------------------- doctor


def node_check(
    cl: Cluster,
    r: int,
    model_bytes: int | None,
    skip: Iterable[str],
    python: str = "python3",
) -> list[dict[str, Any]]:
    """doctor.py on rank r's host: its list of results (an ssh failure is one)."""
    from sglang_mimo.doctor import FAIL, result

    launch = cl.launches()[r]
    env = launch.env
    argv = [python, "-", "--json"]
    # The values as the rank's environment renders them.
    for flag, value in (
        ("--nic", env.get("NCCL_SOCKET_IFNAME") or env.get("GLOO_SOCKET_IFNAME")),
        ("--ib-hca", env.get("NCCL_IB_HCA")),
        ("--rank-addr", env.get("SGLANG_HOST_IP")),
        ("--model-path", K.argv_value(launch.argv, "--model-path")),
    ):
        if value:
            argv += [flag, value]
    if model_bytes is not None:
        argv += ["--model-bytes", str(model_bytes)]
    hw = cl.recipe.hardware
    argv += [
        "--gpus",
        str(hw.gpus_per_node),
        "--gpu-memory-gib",
        str(hw.gpu_memory_gib),
    ]
    arch = IMAGE_ARCH.get(cl.recipe.image.target)
    if arch:
        argv += ["--gpu-arch", arch]
    img = cl.recipe.image
    if env.get("NCCL_IB_GID_INDEX"):
        argv += ["--gid-index", env["NCCL_IB_GID_INDEX"]]
    if cl.runner == "docker" and img.rdma:
        # The rank runs under the docker line's --ulimit memlock=-1, not the session's.
        argv += ["--memlock", "-1"]
    argv += ["--shm-size", img.shm_size]
    for s in skip:
        argv += ["--skip", s]
    prefix = ""
    if cl.environ.get("SGLANG_MIMO_SYS_ROOT"):  # the tests' made-up /sys
        prefix = (
            f"SGLANG_MIMO_SYS_ROOT={shlex.quote(cl.environ['SGLANG_MIMO_SYS_ROOT'])} "
        )
    proc = cl.sh(r, prefix + _q(argv), input=DOCTOR_SCRIPT.read_text(), timeout=120)
    why = ssh_failed(proc)
    if why:
        return [
            result("ssh", FAIL, f"cannot reach {cl.hosts[r]} over ssh: {why}", SSH_FIX)
        ]
    try:
        results: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        err = (proc.stderr or proc.stdout).strip().splitlines()
        return [
            result(
                "python", FAIL,
                f"doctor.py did not run on {cl.hosts[r]}: {err[-1] if err else proc.returncode}",
                "the host needs python3 (3.8 or newer) on the ssh session's PATH",
            )  # fmt: skip
        ]
    return results


CLOCK_FIX = (
    "synchronize the clocks: NTP on every node (`timedatectl set-ntp true`, or chrony); "
    "`timedatectl` says whether a node is synchronized"
)


def probe(cl: Cluster, r: int, connect_timeout: int = 5) -> dict[str, Any]:
    """One short ssh to rank r (BatchMode, ConnectTimeout 5): whether it answers, and its
    clock against this machine's, the middle of the round trip (``date +%s.%N``)."""
    t0 = time.time()
    proc = cl.sh(r, "date +%s.%N", timeout=connect_timeout + 20,
                 connect_timeout=connect_timeout)  # fmt: skip
    t1 = time.time()
    why = ssh_failed(proc) or (proc.returncode == 124 and "no answer")
    if why:
        return {"ok": False, "why": why}
    try:
        there = float(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"ok": True, "rtt": t1 - t0}
    return {"ok": True, "rtt": t1 - t0, "skew": there - (t0 + t1) / 2}


def ssh_result(cl: Cluster, r: int, p: Mapping[str, Any]) -> dict[str, Any]:
    from sglang_mimo.doctor import FAIL, PASS, result

    if not p["ok"]:
        return result("ssh", FAIL, f"cannot reach {cl.hosts[r]} over ssh: {p['why']}",
                      SSH_FIX)  # fmt: skip
    return result("ssh", PASS, f"{cl.hosts[r]} answers ({p['rtt']:.2f} s)")


def clock_result(
    cl: Cluster, probes: Sequence[Mapping[str, Any]], max_skew: float
) -> dict[str, Any]:
    """Each rank's clock against the head's (where ``cluster`` runs)."""
    from sglang_mimo.doctor import PASS, SKIP, WARN, result

    seen = {r: p for r, p in enumerate(probes) if "skew" in p}
    if not seen:
        return result("clock", SKIP, "no rank answered with its time")
    # A rank is off by more than max_skew only beyond the probe's own uncertainty.
    off = {
        r: p["skew"]
        for r, p in seen.items()
        if abs(p["skew"]) - p["rtt"] / 2 > max_skew
    }
    if off:
        text = ", ".join(f"{cl.where(r)} {s:+.1f} s" for r, s in sorted(off.items()))
        return result("clock", WARN,
                      f"clocks differ from the head's by more than {max_skew:g} s: {text} "
                      "(logs across ranks do not line up; TLS and tokens may fail)",
                      CLOCK_FIX)  # fmt: skip
    worst = max(seen, key=lambda r: abs(seen[r]["skew"]))
    return result("clock", PASS,
                  f"{len(seen)} rank(s) within {max_skew:g} s of the head's clock "
                  f"(largest {seen[worst]['skew']:+.3f} s, rank {worst})")  # fmt: skip


def allreduce_argv(
    cl: Cluster, r: int, backend: str, timeout: float, mib: float, device_index: int
) -> list[str]:
    """The command running allreduce.py for rank r, in the rank's environment.

    The script goes as ``python3 -c SOURCE``: its stdin stays the ssh channel, whose
    end (the head cancels it, or the head is gone) ends the rank (--exit-on-eof)."""
    launch = cl.launches()[r]
    master = cl.head_addr or f"127.0.0.1:{R.HEAD_PORT}"
    args = ["--rank", str(r), "--world-size", str(cl.n), "--master", master,
            "--backend", backend, "--timeout", f"{timeout:g}", "--mib", f"{mib:g}",
            "--device-index", str(device_index), "--exit-on-eof"]  # fmt: skip
    source = ALLREDUCE_SCRIPT.read_text()
    # coreutils timeout: the rank ends even if its watchdog cannot run.
    guard = ["-k", "5", f"{timeout + 5:g}"]
    if cl.runner == "docker":
        assert cl.image  # the docker runner's (build gives it one)
        img = cl.recipe.image
        argv = ["docker", "run", "--rm", "-i", "--name", f"{cl.rank_name(r)}-doctor",
                "--network", "host", "--ipc=host"]  # fmt: skip
        if backend == "nccl":
            argv += ["--gpus", "all"]
        if img.rdma:
            argv += ["--device", "/dev/infiniband", "--cap-add", "IPC_LOCK",
                     "--ulimit", "memlock=-1"]  # fmt: skip
        for k, v in launch.env.items():
            argv += ["-e", f"{k}={v}"]
        return argv + ["--entrypoint", "timeout", cl.image, *guard, "python3", "-c",
                       source, *args]  # fmt: skip
    env = ["env", *(f"{k}={v}" for k, v in launch.env.items())]
    return ["timeout", *guard, *env, cl.python, "-c", source, *args]


def run_allreduce(
    cl: Cluster, backend: str, timeout: float, mib: float
) -> list[dict[str, Any]]:
    """Every rank at once; their JSON results (a missing one says why). When a rank
    fails by itself (not by waiting), the others are cancelled: their stdin is closed.
    """
    index: list[int] = []
    seen: dict[str, int] = {}
    for h in cl.hosts:
        index.append(seen.get(h, 0))
        seen[h] = seen.get(h, 0) + 1
    procs = [
        subprocess.Popen(
            cl.argv(r, _q(allreduce_argv(cl, r, backend, timeout, mib, index[r]))),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for r in range(cl.n)
    ]
    outs: list[dict[str, Any]] = [
        {} for _ in range(cl.n)
    ]  # one each, filled in by one()
    cancelled = threading.Event()
    failed_by: list[int] = []

    def cancel() -> None:
        cancelled.set()
        for p in procs:
            try:
                if p.stdin:  # a PIPE
                    p.stdin.close()
            except OSError:
                pass

    def one(r: int) -> None:
        p = procs[r]
        assert p.stdout and p.stderr  # PIPEs
        stderr = p.stderr
        # Not communicate(): it would close stdin, which cancels the rank.
        err: list[str] = []
        t = threading.Thread(target=lambda: err.append(stderr.read()), daemon=True)
        t.start()
        timer = threading.Timer(timeout + 30, p.kill)
        timer.start()
        stdout = p.stdout.read()
        p.wait()
        timer.cancel()
        t.join(10)
        res = _allreduce_output(cl, r, p.returncode, stdout, "".join(err))
        quiet = res.get("timeout") or res.get("cancelled")
        if not res.get("ok") and not quiet and not cancelled.is_set():
            failed_by.append(r)
            cancel()
        outs[r] = res

    with concurrent.futures.ThreadPoolExecutor(cl.n) as pool:
        list(pool.map(one, range(cl.n)))
    for p in procs:
        if p.stdin and not p.stdin.closed:
            p.stdin.close()
    for r, res in enumerate(outs):
        if res.get("cancelled") and failed_by:
            res["cause"] = f"rank {r}: stopped after rank {failed_by[0]} failed"
    if cl.runner == "docker":  # a container the head had to kill
        cl.each(lambda r: cl.sh(r, "docker rm -f "
                                f"{shlex.quote(cl.rank_name(r) + '-doctor')} 2>/dev/null"))  # fmt: skip
    return outs


def _allreduce_output(
    cl: Cluster, r: int, returncode: int, stdout: str, stderr: str
) -> dict[str, Any]:
    why = ssh_failed(subprocess.CompletedProcess([], returncode, stdout, stderr))
    if why:
        return {"rank": r, "ok": False, "fix": SSH_FIX,
                "cause": f"cannot reach {cl.hosts[r]} over ssh: {why}"}  # fmt: skip
    for line in reversed(stdout.strip().splitlines()):
        try:
            out: dict[str, Any] = json.loads(line)
            return out
        except ValueError:
            continue
    err = [x for x in (stderr or "").strip().splitlines() if x.strip()]
    runner = cl.python if cl.runner == "exec" else cl.image
    return {
        "rank": r, "ok": False,
        "cause": f"rank {r}: the all-reduce did not run (exit {returncode}): "
        f"{err[-1][:300] if err else 'no output'}",
        "fix": f"the runner's Python needs torch ({runner})",
    }  # fmt: skip


def allreduce_result(
    cl: Cluster, outs: Sequence[Mapping[str, Any]], backend: str, mib: float
) -> dict[str, Any]:
    from sglang_mimo.doctor import FAIL, PASS, result

    bad = [o for o in outs if not o.get("ok")]
    if not bad:
        o = outs[0]
        nccl = f", NCCL {o['nccl_version']}" if o.get("nccl_version") else ""
        slowest = max(x.get("seconds", 0) for x in outs)
        return result(
            "allreduce", PASS,
            f"{backend} all-reduce of {mib:g} MiB across {cl.n} rank(s) in {slowest:g} s: "
            f"{o.get('us_per_iter')} us, bus bandwidth {o.get('busbw_gbps')} GB/s{nccl}",
        )  # fmt: skip
    # The telling failure: an error a rank saw itself before one that only timed out.
    first = sorted(
        bad,
        key=lambda o: (bool(o.get("timeout") or o.get("cancelled")), o.get("rank", 0)),
    )[0]
    others = len(bad) - 1
    more = f" (and {others} other rank(s) failed or were stopped)" if others else ""
    return result(
        "allreduce", FAIL,
        f"{cl.where(first.get('rank', 0))}: {first.get('cause', 'failed')}{more}",
        first.get("fix", ""),
    )  # fmt: skip


def cmd_doctor(cl: Cluster, args: argparse.Namespace) -> int:
    from sglang_mimo.doctor import CHECKS, FAIL, SKIP, format_result, result

    only = set(args.only or ())
    skip = set(args.skip or ())

    def wanted(name: str) -> bool:
        return (not only or name in only) and name not in skip

    results: list[tuple[int | None, dict[str, Any]]] = []  # (rank or None, result)
    if wanted("addrs"):
        results += [(None, c) for c in address_checks(cl)]
    # "peers" is doctor.py's ssh from a node; here the head's own probe below is it.
    node_skip = [c for c in CHECKS if not wanted(c) or c == "peers"]
    model_bytes: int | None = None
    model = cl.model_path()
    if model and R.is_local_path(model) and os.path.isdir(model):
        model_bytes = sum(local_files(model).values())
    probes = cl.each(lambda r: probe(cl, r))
    if wanted("ssh"):
        results += [(r, ssh_result(cl, r, p)) for r, p in enumerate(probes)
                    if cl.hosts[r] != "local"]  # fmt: skip
    if wanted("clock"):
        results.append((None, clock_result(cl, probes, args.max_skew)))
    reached = [r for r, p in enumerate(probes) if p["ok"]]
    if len(node_skip) < len(CHECKS):
        per_rank = dict(zip(reached, cl.each(
            lambda r: node_check(cl, r, model_bytes, node_skip), reached)))  # fmt: skip
        for r, rs in sorted(per_rank.items()):
            results += [(r, x) for x in rs if x["status"] != SKIP or args.verbose]
        if wanted("mtu"):
            mtus = {r: x.get("mtu") for r, rs in sorted(per_rank.items()) for x in rs
                    if x["check"] == "nic" and x.get("mtu")}  # fmt: skip
            if len(set(mtus.values())) > 1:
                text = ", ".join(f"rank {r} {m}" for r, m in sorted(mtus.items()))
                results.append((None, result(
                    "mtu", FAIL, f"the fabric interfaces' MTU differ: {text}",
                    "set one MTU on every node and switch port (9000 for RoCE, "
                    "`ip link set IF mtu 9000`)",
                )))  # fmt: skip
            elif mtus:
                results.append((None, result("mtu", "pass",
                                             f"MTU {next(iter(mtus.values()))} on every rank")))  # fmt: skip
    failed = any(x["status"] == FAIL for _, x in results)
    if wanted("allreduce"):
        if failed:
            results.append((None, result("allreduce", SKIP,
                                         "not run: fix the failures above first")))  # fmt: skip
        else:
            t0 = time.monotonic()
            outs = run_allreduce(cl, args.backend, args.timeout, args.mib)
            res = allreduce_result(cl, outs, args.backend, args.mib)
            res["seconds"] = round(time.monotonic() - t0, 2)
            res["ranks"] = outs
            results.append((None, res))
    if args.json:
        json.dump([{"rank": r, **x} for r, x in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for rank, x in results:
            prefix = f"rank {rank} " if rank is not None else "all    "
            say(format_result(x, prefix=prefix))
    return EXIT_FAIL if any(x["status"] == FAIL for _, x in results) else 0


# ---------------------------------------------------------------------------- CLI


COMMANDS = {
    "doctor": cmd_doctor, "setup": cmd_setup, "start": cmd_start,
    "status": cmd_status, "logs": cmd_logs, "stop": cmd_stop,
}  # fmt: skip


def _common(p: argparse.ArgumentParser, recipe: bool = True) -> None:
    if recipe:
        p.add_argument(
            "recipe", nargs="?", help="recipe name or YAML path (or `recipe:`)"
        )
    p.add_argument("--inventory", "-i", help="YAML file of the values below")
    p.add_argument("--hosts", help="ssh destinations in rank order, comma-separated")
    p.add_argument("--rank-addr", help="each rank's fabric address, comma-separated")
    p.add_argument(
        "--head-addr", help=f"HOST:PORT of rank 0 (default RANK0_ADDR:{R.HEAD_PORT})"
    )
    p.add_argument("--nic", help="fabric network interface ($SGLANG_MIMO_NIC)")
    p.add_argument("--ib-hca", help="RDMA device(s) ($SGLANG_MIMO_IB_HCA)")
    p.add_argument("--model-path", help="checkpoint directory, the same on every rank")
    p.add_argument("--runner", choices=["docker", "exec"], help="default docker")
    p.add_argument("--image", help="image (docker runner)")
    p.add_argument("--python", help="interpreter on the hosts (exec runner)")
    p.add_argument("--log-dir", help=f"where exec ranks log (default {LOG_DIR})")
    p.add_argument(
        "--ssh-option", action="append", help="extra ssh argument (repeatable)"
    )
    p.add_argument(
        "--env", action="append", help="NAME=VALUE for every rank (repeatable)"
    )
    p.add_argument("--recipes-dir", help=argparse.SUPPRESS)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "cluster",
        help="drive every rank of a recipe from the head node over ssh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    helps = {
        "doctor": "preflight on every rank, then an all-reduce across them",
        "setup": "copy the checkpoint and load the image on every rank",
        "start": "start every rank, the head first",
        "status": "each rank's process, health and log",
        "logs": "one rank's log",
        "stop": "stop every rank (containers and logs are kept)",
    }
    for action, text in helps.items():
        a = sub.add_parser(action, help=text, description=text)
        if action == "logs":
            a.add_argument("recipe", nargs="?", help="recipe (or `recipe:`)")
            a.add_argument("rank", type=int, help="rank number")
            _common(a, recipe=False)
            a.add_argument("--tail", type=int, default=200)
            a.add_argument("--follow", "-f", action="store_true")
        else:
            _common(a)
        if action == "start":
            a.add_argument(
                "--dry-run", action="store_true", help="print each rank's command"
            )
            a.add_argument("--settle", type=float, default=10.0,
                           help="seconds to wait before checking every rank runs (10)")  # fmt: skip
            a.add_argument("--restart", help="docker restart policy (default no)")
        if action == "stop":
            a.add_argument(
                "--grace", type=int, default=30, help="seconds before SIGKILL"
            )
        if action == "status":
            a.add_argument("--json", action="store_true")
        if action == "setup":
            a.add_argument("--image-from", choices=["pull", "copy"],
                           help="default: copy when the head has the image, else pull")  # fmt: skip
            a.add_argument("--no-image", action="store_true")
            a.add_argument("--no-model", action="store_true")
        if action == "doctor":
            names = ["addrs", "ssh", "clock", "nic", "hca", "gid", "addr", "disk",
                     "memlock", "shm", "driver", "gpu", "mtu", "allreduce"]  # fmt: skip
            a.add_argument("--only", action="append", choices=names,
                           help="run only this check (repeatable)")  # fmt: skip
            a.add_argument("--skip", action="append", choices=names,
                           help="leave a check out (repeatable)")  # fmt: skip
            a.add_argument("--backend", choices=["nccl", "gloo"], default="nccl",
                           help="all-reduce backend (default nccl; gloo runs on the CPU)")  # fmt: skip
            a.add_argument("--timeout", type=float, default=120.0,
                           help="seconds the all-reduce may take, start to end (120)")  # fmt: skip
            a.add_argument(
                "--mib", type=float, default=64.0, help="all-reduce size (64 MiB)"
            )
            a.add_argument("--max-skew", type=float, default=1.0,
                           help="seconds a rank's clock may differ from the head's (1)")  # fmt: skip
            a.add_argument("--json", action="store_true")
            a.add_argument(
                "--verbose", "-v", action="store_true", help="show skipped checks"
            )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    if not getattr(args, "action", None):
        print("cluster: error: give an action: " + ", ".join(COMMANDS), file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        cl = build(args, environ)
        cl.launches()  # every rank renders, or the input is wrong
        return COMMANDS[args.action](cl, args)
    except _BadRecipe as e:
        print(f"cluster: error: {e}", file=sys.stderr)
        return EXIT_BAD_RECIPE
    except (ClusterError, R.RecipeError) as e:
        print(f"cluster: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
