"""Launch recipes (``recipes/*.yaml``): the data, its validation and the per-site values.

A recipe is data: model, hardware, image target, per-site inputs, environment and the
arguments of ``python3 -m sglang.launch_server``. ``load_recipe`` reads one, checks it
against ``recipes/schema.json`` and the project's own rules (``RULES``, one function
each) and returns a typed ``Recipe``; ``resolve_site`` fills in the per-site values
(parsed and checked in ``sitevalues.py``). Rendering one rank is ``rank.py``; the
runners are ``run_exec.py``, ``run_docker.py`` and ``run_k8s.py``; SGLang's own startup
checks are ``startup.py`` and memory sizing ``sizing.py``. ``launch.py`` reads top-down
over them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias

from sglang_mimo import paths
from sglang_mimo.errors import RecipeError, RecipeInvalid
from sglang_mimo.sitevalues import (
    HEAD_ADDR_INPUT,
    HEAD_PORT,
    HUB_ID_RE,
    SITE_INPUTS,
    check_head_addr,
    check_host,
    check_model_path_here,
    check_rank_addrs,
    check_site_value,
    is_local_path,
    normalize_model_path,
    same_host,
)

__all__ = [
    "Recipe",
    "RecipeError",
    "RecipeInvalid",
    "load_recipe",
    "resolve_site",
    # sitevalues' names, for the callers that take them from here
    "HEAD_ADDR_INPUT",
    "HEAD_PORT",
    "HUB_ID_RE",
    "SITE_INPUTS",
    "check_head_addr",
    "check_host",
    "check_model_path_here",
    "check_rank_addrs",
    "check_site_value",
    "is_local_path",
    "normalize_model_path",
    "same_host",
]

SCHEMA_FILE = paths.RECIPES / "schema.json"
ALLOWLIST_FILE = paths.RECIPES / "env-allowlist.yaml"

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

PLACEHOLDER_RE = re.compile(r"\{([a-z][a-z_]*)\}")

# A server argument's value as the YAML gives it (a bare flag has none).
ArgValue: TypeAlias = "str | int | float"
ArgItem: TypeAlias = "tuple[str, ArgValue | None]"


# ----------------------------------------------------------------------- the recipe


@dataclass(frozen=True)
class Model:
    id: str  # Hugging Face repository id
    architecture: str
    mtp: bool
    modalities: tuple[str, ...]


@dataclass(frozen=True)
class Hardware:
    gpu: str
    gpus_per_node: int
    gpu_memory_gib: float
    nodes: int
    interconnect: str | None = None
    notes: str | None = None

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * self.nodes


@dataclass(frozen=True)
class Image:
    target: str
    shm_size: str = "32g"
    rdma: bool = False


@dataclass(frozen=True)
class Speculative:
    algorithm: str
    num_steps: int
    eagle_topk: int
    num_draft_tokens: int
    multi_layer_eagle: bool


@dataclass(frozen=True)
class SiteInput:
    """How a per-site value is described to the user: help, default, example."""

    help: str
    default: str | None = None
    example: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A recipe that passed its schema and the project's rules (``load_recipe``)."""

    name: str
    description: str
    model: Model
    hardware: Hardware
    image: Image
    site: dict[str, SiteInput]
    env_common: dict[str, str]
    env_per_rank: dict[str, str]
    server_args: tuple[ArgItem, ...]
    speculative: Speculative | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Recipe:
        """The typed recipe of a mapping that passed the schema (``schema_errors``)."""
        spec = data.get("speculative")
        return cls(
            name=data["name"],
            description=data["description"],
            model=Model(
                **{**data["model"], "modalities": tuple(data["model"]["modalities"])}
            ),
            hardware=Hardware(**data["hardware"]),
            image=Image(**data["image"]),
            site={k: SiteInput(**v) for k, v in data["site"].items()},
            env_common=dict(data["env"]["common"]),
            env_per_rank=dict(data["env"]["per_rank"]),
            server_args=tuple(_arg_items(data["server_args"])),
            speculative=Speculative(**spec) if spec else None,
            reasons=dict(data.get("reasons") or {}),
        )

    @property
    def flags(self) -> list[str]:
        """The server arguments' flags, in order."""
        return [f for f, _ in self.server_args]

    def flag(self, *flags: str) -> ArgValue | None:
        """The value of the first of ``flags`` the server arguments set (None if none
        does, or for a bare flag)."""
        for flag, value in self.server_args:
            if flag in flags:
                return value
        return None


