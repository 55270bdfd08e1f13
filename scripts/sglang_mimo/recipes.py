"""Launch recipes (``recipes/*.yaml``): loading, validation and rendering.

A recipe is data: model, hardware, image target, per-site inputs, environment and the
arguments of ``python3 -m sglang.launch_server``. This module checks a recipe against
``recipes/schema.json`` and against the project's own rules (see ``semantic_errors``),
and turns it into the environment and argv of one node rank, a ``docker run`` line, or
a Kubernetes LeaderWorkerSet manifest. It never starts anything; ``launch.py`` does.
"""

import copy
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from sglang_mimo import paths

SCHEMA_FILE = paths.RECIPES / "schema.json"
ALLOWLIST_FILE = paths.RECIPES / "env-allowlist.yaml"

# Per-site inputs a recipe may use as {placeholders}: launcher flag and environment variable.
SITE_INPUTS = {
    "model_path": ("--model-path", "SGLANG_MIMO_MODEL_PATH"),
    "rank_addr": ("--rank-addr", "SGLANG_MIMO_RANK_ADDR"),
    "nic": ("--nic", "SGLANG_MIMO_NIC"),
    "ib_hca": ("--ib-hca", "SGLANG_MIMO_IB_HCA"),
}
HEAD_ADDR_INPUT = ("--head-addr", "SGLANG_MIMO_HEAD_ADDR")

# Flags the launcher owns: it adds them per rank, a recipe must not carry them.
LAUNCHER_FLAGS = ("--nnodes", "--node-rank", "--dist-init-addr", "--nccl-init-addr")
SPEC_FLAGS = (
    "--speculative-algorithm",
    "--speculative-num-steps",
    "--speculative-eagle-topk",
    "--speculative-num-draft-tokens",
    "--enable-multi-layer-eagle",
)
# Attention data parallelism: on v0.5.23 an audio request hangs the server under it
# (sglang#37059) unless the series carries the backport of sglang#37060.
ATTN_DP_FLAGS = ("--attn-dp-size", "--attention-data-parallel-size")
AUDIO_MODALITIES = {"audio", "transcription"}
AUDIO_UNDER_ATTN_DP_PATCH = "0007-mimo-audio-reduce-over-attn-tp-group.patch"

# The head's torch.distributed port: the same number in the launcher, its docs, the
# image docs and the Kubernetes render (overridable per run with --head-addr HOST:PORT).
HEAD_PORT = 20000
# Values used by ``--dry-run`` without a recipe: RFC 5737 documentation addresses.
PLACEHOLDER_HEAD_PORT = HEAD_PORT


def placeholder_rank_addr(rank):
    return f"192.0.2.{10 + rank}"


PLACEHOLDER_RE = re.compile(r"\{([a-z][a-z_]*)\}")


class RecipeError(Exception):
    """A recipe or a launcher input is wrong; the message says what and how to fix it."""


# --------------------------------------------------------------------------- loading


def _yaml():
    try:
        import yaml
    except ImportError as e:  # pragma: no cover - pyyaml is a dependency
        raise RecipeError("reading recipes needs PyYAML (pip install pyyaml)") from e
    return yaml


def known_recipes(recipes_dir=None):
    """Map recipe name -> path for every ``*.yaml`` recipe in the directory."""
    d = Path(recipes_dir or paths.RECIPES)
    return {
        p.stem: p for p in sorted(d.glob("*.yaml")) if p.name != ALLOWLIST_FILE.name
    }


def load_schema():
    with open(SCHEMA_FILE, encoding="utf-8") as f:
        return json.load(f)


def load_allowlist(path=ALLOWLIST_FILE):
    with open(path, encoding="utf-8") as f:
        return _yaml().safe_load(f)["variables"]


