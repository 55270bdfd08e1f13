"""Memory per GPU of a recipe, computed from the model's config.json.

Weights per rank come from the config's shapes and its quantization: attention
projections over the attention-TP group (KV heads replicated where there are fewer
than attention-TP ranks), the dense MLP and the routed experts over the TP group
(EP x MoE-TP = TP: each rank holds 1/TP of the expert weights either way), embedding
and LM head over TP (over attention TP with --enable-dp-lm-head), the MTP layers like
the main ones, the vision encoder whole on every rank under --mm-enable-dp-encoder, else
over attention TP, the audio encoder whole on every rank (SGLang builds it from plain
torch / transformers modules, ``models/mimo_audio.py``; an ``audio_tokenizer/`` beside a
local checkpoint's config is counted whole too, an upper bound: its attention shards over
attention TP). FP8 block-quantized checkpoints
(``quantization_config.weight_block_size``) store their linear weights in 1 byte plus
one float32 scale per block, except the modules named in ``ignored_layers`` (SGLang's fp8
method leaves them unquantized: BF16); embeddings, norms, routers and the encoders stay
BF16. The encoders are counted as SGLang v0.5.23 builds them from ``vision_config`` /
``audio_config`` (``models/mimo_vl.py``, ``models/mimo_audio.py``), with those classes'
defaults for absent keys.

KV bytes per token per rank come from the head dims: a full-attention layer keeps
``max(1, kv_heads / attn_tp) x (head_dim + v_head_dim)`` elements per token, a
sliding-window layer the same with the ``swa_*`` dims, in the KV dtype (1 byte for
``fp8_*``, else 2). SGLang sizes the sliding-window pool as
``swa_full_tokens_ratio`` (default 0.8) of the full pool, so one full token costs
``full + ratio x swa`` bytes; the MTP draft layers (sliding window) add theirs.

The check: ``gpu_memory_gib x mem_fraction_static - weights`` must hold the KV of
``max_running_requests / attn_dp`` requests (SGLang divides the cap over attention-DP
ranks) at the recipe's ``--context-length`` (else the config's
``max_position_embeddings``). Activations and CUDA graphs live in the rest
(``1 - mem_fraction_static``), as SGLang reserves them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sglang_mimo import paths

if TYPE_CHECKING:
    from sglang_mimo.recipes import ArgItem, Recipe

CONFIGS = paths.RECIPES / "configs"
GIB = 2**30
SWA_FULL_TOKENS_RATIO_DEFAULT = (
    0.8  # ServerArgs.swa_full_tokens_ratio fallback, v0.5.23
)


@dataclass
class Layout:
    tp: int
    attn_dp: int
    enable_dp_lm_head: bool
    dp_encoder: bool
    kv_bytes: int
    swa_ratio: float
    mtp_layers: int

    @property
    def attn_tp(self) -> int:
        return self.tp // self.attn_dp


@dataclass
class Sizing:
    weights_gib: float
    kv_bytes_per_token: int
    budget_gib: float
    kv_pool_gib: float
    requests_per_dp_rank: int
    context_length: int
    kv_needed_gib: float
    max_tokens: int

    @property
    def fits(self) -> bool:
        return self.kv_pool_gib >= self.kv_needed_gib

    def as_json(self) -> dict[str, Any]:
        return {
            "weights_gib": round(self.weights_gib, 2),
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "budget_gib": round(self.budget_gib, 2),
            "kv_pool_gib": round(self.kv_pool_gib, 2),
            "requests_per_dp_rank": self.requests_per_dp_rank,
            "context_length": self.context_length,
            "kv_needed_gib": round(self.kv_needed_gib, 2),
            "max_tokens": self.max_tokens,
            "fits": self.fits,
        }


def config_dir(model_id: str) -> Path:
    """The directory holding the released config.json of a hub id (recipes/configs)."""
    d = CONFIGS / model_id.split("/")[-1]
    if not (d / "config.json").is_file():
        raise FileNotFoundError(f"no released config for {model_id} in {CONFIGS}")
    return d


class ConfigError(ValueError):
    """A model ``config.json`` that cannot be sized: unreadable, not JSON, another
    model's, or without a field sizing reads. The message names the file and field."""


