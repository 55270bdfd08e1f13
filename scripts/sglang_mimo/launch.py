"""Run a launch recipe (recipes/*.yaml) on one node rank, or render it for docker / Kubernetes.

    launch RECIPE --node-rank N [--head-addr HOST:PORT] [--rank-addr ADDR] [--nic IF]
           [--ib-hca DEV] [--model-path PATH] [--dry-run [--json]]
    launch RECIPE --render docker [--node-rank N] [...]   docker run line(s), one per rank
    launch RECIPE --render k8s [...]                      LeaderWorkerSet manifest (YAML)
    launch --dry-run --json                               every recipe x rank, placeholders
    launch --list

Per-site values come from the flags above or from SGLANG_MIMO_MODEL_PATH,
SGLANG_MIMO_RANK_ADDR, SGLANG_MIMO_NIC, SGLANG_MIMO_IB_HCA, SGLANG_MIMO_HEAD_ADDR.
Without --dry-run the rank's environment is set and ``python3 -m sglang.launch_server``
replaces this process (exec). Multi-node runs use torch.distributed/NCCL as SGLang does
(--nnodes, --node-rank, --dist-init-addr), no Ray.

Exit codes: 0 ok; 2 bad input (unknown recipe, rank out of range, malformed address,
addresses that disagree, missing per-site value, a local checkpoint whose config.json
is unreadable, another model's or lacks a field, usage); 3 a recipe fails its schema or the project's rules;
127 the Python to exec was not found. Nothing is launched unless the exit is the exec.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sglang_mimo import rank as K
from sglang_mimo import recipes as R
from sglang_mimo import run_docker, run_exec, run_k8s, sizing, tables
from sglang_mimo.paths import REPO

EXIT_BAD_INPUT = 2  # RecipeError's code
EXIT_BAD_RECIPE = 3  # RecipeInvalid's code


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "launch",
        help="run or render a launch recipe for a node rank",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "recipe", nargs="?", help="recipe name (see --list) or path to a YAML file"
    )
    p.add_argument(
        "--node-rank", type=int, help="this node's rank, 0..nodes-1 (0 for one node)"
    )
    p.add_argument(
        "--head-addr", help="rank 0's HOST:PORT for torch.distributed (multi-node)"
    )
    for key, (flag, env) in R.SITE_INPUTS.items():
        p.add_argument(flag, dest=key, help=f"per-site value (or ${env})")
    p.add_argument(
        "--render",
        choices=["exec", "docker", "k8s"],
        default="exec",
        help="exec (default): run the server here; docker: docker run line(s); "
        "k8s: LeaderWorkerSet manifest",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would run, run nothing"
    )
    p.add_argument(
        "--json", action="store_true", help="with --dry-run: JSON array output"
    )
    p.add_argument("--list", action="store_true", help="list the known recipes")
    p.add_argument(
        "--image", help="image for docker/k8s (default: sglang-mimo:<dist>-<target>)"
    )
    p.add_argument(
        "--restart",
        default="no",
        metavar="POLICY",
        help="docker: the containers' restart policy (no, on-failure[:N], "
        "unless-stopped, always; default no)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="docker: put `docker rm -f NAME` before each line (a stopped or crashed "
        "rank's container keeps its name and logs until removed)",
    )
    p.add_argument(
        "--python", default="python3", help="interpreter to exec (default python3)"
    )
    p.add_argument(
        "--rdma-resource",
        default=run_k8s.RDMA_RESOURCE,
        help="k8s: device-plugin resource of the RDMA devices "
        f"(default {run_k8s.RDMA_RESOURCE})",
    )
    p.add_argument("--recipes-dir", help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    return p


def _err(msg: str) -> None:
    print(f"launch: error: {msg}", file=sys.stderr)


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        return _run(args, environ)
    except R.RecipeError as e:  # RecipeInvalid: 3, other bad input: 2
        _err(str(e))
        return e.code
    except sizing.ConfigError as e:
        _err(str(e))
        return EXIT_BAD_INPUT


def _load(name: str, args: argparse.Namespace) -> R.Recipe:
    return R.load_recipe(name, args.recipes_dir)


def _run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.list:
        for name in R.known_recipes(args.recipes_dir):
            r = _load(name, args)
            hw = r.hardware
            print(f"{name:28} {hw.nodes} x {hw.gpus_per_node} {hw.gpu}, "
                  f"image {r.image.target}")  # fmt: skip
        return 0
    if args.json and not args.dry_run:
        raise R.RecipeError("--json needs --dry-run")
    if args.recipe is None:
        if not args.dry_run:
            raise R.RecipeError(
                "give a recipe (or --dry-run for all); known recipes: "
                + ", ".join(R.known_recipes(args.recipes_dir))
            )
        return _dry_run_all(args)

    recipe = _load(args.recipe, args)
    n = recipe.hardware.nodes
    if args.render == "k8s":
        return _render_k8s(recipe, args, environ)

    if args.render == "docker" and args.node_rank is None:
        ranks = list(range(n))
    else:
        rank = args.node_rank
        if rank is None:
            if n > 1:
                raise R.RecipeError(
                    f"recipe {recipe.name} runs on {n} nodes: give --node-rank 0..{n - 1}"
                )
            rank = 0
        K.check_rank(recipe, rank)
        ranks = [rank]
    head = args.head_addr or environ.get(R.HEAD_ADDR_INPUT[1])
    sites = {rank: _site_for_rank(recipe, args, environ, rank, ranks) for rank in ranks}
    launches = [K.render_rank(recipe, rank, sites[rank], head) for rank in ranks]
    if n > 1:
        addrs = {r: v["rank_addr"] for r, v in sites.items() if "rank_addr" in v}
        assert head, "render_rank refuses a multi-node rank without --head-addr"
        R.check_rank_addrs(head, _all_rank_addrs(args, environ) or addrs)

    if args.render == "docker":
        restart = run_docker.check_restart(args.restart)
        model = K.argv_value(launches[0].argv, "--model-path")
        if model:
            _check_local_config(recipe, model)  # the copy here, when there is one
        image = args.image or run_docker.image_name(recipe)
        for launch in launches:
            print(f"# {recipe.name}: node rank {launch.node_rank} of {n}")
            if args.replace:
                name = run_docker.container_name(recipe, launch.node_rank)
                print(f"docker rm -f {name} 2>/dev/null")
            argv = run_docker.docker_argv(recipe, launch, image, restart)
            print(K.shell_line(argv, breaks={argv.index(image)}))
        return 0
    (launch,) = launches
    model = K.argv_value(launch.argv, "--model-path")
    if args.dry_run:
        if model and R.is_local_path(model) and not os.path.isdir(model):
            print(f"launch: warning: --model-path {model}: no such directory here",
                  file=sys.stderr)  # fmt: skip
        _print_launches([launch], args.json, args.python, {recipe.name: recipe})
        return 0
    if model:
        R.check_model_path_here(model)
        _check_local_config(recipe, model)
    return run_exec.exec_rank(launch, args.python, environ)


def _check_local_config(recipe: R.Recipe, model: str) -> None:
    """A local checkpoint's config.json must be this recipe's model (ConfigError)."""
    if R.is_local_path(model) and (Path(model) / "config.json").is_file():
        sizing.load_config(model, recipe.model.architecture)


def _render_k8s(
    recipe: R.Recipe, args: argparse.Namespace, environ: Mapping[str, str]
) -> int:
    """LeaderWorkerSet YAML. What differs per rank comes from LWS when the pods run:
    the head is the leader pod, a pod's address its own (see run_k8s.lws_manifest)."""
    if args.rank_addr:
        raise R.RecipeError(
            "--render k8s takes no --rank-addr: a pod may land on any node, so each "
            "pod reads its own address when it starts (the pod IP, or under the host "
            "network the IPv4 address of --nic on its node); per-node addresses are "
            "for --render docker and exec, one line per node"
        )
    need = R.used_placeholders(recipe) - {"rank_addr"}
    values = R.resolve_site(recipe, _given(args), environ, need)
    port = R.HEAD_PORT
    head = args.head_addr or environ.get(R.HEAD_ADDR_INPUT[1])
    if head and recipe.hardware.nodes > 1:
        head = R.check_head_addr(head)
        port = int(head.rsplit(":", 1)[1])
        print(f"launch: note: --render k8s: the head is the LeaderWorkerSet leader "
              f"($(LWS_LEADER_ADDRESS)); of {head} only the port {port} is used",
              file=sys.stderr)  # fmt: skip
    manifest = run_k8s.lws_manifest(
        recipe,
        values,
        args.image or run_docker.image_name(recipe),
        head_port=port,
        rdma_resource=args.rdma_resource,
    )
    sys.stdout.write(_yaml_text(manifest))
    return 0