def resolve_recipe_path(name_or_path, recipes_dir=None):
    """A recipe name (``mimo-v2.5-gb10x4``) or a path to a YAML file."""
    known = known_recipes(recipes_dir)
    if name_or_path in known:
        return known[name_or_path]
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    raise RecipeError(
        f"unknown recipe {name_or_path!r}; known recipes: "
        + (", ".join(known) if known else "(none)")
    )


def load_recipe(name_or_path, recipes_dir=None):
    """Load and validate a recipe; raise RecipeError listing every problem."""
    path = resolve_recipe_path(name_or_path, recipes_dir)
    try:
        with open(path, encoding="utf-8") as f:
            data = _yaml().safe_load(f)
    except _yaml().YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from e
    problems = validate(data, path.stem)
    if problems:
        raise RecipeError(
            f"recipe {path} fails validation:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return data


# ------------------------------------------------------------------------ validation


def schema_errors(data, schema=None):
    """Problems of ``data`` against the JSON Schema, as readable strings."""
    schema = schema or load_schema()
    try:
        import jsonschema
    except ImportError:
        from sglang_mimo.minischema import iter_errors

        return [f"{loc}: {msg}" for loc, msg in iter_errors(data, schema)]
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        loc = "/".join(str(p) for p in err.absolute_path) or "(top)"
        out.append(f"{loc}: {err.message}")
    return out


def server_arg_items(recipe):
    """The recipe's server arguments as (flag, value-or-None) pairs, in order."""
    items = []
    for entry in recipe["server_args"]:
        if isinstance(entry, str):
            items.append((entry, None))
        else:
            ((flag, value),) = entry.items()
            items.append((flag, value))
    return items


def _placeholders_in(text):
    return PLACEHOLDER_RE.findall(str(text))


def used_placeholders(recipe):
    names = set()
    for section in ("common", "per_rank"):
        for value in recipe["env"][section].values():
            names.update(_placeholders_in(value))
    for _, value in server_arg_items(recipe):
        if value is not None:
            names.update(_placeholders_in(value))
    return names


def _flag_value(recipe, *flags):
    for flag, value in server_arg_items(recipe):
        if flag in flags:
            return value
    return None


def semantic_errors(recipe, name=None, allowlist=None):
    """Rules a JSON Schema cannot say. Assumes ``recipe`` passed the schema."""
    allowlist = load_allowlist() if allowlist is None else allowlist
    errs = []
    if name is not None and recipe["name"] != name:
        errs.append(f"name: {recipe['name']!r} must equal the file name {name!r}")

    items = server_arg_items(recipe)
    flags = [f for f, _ in items]
    for dup in sorted({f for f in flags if flags.count(f) > 1}):
        errs.append(f"server_args: {dup} appears more than once")
    for flag in flags:
        if flag in LAUNCHER_FLAGS:
            errs.append(
                f"server_args: {flag} is set by the launcher per rank; remove it"
            )
        if flag in SPEC_FLAGS:
            errs.append(
                f"server_args: {flag} comes from the 'speculative' block; remove it"
            )
        if flag == "--enable-dp-attention":
            errs.append(
                "server_args: --enable-dp-attention is deprecated in v0.5.23; "
                "use --attn-dp-size N (without --dp-size)"
            )
    if _flag_value(recipe, "--model-path") != "{model_path}":
        errs.append(
            'server_args: needs --model-path: "{model_path}" (a per-site value)'
        )
    if _flag_value(recipe, "--reasoning-parser") != "mimo":
        errs.append(
            "server_args: --reasoning-parser must be mimo (see recipes/README.md)"
        )
    if _flag_value(recipe, "--tool-call-parser") != "mimo":
        errs.append(
            "server_args: --tool-call-parser must be mimo (see recipes/README.md)"
        )

    # MTP <-> speculative block.
    if recipe["model"]["mtp"] and "speculative" not in recipe:
        errs.append("speculative: the model has MTP layers; add the speculative block")
    if not recipe["model"]["mtp"] and "speculative" in recipe:
        errs.append("speculative: the model has no MTP layers; drop the block")

    # Attention DP and audio (sgl-project/sglang#37059, fixed by #37060 = patch 0007).
    audio = AUDIO_MODALITIES & set(recipe["model"]["modalities"])
    attn_dp = _flag_value(recipe, *ATTN_DP_FLAGS)
    if audio and attn_dp is not None and int(attn_dp) > 1:
        if AUDIO_UNDER_ATTN_DP_PATCH not in series_names():
            errs.append(
                f"server_args: --attn-dp-size {attn_dp} with {'/'.join(sorted(audio))} "
                "served: audio requests hang under attention DP on v0.5.23 "
                f"(sgl-project/sglang#37059) unless patches/series carries "
                f"{AUDIO_UNDER_ATTN_DP_PATCH}"
            )
        if "--mm-enable-dp-encoder" not in flags:
            errs.append(
                f"server_args: --attn-dp-size {attn_dp} with a multimodal model needs "
                "--mm-enable-dp-encoder (the vision encoder refuses attention TP "
                "narrower than TP otherwise)"
            )

    # Reasons: every flag with a reason is one the recipe renders.
    rendered = set(flags) | (set(SPEC_FLAGS) if recipe.get("speculative") else set())
    for flag in sorted(set(recipe.get("reasons", {})) - rendered):
        errs.append(f"reasons: {flag} is not a flag of this recipe")

    # Parallel layout against the hardware.
    hw = recipe["hardware"]
    gpus = hw["gpus_per_node"] * hw["nodes"]
    tp = int(_flag_value(recipe, "--tp-size", "--tensor-parallel-size") or 1)
    pp = int(_flag_value(recipe, "--pp-size", "--pipeline-parallel-size") or 1)
    dp = int(_flag_value(recipe, "--dp-size", "--data-parallel-size") or 1)
    if tp * pp * dp != gpus:
        errs.append(
            f"server_args: tp {tp} x pp {pp} x dp {dp} = {tp * pp * dp} ranks, but the "
            f"hardware has {gpus} GPUs ({hw['nodes']} x {hw['gpus_per_node']})"
        )
    if attn_dp is not None and tp % int(attn_dp):
        errs.append(f"server_args: --attn-dp-size {attn_dp} must divide --tp-size {tp}")

    # Memory per GPU, from the model's released config (sizing.py).
    for flag in ("--mem-fraction-static", "--max-running-requests", "--context-length"):
        if _flag_value(recipe, flag) is None:
            errs.append(f"server_args: needs {flag} (the memory check sizes against it)")
    if not errs and tp * pp * dp == gpus:
        from sglang_mimo import sizing

        try:
            fit = sizing.size_recipe(
                recipe, items, sizing.config_dir(recipe["model"]["id"])
            )
        except (FileNotFoundError, ValueError) as e:
            errs.append(f"memory: {e}")
        else:
            if sizing.problem(recipe, fit):
                errs.append(sizing.problem(recipe, fit))

    # Placeholders and per-site values.
    used = used_placeholders(recipe)
    for unknown in sorted(used - set(SITE_INPUTS)):
        errs.append(
            f"{{{unknown}}} is not a per-site value; use one of "
            + ", ".join("{%s}" % k for k in SITE_INPUTS)
        )
    for k in sorted(used & set(SITE_INPUTS) - set(recipe["site"])):
        errs.append(f"site: {{{k}}} is used but site.{k} is not described")
    for k in sorted(set(recipe["site"]) - used):
        errs.append(f"site: site.{k} is described but never used")
    if hw["nodes"] > 1 and "rank_addr" not in used:
        errs.append(
            'env.per_rank: a multi-node recipe sets SGLANG_HOST_IP: "{rank_addr}"'
        )
    for section in ("common", "per_rank"):
        for key in recipe["env"][section]:
            if key not in allowlist:
                errs.append(
                    f"env.{section}: {key} is not in recipes/env-allowlist.yaml "
                    "(variables SGLang, PyTorch or NCCL read)"
                )
    return errs


def series_names():
    """Patch file names of patches/series (the one series parser)."""
    from sglang_mimo.series import read_series

    return read_series()


def validate(data, name=None):
    """All problems of a loaded recipe: schema first, then the project's rules."""
    if not isinstance(data, dict):
        return ["(top): a recipe is a YAML mapping"]
    errs = schema_errors(data)
    if errs:
        return errs
    return semantic_errors(data, name)


# ---------------------------------------------------------------------- site values

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IFLIST_RE = re.compile(r"^[=^]?[A-Za-z0-9_.:@-]+(?:,[A-Za-z0-9_.:@-]+)*$")


def check_host(value, what):
    """An IPv4/IPv6 address or a DNS name; returns it, raises RecipeError otherwise."""
    v = value.strip()
    if v.startswith("[") and v.endswith("]"):
        v = v[1:-1]
    try:
        ipaddress.ip_address(v)
        return value.strip()
    except ValueError:
        pass
    if _HOSTNAME_RE.match(v) and not re.fullmatch(r"[0-9.]+", v):
        return value.strip()
    raise RecipeError(f"{what}: {value!r} is not an IP address or host name")


def check_head_addr(value, what="--head-addr"):
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6), as --dist-init-addr expects."""
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):([0-9]{1,5})", value.strip())
    if not m:
        raise RecipeError(
            f"{what}: {value!r} is not HOST:PORT (e.g. 192.168.100.10:{HEAD_PORT})"
        )
    host, port = m.group(1), int(m.group(2))
    check_host(host, what)
    if not 1 <= port <= 65535:
        raise RecipeError(f"{what}: port {port} is outside 1..65535")
    return value.strip()


HUB_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def is_local_path(value):
    """A --model-path that names a directory (absolute, ./x, ../x, ~/x, or one that
    exists here), as opposed to a Hugging Face hub id (org/name)."""
    v = value.strip()
    return (
        v.startswith(("/", "./", "../", "~"))
        or v in (".", "..")
        or not HUB_ID_RE.match(v)
        or Path(v).exists()
    )


def normalize_model_path(value):
    """Local paths become absolute (a relative one is relative to here); hub ids stay."""
    if is_local_path(value):
        return str(Path(value.strip()).expanduser().resolve())
    return value.strip()


def check_model_path_here(value):
    """Before launching on this node: a local --model-path must be a directory here."""
    if is_local_path(value) and not Path(value).is_dir():
        raise RecipeError(
            f"--model-path {value}: no such directory on this node (a local checkpoint "
            "directory, or a hub id such as XiaomiMiMo/MiMo-V2.5)"
        )
    return value


def check_site_value(key, value):
    flag = SITE_INPUTS[key][0]
    if key == "rank_addr":
        return check_host(value, flag)
    if key in ("nic", "ib_hca"):
        if not _IFLIST_RE.match(value):
            raise RecipeError(f"{flag}: {value!r} is not an interface/device name list")
        return value
    if not value.strip() or "\n" in value:
        raise RecipeError(f"{flag}: empty or multi-line value")
    if key == "model_path":
        return normalize_model_path(value)
    return value


def resolve_site(recipe, given, environ, need=None):
    """Per-site values: flag, then environment variable, then the recipe's default.

    ``given`` maps site key -> flag value or None. Raises RecipeError naming every
    missing value with its flag, variable, help and example.
    """
    need = used_placeholders(recipe) if need is None else need
    values, missing = {}, []
    for key in sorted(need):
        flag, env = SITE_INPUTS[key]
        spec = recipe["site"][key]
        value = given.get(key) or environ.get(env) or spec.get("default")
        if not value:
            hint = f" (e.g. {spec['example']})" if "example" in spec else ""
            missing.append(f"  {flag} / ${env}: {spec['help']}{hint}")
            continue
        values[key] = check_site_value(key, value)
    if missing:
        raise RecipeError(
            f"recipe {recipe['name']} needs per-site values:\n" + "\n".join(missing)
        )
    return values


def substitute(text, values):
    return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], str(text))


# ------------------------------------------------------------------------ rendering


@dataclass
class RankLaunch:
    recipe: str
    node_rank: int
    env: dict = field(default_factory=dict)
    argv: list = field(default_factory=list)

    def as_json(self):
        return {
            "recipe": self.recipe,
            "node_rank": self.node_rank,
            "env": self.env,
            "argv": self.argv,
        }


def _fmt(value):
    if isinstance(value, float):
        return repr(value)
    return str(value)


def check_rank(recipe, node_rank):
    n = recipe["hardware"]["nodes"]
    if not isinstance(node_rank, int) or not 0 <= node_rank < n:
        raise RecipeError(
            f"--node-rank {node_rank} is outside 0..{n - 1} "
            f"(recipe {recipe['name']} runs on {n} node{'s' if n > 1 else ''})"
        )


def spec_args(recipe):
    spec = recipe.get("speculative")
    if not spec:
        return []
    argv = [
        "--speculative-algorithm", spec["algorithm"],
        "--speculative-num-steps", str(spec["num_steps"]),
        "--speculative-eagle-topk", str(spec["eagle_topk"]),
        "--speculative-num-draft-tokens", str(spec["num_draft_tokens"]),
    ]  # fmt: skip
    if spec["multi_layer_eagle"]:
        argv.append("--enable-multi-layer-eagle")
    return argv


def render_env(recipe, values):
    env = {k: substitute(v, values) for k, v in recipe["env"]["common"].items()}
    env.update({k: substitute(v, values) for k, v in recipe["env"]["per_rank"].items()})
    return env


def render_argv(recipe, values, node_rank, head_addr, rank_flags=True):
    argv = []
    for flag, value in server_arg_items(recipe):
        argv.append(flag)
        if value is not None:
            argv.append(substitute(_fmt(value), values))
    argv += spec_args(recipe)
    n = recipe["hardware"]["nodes"]
    if n > 1 and rank_flags:
        argv += [
            "--nnodes",
            str(n),
            "--node-rank",
            str(node_rank),
            "--dist-init-addr",
            head_addr,
        ]
    return argv


def render_rank(recipe, node_rank, values, head_addr=None):
    """Environment and ``sglang.launch_server`` argv of one node rank."""
    check_rank(recipe, node_rank)
    if recipe["hardware"]["nodes"] > 1:
        if not head_addr:
            flag, env = HEAD_ADDR_INPUT
            raise RecipeError(
                f"recipe {recipe['name']} is multi-node: give {flag} HOST:PORT "
                f"(rank 0's address and a free port) or set ${env}"
            )
        head_addr = check_head_addr(head_addr)
    return RankLaunch(
        recipe=recipe["name"],
        node_rank=node_rank,
        env=render_env(recipe, values),
        argv=render_argv(recipe, values, node_rank, head_addr),
    )


def placeholder_site(recipe, node_rank):
    """Site values for a dry run without real inputs (documentation addresses)."""
    values = {}
    for key in used_placeholders(recipe):
        spec = recipe["site"][key]
        if key == "rank_addr":
            values[key] = placeholder_rank_addr(node_rank)
        else:
            values[key] = spec.get("default") or spec.get("example") or f"<{key}>"
    return values


def placeholder_head_addr():
    return f"{placeholder_rank_addr(0)}:{PLACEHOLDER_HEAD_PORT}"


def image_name(recipe, repository="sglang-mimo"):
    """Image of the recipe's target: ``<repository>:<distribution>-<target>``."""
    return (
        f"{repository}:{paths.load_pin()['distribution']}-{recipe['image']['target']}"
    )