# The top-level fields every sizing reads (positive integers).
REQUIRED_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "head_dim", "intermediate_size", "vocab_size",
)  # fmt: skip


def _read_json(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{path}: cannot be read ({e.__class__.__name__}: {e})"
        ) from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object (a {type(data).__name__})")
    return data


def load_config(
    model_dir: str | Path, architecture: str | None = None
) -> dict[str, Any]:
    """The model's ``config.json``, checked: a JSON object with every field of
    REQUIRED_FIELDS a positive integer and, given ``architecture``, that architecture
    in its ``architectures``. Raises ConfigError naming the file and the field."""
    path = Path(model_dir) / "config.json"
    cfg = _read_json(path)
    problems: list[str] = []
    missing = [f for f in REQUIRED_FIELDS if f not in cfg]
    if architecture is not None:
        archs = cfg.get("architectures")
        if not archs or not isinstance(archs, list):
            missing.insert(0, "architectures")
        elif architecture not in archs:
            problems.append(
                f"field 'architectures' is {archs!r}, not this recipe's "
                f"{architecture!r} (another model's checkpoint?)"
            )
    if missing:
        problems.append(
            f"missing field{'s' if len(missing) > 1 else ''} "
            + ", ".join(repr(f) for f in missing)
        )
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    for f in REQUIRED_FIELDS:
        v = cfg[f]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"{path}: field {f!r} is {v!r}, not a positive integer")
    return cfg


def _quant_bytes(cfg: dict[str, Any], quantization_flag: object) -> float:
    """Bytes per quantized linear weight element (scales included)."""
    qc = cfg.get("quantization_config") or {}
    if qc.get("quant_method") == "fp8" or quantization_flag == "fp8":
        block: list[int] = qc.get("weight_block_size") or [128, 128]
        return 1 + 4 / (block[0] * block[1])
    if quantization_flag is None and not qc:
        return 2
    raise ValueError(
        f"sizing knows FP8 block and BF16 weights; got quantization_config {qc!r}, "
        f"--quantization {quantization_flag!r}"
    )


def ignored(cfg: dict[str, Any], module: str) -> bool:
    """Whether SGLang's fp8 method leaves ``module`` unquantized: it, or a module above
    it, is in ``quantization_config.ignored_layers`` (``layers/quantization/fp8.py``
    reads the list with and without the ``model.`` prefix; ``utils.py``
    ``_module_path_match`` matches on dotted-path boundaries)."""
    qc = cfg.get("quantization_config") or {}
    names = qc.get("ignored_layers") or qc.get("modules_to_not_convert") or []
    m = "." + module.removeprefix("model.") + "."
    return any("." + n.rstrip(".").removeprefix("model.") + "." in m for n in names)


