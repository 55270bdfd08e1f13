"""Launch recipes (``recipes/*.yaml``): the data, its validation and the per-site values.

A recipe is data: model, hardware, image target, per-site inputs, environment and the
arguments of ``python3 -m sglang.launch_server``. This module loads a recipe, checks it
against ``recipes/schema.json`` and the project's own rules (``semantic_errors``) and
resolves the per-site values. Rendering one rank is ``rank.py``; the runners are
``run_exec.py``, ``run_docker.py`` and ``run_k8s.py``; SGLang's own startup checks are
``startup.py`` and memory sizing ``sizing.py``. ``launch.py`` reads top-down over them.
"""

import ipaddress
import json
import re
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
AUDIO_UNDER_ATTN_DP_PATCH = "0006-mimo-audio-reduce-over-attn-tp-group.patch"

# The head's torch.distributed port: the same number in the launcher, its docs, the
# image docs and the Kubernetes render (overridable per run with --head-addr HOST:PORT).
HEAD_PORT = 20000
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
    try:
        import jsonschema
    except ImportError as e:
        raise RecipeError(
            f"validating recipes needs the jsonschema package ({e}): "
            "pip install jsonschema (a dependency of sglang-mimo and of sglang)"
        ) from e
    schema = schema or load_schema()
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

    # Attention DP and audio (sgl-project/sglang#37059, fixed by #37060 = patch 0006).
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
            errs.append(
                f"server_args: needs {flag} (the memory check sizes against it)"
            )
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
            f"{what}: {value!r} is not HOST:PORT (e.g. 192.0.2.10:{HEAD_PORT})"
        )
    host, port = m.group(1), int(m.group(2))
    check_host(host, what)
    if not 1 <= port <= 65535:
        raise RecipeError(f"{what}: port {port} is outside 1..65535")
    return value.strip()


def _bare_host(value):
    v = value.strip()
    return v[1:-1] if v.startswith("[") and v.endswith("]") else v


def same_host(a, b):
    """Whether two hosts are one: True / False for two IP addresses or two names,
    None when one is a name and the other an address (not resolved here)."""
    a, b = _bare_host(a), _bare_host(b)
    try:
        ia = ipaddress.ip_address(a)
    except ValueError:
        ia = None
    try:
        ib = ipaddress.ip_address(b)
    except ValueError:
        ib = None
    if ia is not None and ib is not None:
        return ia == ib
    if ia is None and ib is None:
        return a.rstrip(".").lower() == b.rstrip(".").lower()
    return None


def check_rank_addrs(head_addr, rank_addrs):
    """Refuse addresses that disagree. ``head_addr`` is HOST:PORT (rank 0's);
    ``rank_addrs`` maps node rank -> that rank's --rank-addr (every rank of a
    comma list, or the one rank being launched)."""
    head = _bare_host(head_addr.strip().rsplit(":", 1)[0])
    seen = {}
    for rank, addr in sorted(rank_addrs.items()):
        for other, prev in seen.items():
            if same_host(addr, prev):
                raise RecipeError(
                    f"--rank-addr: {addr} is given for rank {other} and rank {rank}; "
                    "each rank has its own address"
                )
        seen[rank] = addr
    if 0 in rank_addrs and same_host(rank_addrs[0], head) is False:
        if len(rank_addrs) == 1:
            raise RecipeError(
                f"rank 0's --rank-addr {rank_addrs[0]} differs from the --head-addr host "
                f"{head}: rank 0 is the head, give one address for both"
            )
        listed = ",".join(rank_addrs[r] for r in sorted(rank_addrs))
        at = [r for r, a in rank_addrs.items() if same_host(a, head)]
        if at:
            raise RecipeError(
                f"--head-addr host {head} is rank {at[0]}'s address in --rank-addr "
                f"{listed}; the head is rank 0: list rank 0's address first"
            )
        raise RecipeError(
            f"--head-addr host {head} is not in --rank-addr {listed}; the head is "
            f"rank 0, the list's first address ({rank_addrs[0]})"
        )
    for rank, addr in rank_addrs.items():
        if rank and same_host(addr, head):
            raise RecipeError(
                f"rank {rank}'s --rank-addr {addr} is the --head-addr host, rank 0's "
                "address: each rank gives its own address"
            )


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