def docker_argv(recipe, launch, image):
    """``docker run`` argv for one rank (the container runs the server directly)."""
    img = recipe["image"]
    # --rm: a stopped or crashed rank frees its name, so the same line runs again.
    argv = [
        "docker", "run", "-d", "--rm",
        "--name", f"{recipe['name']}-rank{launch.node_rank}",
        "--gpus", "all", "--ipc=host", "--network", "host",
        "--shm-size", img.get("shm_size", "32g"),
    ]  # fmt: skip
    if launch.node_rank >= 1:
        # Only rank 0 serves HTTP; the image's HEALTHCHECK would mark the others unhealthy.
        argv.append("--no-healthcheck")
    if img.get("rdma"):
        argv += ["--device", "/dev/infiniband", "--cap-add", "IPC_LOCK",
                 "--ulimit", "memlock=-1"]  # fmt: skip
    model = _argv_value(launch.argv, "--model-path")
    if model and is_local_path(model):
        argv += ["-v", f"{model}:{model}:ro"]
    else:
        argv += ["-v", HF_CACHE_MOUNT]
    for k, v in launch.env.items():
        argv += ["-e", f"{k}={v}"]
    argv += [image, "python3", "-m", "sglang.launch_server", *launch.argv]
    return argv


def _argv_value(argv, flag):
    for i, tok in enumerate(argv[:-1]):
        if tok == flag:
            return argv[i + 1]
    return None