def _attn_params(cfg: dict[str, Any], swa: bool, attn_tp: int) -> tuple[float, float]:
    """(q + k + v, o) weights of one attention layer per attention-TP rank."""
    p = "swa_" if swa else ""
    h = cfg["hidden_size"]
    heads = cfg.get(p + "num_attention_heads", cfg["num_attention_heads"])
    kv = cfg.get(p + "num_key_value_heads", cfg["num_key_value_heads"])
    hd = cfg.get(p + "head_dim", cfg["head_dim"])
    vhd = cfg.get(p + "v_head_dim", cfg.get("v_head_dim", hd))
    if heads % attn_tp:
        raise ValueError(
            f"{heads} attention heads do not split over attention TP {attn_tp}"
        )
    kv_local = max(1, kv // attn_tp)
    q = h * heads * hd / attn_tp
    k = h * kv_local * hd
    v = h * kv_local * vhd
    o = heads * vhd * h / attn_tp
    return q + k + v, o


def _kv_elems(cfg: dict[str, Any], swa: bool, attn_tp: int) -> int:
    p = "swa_" if swa else ""
    kv: int = cfg.get(p + "num_key_value_heads", cfg["num_key_value_heads"])
    hd: int = cfg.get(p + "head_dim", cfg["head_dim"])
    vhd: int = cfg.get(p + "v_head_dim", cfg.get("v_head_dim", hd))
    return max(1, kv // attn_tp) * (hd + vhd)


# MiMoVLVisionConfig's defaults (models/mimo_vl.py, v0.5.23): what SGLang builds when
# vision_config leaves a key out. It reads `in_channels` (the released file's `in_chans`
# is not read; both are 3) and takes the head dim from `qk_channels` (64 by default).
VISION_DEFAULTS = dict(
    num_heads=32, num_key_value_heads=8, qk_channels=64, in_channels=3, patch_size=16,
    temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=2048,
)  # fmt: skip
# MiMoAudioEncoderConfig's defaults (models/mimo_audio.py, v0.5.23).
AUDIO_DEFAULTS = dict(
    speech_vocab_size="1025-1025-129-129-129-129-129-129", audio_channels=8,
    input_local_attn_heads=64, input_local_head_dim=16, projection_layers=1,
)  # fmt: skip


def _vision_params(vc: dict[str, Any]) -> int:
    """MiMoVisionTransformer: patch embedding, ``depth`` blocks (GQA qkv_proj of
    (heads + 2 x kv_heads) x head_dim rows, proj back to hidden, gated MLP), merger."""
    v: dict[str, int] = {**VISION_DEFAULTS, **vc}
    h, i, depth = v["hidden_size"], v["intermediate_size"], v["depth"]
    heads = v["num_heads"]
    kv = v["num_key_value_heads"] or heads
    hd = v["qk_channels"] or h // heads
    attn = (heads + 2 * kv) * hd * h + h * heads * hd
    patch = v["in_channels"] * v["temporal_patch_size"] * v["patch_size"] ** 2 * h
    merged = h * v["spatial_merge_size"] ** 2
    merger = merged * merged + merged * v["out_hidden_size"]
    return depth * (attn + 3 * h * i) + patch + merger


def _channel_sizes(value: str | int, channels: int) -> list[int]:
    """``speech_vocab_size``: "a-b-c" per channel, else one size for every channel
    (an int or a string of one: MiMoV2AudioConfig._parse_maybe_list)."""
    if isinstance(value, str) and "-" in value:
        return [int(x) for x in value.split("-")]
    return [int(value)] * channels


def _audio_params(ac: dict[str, Any], tok: dict[str, Any] | None) -> int:
    """The audio encoder SGLang builds (``build_audio_encoder``): one embedding per
    audio channel, the input local transformer (Qwen2 layers), the group projection
    (``projection_layers`` 2: group x dim -> 4 x that -> out_hidden_size); plus the
    audio tokenizer's encoder when the checkpoint directory has its config."""
    a = {**AUDIO_DEFAULTS, **ac}
    d, i, n = (
        a["input_local_dim"],
        a["input_local_intermediate_size"],
        a["input_local_layers"],
    )
    inner = a["input_local_attn_heads"] * a["input_local_head_dim"]
    local = n * (4 * d * inner + 3 * d * i)
    embeddings = sum(_channel_sizes(a["speech_vocab_size"], a["audio_channels"])) * d
    grouped, out = a["group_size"] * d, a["out_hidden_size"]
    if a["projection_layers"] == 2:
        proj = grouped * 4 * grouped + 4 * grouped * out
    else:
        proj = grouped * out
    total: int = local + embeddings + proj
    if tok:
        dm, ffn = tok["d_model"], tok["encoder_ffn_dim"]
        conv = tok["n_mels"] * dm * tok["kernel_size"] + dm * dm * tok["kernel_size"]
        total += tok["encoder_layers"] * (4 * dm * dm + 2 * dm * ffn) + conv
    return total


def weight_bytes_per_rank(
    cfg: dict[str, Any],
    layout: Layout,
    quantization_flag: object = None,
    audio_tokenizer: dict[str, Any] | None = None,
) -> float:
    q = _quant_bytes(cfg, quantization_flag)

    def qb(module: str) -> float:  # bytes per element of a linear weight of ``module``
        return 2 if ignored(cfg, module) else q

    tp, attn_tp = layout.tp, layout.attn_tp
    h, n = cfg["hidden_size"], cfg["num_hidden_layers"]
    pattern = cfg.get("hybrid_layer_pattern") or [0] * n
    moe = cfg.get("moe_layer_freq") or [0] * n
    experts = cfg.get("n_routed_experts") or 0

    def attention(prefix: str, swa: bool) -> float:
        qkv, o = _attn_params(cfg, swa, attn_tp)
        return qkv * qb(f"{prefix}.self_attn.qkv_proj") + o * qb(
            f"{prefix}.self_attn.o_proj"
        )

    total: float = 0.0
    for i in range(n):
        layer = f"model.layers.{i}"
        total += attention(layer, bool(pattern[i]))
        if moe[i] and experts:
            total += (
                experts * 3 * h * cfg["moe_intermediate_size"] / tp
                * qb(f"{layer}.mlp.experts")
            )  # fmt: skip
            total += experts * h * 2  # router, BF16, every rank
        else:
            total += 3 * h * cfg["intermediate_size"] / tp * qb(f"{layer}.mlp")
        total += 2 * h * 2  # norms
    vocab_split = attn_tp if layout.enable_dp_lm_head else tp
    total += 2 * cfg["vocab_size"] * h / vocab_split * 2  # embedding + LM head, BF16
    for _ in range(layout.mtp_layers):  # sliding-window attention + dense MLP + eh_proj
        # SGLang's MTP draft names its layer model.decoder (models/mimo_v2_nextn.py).
        total += attention("model.decoder", True)
        total += (3 * h * cfg["intermediate_size"] / tp + 2 * h * h / tp) * qb(
            "model.decoder.mlp"
        )
    if "vision_config" in cfg:
        vision = _in_section(cfg, "vision_config", _vision_params) * 2
        total += vision / (1 if layout.dp_encoder else attn_tp)
    if "audio_config" in cfg:
        total += _in_section(cfg, "audio_config", _audio_params, audio_tokenizer) * 2
    return total


def _in_section(
    cfg: dict[str, Any], section: str, fn: Callable[..., int], *args: Any
) -> int:
    """``fn(cfg[section], *args)``; a missing key is reported as ``section.key``."""
    try:
        return fn(cfg[section], *args)
    except KeyError as e:
        if e.args and e.args[0] in cfg[section] or e.args[0] in _TOKENIZER_FIELDS:
            raise
        raise KeyError(f"{section}.{e.args[0]}") from e


def parameters(cfg: dict[str, Any], mtp_layers: int) -> float:
    """Parameters of the whole checkpoint from the config's shapes (FP8 scales not
    counted): the main layers, ``mtp_layers`` MTP layers and the encoders."""
    c = {k: v for k, v in cfg.items() if k != "quantization_config"}
    everything = Layout(
        tp=1, attn_dp=1, enable_dp_lm_head=False, dp_encoder=True, kv_bytes=2,
        swa_ratio=1.0, mtp_layers=mtp_layers,
    )  # fmt: skip
    return weight_bytes_per_rank(c, everything) / 2


def kv_bytes_per_token(cfg: dict[str, Any], layout: Layout) -> int:
    n = cfg["num_hidden_layers"]
    pattern = cfg.get("hybrid_layer_pattern") or [0] * n
    attn_tp = layout.attn_tp
    full = sum(_kv_elems(cfg, False, attn_tp) for i in range(n) if not pattern[i])
    swa = sum(_kv_elems(cfg, True, attn_tp) for i in range(n) if pattern[i])
    swa += layout.mtp_layers * _kv_elems(cfg, True, attn_tp)
    if not any(pattern):  # no sliding-window layers: one pool
        return int((full + swa) * layout.kv_bytes)
    return int((full + layout.swa_ratio * swa) * layout.kv_bytes)


def _flag(items: Iterable[ArgItem], *names: str, default: Any = None) -> Any:
    for flag, value in items:
        if flag in names:
            return True if value is None else value
    return default


def layout_of(recipe: Recipe, server_args: Sequence[ArgItem]) -> Layout:
    """Parallel layout and KV settings of a recipe (``server_args``: (flag, value) pairs)."""
    tp = int(_flag(server_args, "--tp-size", "--tensor-parallel-size", default=1))
    attn_dp = int(_flag(server_args, "--attn-dp-size", default=1))
    kv_dtype = str(_flag(server_args, "--kv-cache-dtype", default="auto"))
    spec = recipe.speculative
    return Layout(
        tp=tp,
        attn_dp=attn_dp,
        enable_dp_lm_head=bool(
            _flag(server_args, "--enable-dp-lm-head", default=False)
        ),
        dp_encoder=bool(_flag(server_args, "--mm-enable-dp-encoder", default=False)),
        kv_bytes=1 if kv_dtype.startswith("fp8") else 2,
        swa_ratio=float(
            _flag(
                server_args,
                "--swa-full-tokens-ratio",
                default=SWA_FULL_TOKENS_RATIO_DEFAULT,
            )
        ),
        mtp_layers=spec.num_steps if spec else 0,
    )


def size_recipe(
    recipe: Recipe, server_args: Sequence[ArgItem], model_dir: str | Path
) -> Sizing:
    """The memory of one GPU of ``recipe`` with the config in ``model_dir``.

    Raises ConfigError (file and field named) for a config it cannot size."""
    cfg = load_config(model_dir, recipe.model.architecture)
    tok_file = Path(model_dir) / "audio_tokenizer" / "config.json"
    tok = _read_json(tok_file) if tok_file.is_file() else None
    path = Path(model_dir) / "config.json"
    try:
        return _size(recipe, server_args, cfg, tok)
    except KeyError as e:
        if tok is not None and e.args[0] in _TOKENIZER_FIELDS:
            path = tok_file
        raise ConfigError(f"{path}: missing field {e.args[0]!r}") from e
    except (TypeError, ValueError, ZeroDivisionError, IndexError) as e:
        raise ConfigError(f"{path}: cannot be sized: {e}") from e


# The fields _audio_params reads from audio_tokenizer/config.json.
_TOKENIZER_FIELDS = {
    "d_model",
    "encoder_ffn_dim",
    "n_mels",
    "kernel_size",
    "encoder_layers",
}


def _size(
    recipe: Recipe,
    server_args: Sequence[ArgItem],
    cfg: dict[str, Any],
    tok: dict[str, Any] | None,
) -> Sizing:
    layout = layout_of(recipe, server_args)
    quant = _flag(server_args, "--quantization")
    weights = weight_bytes_per_rank(cfg, layout, quant, tok) / GIB
    per_token = kv_bytes_per_token(cfg, layout)
    frac = float(_flag(server_args, "--mem-fraction-static"))
    budget = recipe.hardware.gpu_memory_gib * frac
    pool = budget - weights
    reqs = max(1, int(_flag(server_args, "--max-running-requests")) // layout.attn_dp)
    ctx = _flag(server_args, "--context-length")
    ctx = int(cfg["max_position_embeddings"] if ctx is None else ctx)
    needed = reqs * ctx * per_token / GIB
    return Sizing(
        weights_gib=weights,
        kv_bytes_per_token=per_token,
        budget_gib=budget,
        kv_pool_gib=pool,
        requests_per_dp_rank=reqs,
        context_length=ctx,
        kv_needed_gib=needed,
        max_tokens=max(0, int(pool * GIB / per_token)),
    )


def problem(recipe: Recipe, sizing: Sizing) -> str | None:
    """A sentence saying why the recipe does not fit, or None."""
    if sizing.fits:
        return None
    return (
        f"memory: {sizing.weights_gib:.1f} GiB of weights per GPU leave "
        f"{sizing.kv_pool_gib:.1f} GiB of {sizing.budget_gib:.1f} GiB "
        f"({recipe.hardware.gpu_memory_gib} GiB x --mem-fraction-static) for the KV cache; "
        f"{sizing.requests_per_dp_rank} requests x {sizing.context_length} tokens x "
        f"{sizing.kv_bytes_per_token} B/token need {sizing.kv_needed_gib:.1f} GiB: "
        "lower --max-running-requests or --context-length, or add GPUs"
    )