def _yaml_text(data: Any) -> str:
    """Plain YAML (no anchors); a multi-line string as a literal block, as written."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    dumped: str = yaml.dump(data, Dumper=Dumper, sort_keys=False, width=100)
    return dumped


def _given(args: argparse.Namespace) -> dict[str, str | None]:
    return {key: getattr(args, key, None) for key in R.SITE_INPUTS}


def _all_rank_addrs(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> dict[int, str] | None:
    """{rank: address} of a --rank-addr comma list (every rank), else None."""
    addr = args.rank_addr or environ.get(R.SITE_INPUTS["rank_addr"][1])
    if addr and "," in addr:
        return dict(enumerate(a.strip() for a in addr.split(",")))
    return None


def _site_for_rank(
    recipe: R.Recipe,
    args: argparse.Namespace,
    environ: Mapping[str, str],
    rank: int,
    ranks: Sequence[int],
) -> dict[str, str]:
    """Per-site values of one rank; --rank-addr may list one address per rank (a,b,c,d)."""
    given = _given(args)
    addr = given.get("rank_addr") or environ.get(R.SITE_INPUTS["rank_addr"][1])
    if addr and "," in addr:
        addrs = [a.strip() for a in addr.split(",")]
        n = recipe.hardware.nodes
        if len(addrs) != n:
            raise R.RecipeError(
                f"--rank-addr lists {len(addrs)} addresses; recipe {recipe.name} has {n} ranks"
            )
        given["rank_addr"] = addrs[rank]
    elif addr and len(ranks) > 1 and "rank_addr" in R.used_placeholders(recipe):
        raise R.RecipeError(
            "rendering every rank: give --rank-addr as a comma list, one address per rank, "
            "or --node-rank for one rank"
        )
    return R.resolve_site(recipe, given, environ)


def _dry_run_all(args: argparse.Namespace) -> int:
    """Every recipe and node rank with placeholder site values (RFC 5737 addresses)."""
    out: list[K.RankLaunch] = []
    problems: list[str] = []
    loaded: dict[str, R.Recipe] = {}
    for name in R.known_recipes(args.recipes_dir):
        try:
            recipe = _load(name, args)
        except R.RecipeInvalid as e:
            problems.append(str(e))
            continue
        loaded[name] = recipe
        for rank in range(recipe.hardware.nodes):
            out.append(
                K.render_rank(
                    recipe,
                    rank,
                    K.placeholder_site(recipe, rank),
                    K.placeholder_head_addr(),
                )
            )
    if problems:
        raise R.RecipeInvalid("\n".join(problems))
    _print_launches(out, args.json, args.python, loaded)
    return 0


def _print_launches(
    launches: Sequence[K.RankLaunch],
    as_json: bool,
    python: str,
    recipes: Mapping[str, R.Recipe],
) -> None:
    # Sized first: a config.json that cannot be sized stops the run before any output.
    table = _memory_table(recipes.values(), launches)
    if as_json:
        json.dump([x.as_json() for x in launches], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    for x in launches:
        print(f"# {x.recipe}: node rank {x.node_rank}")
        argv = ["env", *(f"{k}={v}" for k, v in x.env.items())] if x.env else []
        breaks = {len(argv)}
        argv += [python, "-m", "sglang.launch_server", *x.argv]
        print(K.shell_line(argv, breaks))
        print(_reasons_block(recipes[x.recipe], x))
    print(table)


def _reasons_block(recipe: R.Recipe, launch: K.RankLaunch) -> str:
    """Each flag with a reason, its rendered value and the reason beside it."""
    reasons = recipe.reasons
    rows = []
    for i, tok in enumerate(launch.argv):
        if tok in reasons:
            nxt = launch.argv[i + 1] if i + 1 < len(launch.argv) else ""
            value = "" if nxt.startswith("--") else nxt
            rows.append((f"{tok} {value}".strip(), reasons[tok]))
    if not rows:
        return "# (no flag departs from SGLang's defaults)"
    width = min(max(len(f) for f, _ in rows), 40)
    lines = ["# why each flag departs from SGLang's default:"]
    lines += [f"#   {f:<{width}}  {why}" for f, why in rows]
    return "\n".join(lines)


def _memory_table(recipes: Iterable[R.Recipe], launches: Sequence[K.RankLaunch]) -> str:
    """Memory per GPU of each recipe shown, computed from the model's config.json."""
    shown = {x.recipe for x in launches}
    rows = []
    for r in recipes:
        if r.name not in shown:
            continue
        model_dir = _model_dir_for_sizing(r, launches)
        s = sizing.size_recipe(r, r.server_args, model_dir)
        hw = r.hardware
        rows.append([
            r.name, f"{hw.nodes}x{hw.gpus_per_node} {hw.gpu}",
            f"{hw.gpu_memory_gib}", f"{s.budget_gib:.1f}", f"{s.weights_gib:.1f}",
            f"{s.kv_pool_gib:.1f}", f"{s.kv_bytes_per_token}",
            f"{s.requests_per_dp_rank} x {s.context_length}", f"{s.kv_needed_gib:.1f}",
            "yes" if s.fits else "NO", _shown_path(model_dir / "config.json"),
        ])  # fmt: skip
    head = ["recipe", "GPUs", "GiB/GPU", "static GiB", "weights GiB", "KV pool GiB",
            "KV B/token", "reqs/DP x ctx", "KV needed GiB", "fits", "config"]  # fmt: skip
    table = tables.render(head, rows, markdown=False)
    out = ["# memory per GPU (sglang_mimo.sizing, from the model's config.json):"]
    out += [f"# {line}" for line in table.splitlines()]
    return "\n".join(out)


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _model_dir_for_sizing(recipe: R.Recipe, launches: Sequence[K.RankLaunch]) -> Path:
    """The checkpoint's own config.json when --model-path is a local checkpoint,
    else the released config shipped in recipes/configs."""
    for x in launches:
        if x.recipe == recipe.name:
            path = K.argv_value(x.argv, "--model-path")
            if path and (Path(path) / "config.json").is_file():
                return Path(path)
    return sizing.config_dir(recipe.model.id)