_ENV_ASSIGN_RE = re.compile(r"^[A-Z_][A-Z0-9_]*=")
HF_CACHE_MOUNT = "${HOME}/.cache/huggingface:/root/.cache/huggingface"


def shell_line(argv, breaks=()):
    """A copy-pasteable command: one flag (or VAR=value) per continuation line, and a
    line break before each token index in ``breaks``."""
    lines = [[]]
    prev = None
    for i, tok in enumerate(argv):
        brk = (
            i in breaks
            or tok.startswith("--")
            or tok in ("-e", "-v")
            or _ENV_ASSIGN_RE.match(tok)
        )
        if brk and lines[-1] and prev != "-e":
            lines.append([])
        lines[-1].append(f'"{tok}"' if tok == HF_CACHE_MOUNT else shlex.quote(tok))
        prev = tok
    return " \\\n    ".join(" ".join(line) for line in lines)


HF_CACHE_IN_CONTAINER = "/root/.cache/huggingface"
# Device-plugin resource for the RDMA devices (NVIDIA network operator's shared-device
# plugin default name); --rdma-resource names another.
RDMA_RESOURCE = "rdma/rdma_shared_device_a"


def lws_manifest(
    recipe,
    values,
    image,
    head_addr=None,
    rank_addrs=None,
    rdma_resource=RDMA_RESOURCE,
    hf_cache_host=HF_CACHE_IN_CONTAINER,
):
    """A LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) running one group of all ranks.

    Ranks come from LWS: the group size and each pod's worker index. Rank 0's address
    is ``head_addr`` (HOST:PORT, as --head-addr) when given, else the leader pod's
    ($(LWS_LEADER_ADDRESS)) on HEAD_PORT. Each pod's own address (SGLANG_HOST_IP) is
    its entry of ``rank_addrs`` (one per worker index, as --rank-addr A0,A1,...) when
    given, else the pod IP. RDMA recipes get the host's /dev/infiniband, IPC_LOCK
    (which lifts the locked-memory limit NCCL needs for RDMA registration) and one RDMA
    device of ``rdma_resource``. Hub ids get a Hugging Face cache volume.
    torch.distributed/NCCL as SGLang does it, no Ray.
    """
    n = recipe["hardware"]["nodes"]
    rdma = recipe["image"].get("rdma", False)
    if rank_addrs is not None and len(rank_addrs) != n:
        raise RecipeError(
            f"--rank-addr lists {len(rank_addrs)} addresses; recipe {recipe['name']} "
            f"has {n} ranks"
        )
    vals = dict(values, rank_addr="$(POD_IP)")
    env = render_env(recipe, vals)
    argv = render_argv(recipe, vals, 0, None, rank_flags=False)
    if n > 1:
        head = check_head_addr(head_addr) if head_addr else (
            f"$(LWS_LEADER_ADDRESS):{HEAD_PORT}"
        )
        argv += ["--nnodes", "$(LWS_GROUP_SIZE)", "--node-rank", "$(LWS_WORKER_INDEX)",
                 "--dist-init-addr", head]  # fmt: skip
    command = ["python3", "-m", "sglang.launch_server"]
    if rank_addrs is not None:
        for addr in rank_addrs:
            check_host(addr, "--rank-addr")
        # This pod's address on the fabric, picked by its worker index.
        env.pop("SGLANG_HOST_IP", None)
        pick = (
            f"addrs=({' '.join(shlex.quote(a) for a in rank_addrs)}); "
            'export SGLANG_HOST_IP="${addrs[$LWS_WORKER_INDEX]}"; '
            'exec python3 -m sglang.launch_server "$@"'
        )
        command = ["bash", "-c", pick, "sglang"]
    env_list = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {
            "name": "LWS_WORKER_INDEX",
            "valueFrom": {
                "fieldRef": {
                    "fieldPath": "metadata.labels['leaderworkerset.sigs.k8s.io/worker-index']"
                }
            },
        },
    ] + [{"name": k, "value": v} for k, v in env.items()]
    port = int(_argv_value(argv, "--port") or 30000)
    model = values.get("model_path", "")
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}]
    volumes = [
        {
            "name": "dshm",
            "emptyDir": {
                "medium": "Memory",
                "sizeLimit": recipe["image"].get("shm_size", "32g").upper() + "i",
            },
        }
    ]
    if model and is_local_path(model):
        mounts.append({"name": "model", "mountPath": model, "readOnly": True})
        volumes.append(
            {"name": "model", "hostPath": {"path": model, "type": "Directory"}}
        )
    else:
        mounts.append({"name": "hf-cache", "mountPath": HF_CACHE_IN_CONTAINER})
        volumes.append(
            {
                "name": "hf-cache",
                "hostPath": {"path": hf_cache_host, "type": "DirectoryOrCreate"},
            }
        )
    if rdma:
        mounts.append({"name": "infiniband", "mountPath": "/dev/infiniband"})
        volumes.append(
            {"name": "infiniband", "hostPath": {"path": "/dev/infiniband"}}
        )
    limits = {"nvidia.com/gpu": recipe["hardware"]["gpus_per_node"]}
    if rdma:
        limits[rdma_resource] = 1

    def pod(role):
        container = {
            "name": f"sglang-{role}",
            "image": image,
            "command": command,
            "args": argv,
            "env": env_list,
            "resources": {"limits": limits},
            "volumeMounts": mounts,
        }
        if rdma:
            container["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
        if role == "leader":
            container["ports"] = [{"containerPort": port, "name": "http"}]
            container["readinessProbe"] = {
                "httpGet": {"path": "/health", "port": port},
                "initialDelaySeconds": 120,
                "periodSeconds": 10,
            }
        # Own copies per template: no YAML anchors/aliases in the output.
        container = copy.deepcopy(container)
        spec = {"containers": [container], "volumes": copy.deepcopy(volumes)}
        if rdma:
            # RoCE/IB interfaces are named as on the host (NCCL_SOCKET_IFNAME, NCCL_IB_HCA).
            spec["hostNetwork"] = True
            spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        return {"metadata": {"labels": {"role": role}}, "spec": spec}

    lwt = {"size": n, "restartPolicy": "RecreateGroupOnPodRestart"}
    if n > 1:
        lwt["leaderTemplate"] = pod("leader")
        lwt["workerTemplate"] = pod("worker")
    else:
        lwt["workerTemplate"] = pod("leader")
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": recipe["name"].replace(".", "-")},
        "spec": {"replicas": 1, "leaderWorkerTemplate": lwt},
    }