def _arg_items(entries: Iterable[str | Mapping[str, ArgValue]]) -> list[ArgItem]:
    items: list[ArgItem] = []
    for entry in entries:
        if isinstance(entry, str):
            items.append((entry, None))
        else:
            ((flag, value),) = entry.items()
            items.append((flag, value))
    return items


# --------------------------------------------------------------------------- loading


def _yaml() -> ModuleType:
    try:
        import yaml
    except ImportError as e:  # pragma: no cover - pyyaml is a dependency
        raise RecipeError("reading recipes needs PyYAML (pip install pyyaml)") from e
    return yaml


def known_recipes(recipes_dir: str | Path | None = None) -> dict[str, Path]:
    """Map recipe name -> path for every ``*.yaml`` recipe in the directory."""
    d = Path(recipes_dir or paths.RECIPES)
    return {
        p.stem: p for p in sorted(d.glob("*.yaml")) if p.name != ALLOWLIST_FILE.name
    }


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_FILE, encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def load_allowlist(path: str | Path = ALLOWLIST_FILE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        variables: dict[str, Any] = _yaml().safe_load(f)["variables"]
    return variables


def resolve_recipe_path(
    name_or_path: str | Path, recipes_dir: str | Path | None = None
) -> Path:
    """A recipe name (``mimo-v2.5-gb10x4``) or a path to a YAML file."""
    known = known_recipes(recipes_dir)
    if name_or_path in known:
        return known[str(name_or_path)]
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    raise RecipeError(
        f"unknown recipe {name_or_path!r}; known recipes: "
        + (", ".join(known) if known else "(none)")
    )


def read_recipe_data(path: Path) -> Any:
    """The YAML of a recipe file, unchecked (RecipeInvalid when it is not YAML)."""
    yaml = _yaml()
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise RecipeInvalid(f"{path}: not valid YAML: {e}") from e


def load_recipe(
    name_or_path: str | Path, recipes_dir: str | Path | None = None
) -> Recipe:
    """Load and validate a recipe.

    Raises RecipeError (exit 2) for a name that is no recipe, RecipeInvalid (exit 3)
    for a file that is not YAML or fails validation, listing every problem."""
    path = resolve_recipe_path(name_or_path, recipes_dir)
    data = read_recipe_data(path)
    problems = validate(data, path.stem)
    if problems:
        raise RecipeInvalid(
            f"recipe {path} fails validation:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return Recipe.from_data(data)


# ------------------------------------------------------------------------ validation


def schema_errors(data: Any, schema: dict[str, Any] | None = None) -> list[str]:
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


def server_arg_items(recipe: Recipe | Mapping[str, Any]) -> list[ArgItem]:
    """The recipe's server arguments as (flag, value-or-None) pairs, in order."""
    if isinstance(recipe, Recipe):
        return list(recipe.server_args)
    return _arg_items(recipe["server_args"])


def _placeholders_in(text: object) -> list[str]:
    return PLACEHOLDER_RE.findall(str(text))


def used_placeholders(recipe: Recipe) -> set[str]:
    """The {placeholders} the recipe's environment and arguments use."""
    names: set[str] = set()
    for value in [*recipe.env_common.values(), *recipe.env_per_rank.values()]:
        names.update(_placeholders_in(value))
    for _, arg in recipe.server_args:
        if arg is not None:
            names.update(_placeholders_in(arg))
    return names


def series_names() -> list[str]:
    """Patch file names of patches/series (the one series parser)."""
    from sglang_mimo.series import read_series

    names: list[str] = read_series()
    return names


# ----------------------------------------------------------------- the project's rules
#
# Rules a JSON Schema cannot say, one function each: (recipe, context) -> problems.
# They run in RULES' order on a recipe that passed the schema.


@dataclass
class RuleContext:
    name: str | None  # the file's name, which the recipe's must equal
    allowlist: Mapping[str, Any]  # recipes/env-allowlist.yaml
    found: list[str] = field(default_factory=list)  # problems of the rules before


Rule = Callable[[Recipe, RuleContext], list[str]]


def _int_flag(recipe: Recipe, *flags: str) -> int:
    return int(recipe.flag(*flags) or 1)


def name_is_the_file_name(recipe: Recipe, ctx: RuleContext) -> list[str]:
    if ctx.name is not None and recipe.name != ctx.name:
        return [f"name: {recipe.name!r} must equal the file name {ctx.name!r}"]
    return []


def flags_are_the_recipes_own(recipe: Recipe, ctx: RuleContext) -> list[str]:
    """Each flag once; none the launcher or the speculative block sets; none deprecated."""
    flags = recipe.flags
    errs = [
        f"server_args: {dup} appears more than once"
        for dup in sorted({f for f in flags if flags.count(f) > 1})
    ]
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
    return errs


def model_path_and_parsers(recipe: Recipe, ctx: RuleContext) -> list[str]:
    """--model-path is the per-site value; MiMo's own reasoning and tool-call parsers."""
    errs = []
    if recipe.flag("--model-path") != "{model_path}":
        errs.append(
            'server_args: needs --model-path: "{model_path}" (a per-site value)'
        )
    for flag in ("--reasoning-parser", "--tool-call-parser"):
        if recipe.flag(flag) != "mimo":
            errs.append(f"server_args: {flag} must be mimo (see recipes/README.md)")
    return errs


def mtp_has_speculative_block(recipe: Recipe, ctx: RuleContext) -> list[str]:
    if recipe.model.mtp and recipe.speculative is None:
        return ["speculative: the model has MTP layers; add the speculative block"]
    if not recipe.model.mtp and recipe.speculative is not None:
        return ["speculative: the model has no MTP layers; drop the block"]
    return []


def attention_dp_with_audio_and_vision(recipe: Recipe, ctx: RuleContext) -> list[str]:
    """Attention DP and audio (sgl-project/sglang#37059, fixed by sglang#37060, which
    patch 0006 backports); and the vision encoder's data parallelism under attention
    DP."""
    audio = AUDIO_MODALITIES & set(recipe.model.modalities)
    attn_dp = recipe.flag(*ATTN_DP_FLAGS)
    errs = []
    if audio and attn_dp is not None and int(attn_dp) > 1:
        if AUDIO_UNDER_ATTN_DP_PATCH not in series_names():
            errs.append(
                f"server_args: --attn-dp-size {attn_dp} with {'/'.join(sorted(audio))} "
                "served: audio requests hang under attention DP on v0.5.23 "
                f"(sgl-project/sglang#37059) unless patches/series carries "
                f"{AUDIO_UNDER_ATTN_DP_PATCH}"
            )
        if "--mm-enable-dp-encoder" not in recipe.flags:
            errs.append(
                f"server_args: --attn-dp-size {attn_dp} with a multimodal model needs "
                "--mm-enable-dp-encoder (the vision encoder refuses attention TP "
                "narrower than TP otherwise)"
            )
    return errs


def reasons_name_rendered_flags(recipe: Recipe, ctx: RuleContext) -> list[str]:
    """Every flag with a reason is one the recipe renders."""
    rendered = set(recipe.flags) | (set(SPEC_FLAGS) if recipe.speculative else set())
    return [
        f"reasons: {flag} is not a flag of this recipe"
        for flag in sorted(set(recipe.reasons) - rendered)
    ]


def layout_fills_the_hardware(recipe: Recipe, ctx: RuleContext) -> list[str]:
    """tp x pp x dp is the hardware's GPU count; attention DP divides TP."""
    hw = recipe.hardware
    tp = _int_flag(recipe, "--tp-size", "--tensor-parallel-size")
    pp = _int_flag(recipe, "--pp-size", "--pipeline-parallel-size")
    dp = _int_flag(recipe, "--dp-size", "--data-parallel-size")
    errs = []
    if tp * pp * dp != hw.gpus:
        errs.append(
            f"server_args: tp {tp} x pp {pp} x dp {dp} = {tp * pp * dp} ranks, but the "
            f"hardware has {hw.gpus} GPUs ({hw.nodes} x {hw.gpus_per_node})"
        )
    attn_dp = recipe.flag(*ATTN_DP_FLAGS)
    if attn_dp is not None and tp % int(attn_dp):
        errs.append(f"server_args: --attn-dp-size {attn_dp} must divide --tp-size {tp}")
    return errs


MEMORY_FLAGS = ("--mem-fraction-static", "--max-running-requests", "--context-length")


def memory_flags_are_set(recipe: Recipe, ctx: RuleContext) -> list[str]:
    return [
        f"server_args: needs {flag} (the memory check sizes against it)"
        for flag in MEMORY_FLAGS
        if recipe.flag(flag) is None
    ]


def memory_fits(recipe: Recipe, ctx: RuleContext) -> list[str]:
    """Memory per GPU, from the model's released config (sizing.py); sized only when
    every rule before it passed (the layout and the memory flags are then sound)."""
    if ctx.found:
        return []
    from sglang_mimo import sizing

    try:
        fit = sizing.size_recipe(
            recipe, recipe.server_args, sizing.config_dir(recipe.model.id)
        )
    except (FileNotFoundError, ValueError) as e:
        return [f"memory: {e}"]
    problem = sizing.problem(recipe, fit)
    return [problem] if problem else []


def placeholders_are_site_values(recipe: Recipe, ctx: RuleContext) -> list[str]:
    """Placeholders name per-site values the site block describes, and only those."""
    used = used_placeholders(recipe)
    errs = [
        f"{{{unknown}}} is not a per-site value; use one of "
        + ", ".join(f"{{{k}}}" for k in SITE_INPUTS)
        for unknown in sorted(used - set(SITE_INPUTS))
    ]
    for k in sorted(used & set(SITE_INPUTS) - set(recipe.site)):
        errs.append(f"site: {{{k}}} is used but site.{k} is not described")
    for k in sorted(set(recipe.site) - used):
        errs.append(f"site: site.{k} is described but never used")
    if recipe.hardware.nodes > 1 and "rank_addr" not in used:
        errs.append(
            'env.per_rank: a multi-node recipe sets SGLANG_HOST_IP: "{rank_addr}"'
        )
    return errs


def env_is_allow_listed(recipe: Recipe, ctx: RuleContext) -> list[str]:
    return [
        f"env.{section}: {key} is not in recipes/env-allowlist.yaml "
        "(variables SGLang, PyTorch or NCCL read)"
        for section, env in (
            ("common", recipe.env_common),
            ("per_rank", recipe.env_per_rank),
        )
        for key in env
        if key not in ctx.allowlist
    ]


RULES: tuple[Rule, ...] = (
    name_is_the_file_name,
    flags_are_the_recipes_own,
    model_path_and_parsers,
    mtp_has_speculative_block,
    attention_dp_with_audio_and_vision,
    reasons_name_rendered_flags,
    layout_fills_the_hardware,
    memory_flags_are_set,
    memory_fits,
    placeholders_are_site_values,
    env_is_allow_listed,
)


def semantic_errors(
    recipe: Recipe | Mapping[str, Any],
    name: str | None = None,
    allowlist: Mapping[str, Any] | None = None,
) -> list[str]:
    """The problems RULES find, in order. ``recipe`` is a Recipe or a mapping that
    passed the schema."""
    if not isinstance(recipe, Recipe):
        recipe = Recipe.from_data(recipe)
    ctx = RuleContext(name, load_allowlist() if allowlist is None else allowlist)
    for rule in RULES:
        ctx.found += rule(recipe, ctx)
    return ctx.found


def validate(data: Any, name: str | None = None) -> list[str]:
    """All problems of a loaded recipe: schema first, then the project's rules."""
    if not isinstance(data, dict):
        return ["(top): a recipe is a YAML mapping"]
    errs = schema_errors(data)
    if errs:
        return errs
    return semantic_errors(data, name)


# ---------------------------------------------------------------------- site values


def resolve_site(
    recipe: Recipe,
    given: Mapping[str, str | None],
    environ: Mapping[str, str],
    need: Iterable[str] | None = None,
) -> dict[str, str]:
    """Per-site values: flag, then environment variable, then the recipe's default.

    ``given`` maps site key -> flag value or None. Raises RecipeError naming every
    missing value with its flag, variable, help and example.
    """
    need = used_placeholders(recipe) if need is None else need
    values: dict[str, str] = {}
    missing = []
    for key in sorted(need):
        flag, env = SITE_INPUTS[key]
        spec = recipe.site[key]
        value = given.get(key) or environ.get(env) or spec.default
        if not value:
            hint = f" (e.g. {spec.example})" if spec.example else ""
            missing.append(f"  {flag} / ${env}: {spec.help}{hint}")
            continue
        values[key] = check_site_value(key, value)
    if missing:
        raise RecipeError(
            f"recipe {recipe.name} needs per-site values:\n" + "\n".join(missing)
        )
    return values
