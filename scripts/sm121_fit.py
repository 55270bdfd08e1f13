#!/usr/bin/env python3
"""Does every Triton kernel the GB10 recipe launches fit an sm_121 (GB10) block?

Compiles, for ``sm_121a`` and without a GPU, each Triton kernel configuration that
recipes/mimo-v2.5-gb10x4.yaml leads SGLang to launch at MiMo-V2.5's shapes, and
prints one row per distinct compiled kernel: its launch configuration, the shared
memory Triton gives it (``metadata.shared``, the number Triton's launcher checks
against the device's opt-in maximum and raises ``OutOfResources`` over), the
registers and spills ptxas reports, and whether it fits GB10.

How a launch is found: the patched tree's own launcher functions are called, as
SGLang calls them on a GB10, with CPU tensors of the real shapes (``torch.empty``:
large weights are never touched, so they cost no memory). Each launcher picks its
block sizes, warps and stages itself from the capability it reads; this script
only tells it the device is a GB10:

- torch.cuda answers capability (12, 1), name "NVIDIA GB10" and GB10's opt-in
  shared memory (``gb10_identity``); the launchers' module-level capability
  snapshots (``CUDA_CAPABILITY``, ``_is_cuda``), taken at import on this GPU-less
  machine, are set to what import on a GB10 gives; SGLang's own
  ``override_jit_cuda_arch(12, 1)`` answers ``is_arch_support_pdl()``.
- ``triton.runtime.jit.JITFunction.run`` is replaced, only while a launcher
  runs, by a recorder: instead of compiling for the local driver and launching,
  it keeps the kernel and its arguments. CUDA-extension calls on the way (the
  JIT per-token-group FP8 quant, sgl-kernel's MoE align) are not Triton and are
  out of scope; where a launcher calls one, it is replaced by the allocation of
  the same output buffers (SGLang's own allocator where it has one), so the
  Triton launch after it sees the shapes and strides it sees on a GB10.
- Each recorded launch is bound and specialised by Triton's own binder for an
  sm_121a target and compiled by ``triton.compile`` with the launch's options
  (the bundled ptxas-blackwell, CUDA 13.x, assembles sm_121a). ptxas's ``-v`` log
  (Triton passes ``-v``; ``TRITON_DUMP_PTXAS_LOG`` prints it) gives registers
  and spill bytes.

GB10's limits (``GB10_LIMITS``) are sm_121's: 101,376 B of opt-in shared memory
per block (100 KiB per SM less the 1 KiB reserved per block), 65,536 registers
per block, 255 per thread, 1,024 threads. Source: NVIDIA's CCCL
``cuda/__device/arch_traits.h``, whose ``arch_traits<arch_id::sm_121>`` is
sm_120's (``max_shared_memory_per_multiprocessor = 100 * 1024``;
``reserved_shared_memory_per_block`` 1024 from compute capability 8.0 on;
``max_registers_per_block = 64 * 1024``; ``max_registers_per_thread = 255``;
``max_threads_per_block = 1024``), installed in the venv by the nvidia-cuda-cccl
wheel: ``cccl_limits`` reads it and tests/test_sm121_fit.py checks the constants
against it. The opt-in maximum is what Triton's launcher compares
``metadata.shared`` with (CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN).

MoE configs: SGLang looks its fused-MoE config up by device name
(``get_config_file_name``: ``E=256,N=512,device_name=NVIDIA_GB10,dtype=fp8_w8a8,
block_shape=[128, 128].json`` here) in ``configs/triton_X_Y_Z/`` under
``$SGLANG_MOE_CONFIG_DIR`` (default: its own package folder; a set variable
replaces that folder for every model, it is not searched as well), then in the
other ``triton_*`` folders, and falls back to ``get_default_config``. SGLang v0.5.23
ships no GB10 file; its default (64 x 128 x 128, 3 stages, 4 warps for block FP8)
fits, so this project ships none either. ``--moe-config-dir DIR`` judges a folder
of one's own (``DIR/configs/triton_X_Y_Z/<name>.json``, e.g. a tuned GB10 file)
through SGLANG_MOE_CONFIG_DIR, as SGLang would read it.

    .venv/bin/python scripts/sm121_fit.py                  # the table (SGLang's defaults)
    .venv/bin/python scripts/sm121_fit.py --moe-config-dir DIR --only moe
    .venv/bin/python scripts/sm121_fit.py --json rows.json # also write the rows

Exit status: 0 when every row fits, 1 otherwise.
"""

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SGLANG = REPO / "build" / "sglang-0.5.23" / "python"
CONFIG = REPO / "recipes" / "configs" / "MiMo-V2.5" / "config.json"
RECIPE = REPO / "recipes" / "mimo-v2.5-gb10x4.yaml"

GB10_NAME = "NVIDIA GB10"
GB10_CAPABILITY = (12, 1)
# sm_121 (GB10): see the module docstring for the source of each number.
GB10_LIMITS = {
    "smem_per_block_optin": 101_376,
    "regs_per_block": 65_536,
    "regs_per_thread": 255,
    "threads_per_block": 1_024,
}
TARGET_ARCH = 121

# Token counts (M) the MoE config lookup is asked at: SGLang's tuning grid
# (benchmark/kernels/fused_moe_triton's batch sizes) up to the recipe's 8,192-token
# prefill chunk. Decode with EAGLE verify runs 24 requests x 4 draft tokens = 96.
MOE_M = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 1536, 2048, 3072, 4096, 8192)  # fmt: skip
# Dense FP8 linear token counts (the same grid; the Triton fallback's default config
# does not depend on M, a tuned file would).
DENSE_M = MOE_M


# --------------------------------------------------------------------------- limits


def cccl_arch_traits_path():
    """NVIDIA CCCL's arch_traits.h as the nvidia-cuda-cccl wheel installs it, or None."""
    try:
        from importlib import metadata

        dist = metadata.distribution("nvidia-cuda-cccl")
    except Exception:
        return None
    for f in dist.files or ():
        if str(f).endswith("cuda/__device/arch_traits.h"):
            return Path(dist.locate_file(f))
    return None


def cccl_limits(path):
    """sm_121's per-block limits as NVIDIA's CCCL arch_traits.h states them."""
    text = Path(path).read_text()

    def block(arch):
        m = re.search(
            r"arch_traits<arch_id::%s>\(\)\s*noexcept\s*\{(.*?)\n\};" % arch, text, re.S
        )
        assert m, f"{path}: no arch_traits<arch_id::{arch}>"
        return m.group(1)

    sm121 = block("sm_121")
    # sm_121 is sm_120's traits with its own name and capability.
    assert "arch_traits<arch_id::sm_120>()" in sm121, sm121
    assert (
        "compute_capability_major = 12" in sm121
        and "compute_capability_minor = 1" in sm121
    )
    sm120 = block("sm_120")

    def kib(body, field):
        m = re.search(r"__traits\.%s\s*=\s*(\d+)\s*\*\s*1024;" % field, body)
        return int(m.group(1)) * 1024 if m else None

    def number(body, field):
        m = re.search(r"__traits\.%s\s*=\s*(\d+);" % field, body)
        return int(m.group(1)) if m else None

    common = re.search(r"__common_arch_traits\(.*?\{(.*?)\n\}", text, re.S).group(1)
    smem_sm = kib(sm120, "max_shared_memory_per_multiprocessor")
    reserved = re.search(
        r"reserved_shared_memory_per_block\s*=\s*\(__cc >= compute_capability\{(\d+)\}\)\s*\?\s*(\d+)\s*:\s*0;",
        common,
    )
    assert reserved and int(reserved.group(1)) <= 121, "reserved-smem rule not found"
    assert (
        "max_shared_memory_per_multiprocessor - __traits.reserved_shared_memory_per_block"
        in sm120
    )
    return {
        "smem_per_block_optin": smem_sm - int(reserved.group(2)),
        "regs_per_block": kib(common, "max_registers_per_block"),
        "regs_per_thread": number(common, "max_registers_per_thread"),
        "threads_per_block": number(common, "max_threads_per_block"),
    }


# --------------------------------------------------------------------------- model shapes


def mimo_shapes(config_path=CONFIG, recipe_path=RECIPE):
    """MiMo-V2.5's per-rank shapes at the recipe's TP, from the released config.json."""
    import yaml

    cfg = json.loads(Path(config_path).read_text())
    recipe = yaml.safe_load(Path(recipe_path).read_text())
    args = {}
    for item in recipe["server_args"]:
        args.update(item if isinstance(item, dict) else {item: True})
    tp = int(args["--tp-size"])
    assert args["--attention-backend"] == "triton", args["--attention-backend"]
    assert args["--mm-attention-backend"] == "triton_attn"
    assert args["--quantization"] == "fp8" and args["--kv-cache-dtype"] == "fp8_e4m3"
    vis = cfg["vision_config"]
    return {
        "tp": tp,
        "hidden": cfg["hidden_size"],
        "full": {
            "q_heads": cfg["num_attention_heads"] // tp,
            "kv_heads": max(1, cfg["num_key_value_heads"] // tp),
            "head_dim": cfg["head_dim"],
            "v_head_dim": cfg["v_head_dim"],
            # SGLang passes sliding_window_size=-1 for the full layers (models/mimo_v2.py)
            "window": -1,
            "sinks": bool(cfg.get("add_full_attention_sink_bias")),
        },
        "swa": {
            "q_heads": cfg["swa_num_attention_heads"] // tp,
            "kv_heads": max(1, cfg["swa_num_key_value_heads"] // tp),
            "head_dim": cfg["swa_head_dim"],
            "v_head_dim": cfg["swa_v_head_dim"],
            # models/mimo_v2.py: sliding_window_size=config.sliding_window_size - 1
            "window": cfg["sliding_window_size"] - 1,
            "sinks": bool(cfg.get("add_swa_attention_sink_bias")),
        },
        "moe": {
            "E": cfg["n_routed_experts"],
            "N": cfg["moe_intermediate_size"] // tp,
            "K": cfg["hidden_size"],
            "topk": cfg["num_experts_per_tok"],
            "block": list(cfg["quantization_config"]["weight_block_size"]),
        },
        "dense_intermediate": cfg["intermediate_size"] // tp,
        # The multimodal encoders, filled in by encoder_shapes() (SGLang's config classes).
        "vision_config": vis,
        "max_running_requests": int(args["--max-running-requests"]),
        "chunked_prefill": int(args["--chunked-prefill-size"]),
    }


def encoder_shapes(shapes):
    """Head dims of the multimodal encoders, through SGLang's own config classes.

    Vision: MiMoV2ForCausalLM builds the tower from
    ``MiMoVLVisionConfig.from_dict(config["vision_config"])`` (models/mimo_v2.py);
    its head dim is ``qk_channels`` (the released vision_config has none: the class
    default; the checkpoint's qkv 3072 x 1280 is 32 x 64 + 2 x 8 x 64). Windowed blocks
    use (visual_token_window_size,) * 2 with key-0 sinks, the full blocks neither.
    Audio: the audio tokenizer's encoder (AudioEncoderAttention on VisionAttention)
    has head dim d_model / encoder_attention_heads of ``MiMoAudioTokenizerConfig``; the
    tokenizer's own config is not in config.json, so its class defaults give it.
    """
    from sglang.srt.models.mimo_audio import MiMoAudioTokenizerConfig
    from sglang.srt.models.mimo_vl import MiMoVLVisionConfig

    vis = MiMoVLVisionConfig.from_dict(shapes["vision_config"])
    tok = MiMoAudioTokenizerConfig()
    shapes["vision"] = {
        "q_heads": vis.num_heads,
        "kv_heads": vis.num_key_value_heads,
        "head_dim": vis.qk_channels or vis.hidden_size // vis.num_heads,
        "window": vis.visual_token_window_size,
    }
    shapes["audio"] = {
        "heads": tok.encoder_attention_heads,
        "head_dim": tok.d_model // tok.encoder_attention_heads,
    }
    return shapes


# --------------------------------------------------------------------------- GB10 identity


class _Props:
    """torch.cuda.get_device_properties() of a GB10, as far as SGLang reads it."""

    name = GB10_NAME
    major, minor = GB10_CAPABILITY
    shared_memory_per_block_optin = GB10_LIMITS["smem_per_block_optin"]
    shared_memory_per_block = 48 * 1024
    regs_per_multiprocessor = 65_536
    max_threads_per_multi_processor = 1_536
    multi_processor_count = 48
    warp_size = 32
    total_memory = 128 * 1024**3
    L2_cache_size = 24 * 1024**2


@contextlib.contextmanager
def gb10_identity():
    """torch.cuda says: one device, a GB10 (capability 12.1)."""
    import torch

    saved = {
        k: getattr(torch.cuda, k)
        for k in (
            "is_available",
            "get_device_capability",
            "get_device_name",
            "get_device_properties",
            "current_device",
            "device_count",
        )
    }
    torch.cuda.is_available = lambda: True
    torch.cuda.get_device_capability = lambda device=None: GB10_CAPABILITY
    torch.cuda.get_device_name = lambda device=None: GB10_NAME
    torch.cuda.get_device_properties = lambda device=None: _Props()
    torch.cuda.current_device = lambda: 0
    torch.cuda.device_count = lambda: 1
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(torch.cuda, k, v)


@contextlib.contextmanager
def patched(obj, **attrs):
    saved = {k: getattr(obj, k) for k in attrs if hasattr(obj, k)}
    missing = [k for k in attrs if not hasattr(obj, k)]
    for k, v in attrs.items():
        setattr(obj, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(obj, k, v)
        for k in missing:
            delattr(obj, k)


# --------------------------------------------------------------------------- capture


class Launch:
    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    @property
    def name(self):
        return self.fn.fn.__name__

    @property
    def module(self):
        return self.fn.fn.__module__


@contextlib.contextmanager
def capture():
    """Record Triton launches instead of compiling them for the local driver."""
    from triton.runtime import jit as tjit

    launches = []

    def record(self, *args, grid, warmup, **kwargs):
        launches.append(Launch(self, args, dict(kwargs)))
        return None

    with patched(tjit.JITFunction, run=record):
        yield launches


_PTXAS = {
    "regs": re.compile(r"Used (\d+) registers"),
    "spill_stores": re.compile(r"(\d+) bytes spill stores"),
    "spill_loads": re.compile(r"(\d+) bytes spill loads"),
    "stack": re.compile(r"(\d+) bytes stack frame"),
}


def compile_sm121(launch):
    """Bind, specialise and compile a recorded launch for sm_121a, as Triton's
    JITFunction.run would for a GB10; return the compiled kernel and ptxas's log."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime import jit as tjit

    fn, kwargs = launch.fn, dict(launch.kwargs)
    kwargs["debug"] = kwargs.get("debug", fn.debug) or knobs.runtime.debug
    kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    target = GPUTarget("cuda", TARGET_ARCH, 32)
    backend = make_backend(target)
    binder = tjit.create_function_from_signature(fn.signature, fn.params, backend)
    bound_args, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(
        backend, kwargs, bound_args, specialization, options
    )
    src = ASTSource(fn, signature, constexprs, attrs)
    out = io.StringIO()
    with (
        patched(knobs.nvidia, dump_ptxas_log=True),
        patched(knobs.compilation, always_compile=True),
        contextlib.redirect_stdout(out),
    ):
        kernel = triton.compile(src, target=target, options=options.__dict__)
    return kernel, out.getvalue(), constexprs


def measure(launch):
    kernel, log, constexprs = compile_sm121(launch)
    md = kernel.metadata
    ptx_target = re.search(r"^\.target (\S+)", kernel.asm["ptx"], re.M).group(1)
    found = {k: [int(x) for x in rx.findall(log)] for k, rx in _PTXAS.items()}
    assert found["regs"], f"no ptxas -v log for {launch.name}:\n{log}"
    threads = md.num_warps * 32  # per block (CTA)
    names = [p.name for p in launch.fn.params]
    row = {
        "kernel": launch.name,
        "module": launch.module,
        "ptx_target": ptx_target,
        "num_warps": md.num_warps,
        "num_stages": md.num_stages,
        "threads": threads,
        "smem": md.shared,
        "regs": max(found["regs"]),
        "spill_stores": max(found["spill_stores"] or [0]),
        "spill_loads": max(found["spill_loads"] or [0]),
        "stack": max(found["stack"] or [0]),
        # constexprs are keyed by argument path: (index,) for a top-level argument
        "constexprs": {
            (names[k[0]] if len(k) == 1 else str(k)): _plain(v)
            for k, v in constexprs.items()
        },
    }
    judge(row)
    return row


def _plain(v):
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return str(v)


def judge(row, limits=GB10_LIMITS):
    why = []
    if row["smem"] > limits["smem_per_block_optin"]:
        why.append(f"smem {row['smem']} > {limits['smem_per_block_optin']}")
    if row["regs"] > limits["regs_per_thread"]:
        why.append(f"regs {row['regs']} > {limits['regs_per_thread']}")
    if row["regs"] * row["threads"] > limits["regs_per_block"]:
        why.append(
            f"regs x threads {row['regs'] * row['threads']} > {limits['regs_per_block']}"
        )
    if row["threads"] > limits["threads_per_block"]:
        why.append(f"threads {row['threads']} > {limits['threads_per_block']}")
    row["fits"] = not why
    row["why"] = "; ".join(why)
    return row


# --------------------------------------------------------------------------- the launches


def _import_sglang(sglang_dir):
    sglang_dir = str(Path(sglang_dir).resolve())
    if sglang_dir not in sys.path:
        sys.path.insert(0, sglang_dir)
    import sglang

    where = Path(sglang.__file__).resolve()
    assert str(where).startswith(
        sglang_dir
    ), f"imported sglang from {where}, not {sglang_dir}"
    return sglang


def mm_prefill_launches(shapes):
    """0008's kernel, with 0014's main loop, as VisionTritonAttention calls it
    (layers/attention/vision.py)."""
    import sglang.kernels.ops.attention.prefill_attention as pa
    import torch

    assert "WINDOW_LEFT" in pa._fwd_kernel.arg_names, "0008 is not applied to this tree"
    encoder_shapes(shapes)
    v, a = shapes["vision"], shapes["audio"]
    vis = dict(hq=v["q_heads"], hkv=v["kv_heads"], d=v["head_dim"], causal=False)
    aud = dict(hq=a["heads"], hkv=a["heads"], d=a["head_dim"])
    w = v["window"]
    cases = [
        (f"vision windowed ({w}, {w}), key-0 sinks, head dim {v['head_dim']}",
         dict(vis, window=(w, w), sinks=True, key0=True)),
        (f"vision full blocks, head dim {v['head_dim']}",
         dict(vis, window=(-1, -1), sinks=False, key0=False)),
        (f"audio causal, window (128, 0), head dim {a['head_dim']}",
         dict(aud, causal=True, window=(128, 0), sinks=False, key0=False)),
        (f"audio causal, head dim {a['head_dim']}",
         dict(aud, causal=True, window=(-1, -1), sinks=False, key0=False)),
        (f"audio full, head dim {a['head_dim']}",
         dict(aud, causal=False, window=(-1, -1), sinks=False, key0=False)),
    ]  # fmt: skip
    out = []
    with patched(pa, _is_cuda=True, CUDA_CAPABILITY=GB10_CAPABILITY):
        for label, c in cases:
            n, hq, hkv, d = 4096, c["hq"], c["hkv"], c["d"]
            q = torch.empty(n, hq, d, dtype=torch.bfloat16)
            k = torch.empty(n, hkv, d, dtype=torch.bfloat16)
            vv = torch.empty(n, hkv, d, dtype=torch.bfloat16)
            o = torch.empty_like(q)
            cu = torch.zeros(2, dtype=torch.int32)
            lens = torch.full((1,), n, dtype=torch.int32)
            s = torch.zeros(hq, dtype=torch.float32) if c["sinks"] else None
            with capture() as rec:
                pa.context_attention_fwd(
                    q, k, vv, o, cu, lens, n, is_causal=c["causal"], sm_scale=d**-0.5,
                    window_size=c["window"], sinks=s, sinks_bias_key0=c["key0"],
                )  # fmt: skip
            out += [("mm prefill (0008, 0014)", label, r) for r in rec]
    return out


def text_attention_launches(shapes):
    """TritonAttnBackend's extend and decode kernels for MiMo's two layer kinds."""
    import sglang.kernels.ops.attention.decode_attention as da
    import sglang.kernels.ops.attention.extend_attention as ea
    import torch
    from sglang.kernels.jit.utils.arch import (
        is_arch_support_pdl,
        override_jit_cuda_arch,
    )

    with override_jit_cuda_arch(*GB10_CAPABILITY):
        use_pdl = is_arch_support_pdl()  # what TritonAttnBackend sets on CUDA
    assert use_pdl, "SGLang says sm_121 has no PDL"
    max_kv_splits = (
        8  # --triton-attention-num-kv-splits default (arg_groups/fields/exec_.py)
    )
    fp8 = torch.float8_e4m3fn  # --kv-cache-dtype fp8_e4m3
    out = []
    for kind in ("swa", "full"):
        L = shapes[kind]
        hq, hkv, dq, dv = L["q_heads"], L["kv_heads"], L["head_dim"], L["v_head_dim"]
        sinks = torch.zeros(hq, dtype=torch.bfloat16) if L["sinks"] else None
        pool = 65536
        k_buf = torch.empty(pool, hkv, dq, dtype=fp8)
        v_buf = torch.empty(pool, hkv, dv, dtype=fp8)
        label = f"{kind} layers: {hq}/{hkv} heads, {dq}/{dv}, window {L['window']}, sinks {L['sinks']}"
        n, bs = 1024, 4
        q = torch.empty(n, hq, dq, dtype=torch.bfloat16)
        k = torch.empty(n, hkv, dq, dtype=torch.bfloat16)
        v = torch.empty(n, hkv, dv, dtype=torch.bfloat16)
        o = torch.empty(n, hq, dv, dtype=torch.bfloat16)
        qo_indptr = torch.zeros(bs + 1, dtype=torch.int32)
        kv_indptr = torch.zeros(bs + 1, dtype=torch.int64)
        kv_indices = torch.zeros(4096, dtype=torch.int64)
        offsets = torch.zeros(bs, dtype=torch.int32) if L["window"] > 0 else None
        for verify in (False, True):
            # EAGLE target-verify passes its custom mask; prefill/extend passes none.
            mask = torch.zeros(8192, dtype=torch.uint8) if verify else None
            mask_indptr = torch.zeros(bs + 1, dtype=torch.int64)
            with (
                patched(ea, _is_cuda=True, CUDA_CAPABILITY=GB10_CAPABILITY),
                capture() as rec,
            ):
                ea.extend_attention_fwd(
                    q,
                    k,
                    v,
                    o,
                    k_buf,
                    v_buf,
                    qo_indptr,
                    kv_indptr,
                    kv_indices,
                    mask,
                    True,
                    mask_indptr,
                    256,
                    1.0,
                    1.0,
                    sm_scale=dq**-0.5,
                    sliding_window_size=L["window"],
                    sinks=sinks,
                    window_kv_offsets=offsets,
                    page_size=1,
                )
            what = "extend (EAGLE verify, custom mask)" if verify else "extend/prefill"
            out += [(f"text {what}", label, r) for r in rec]
        bsd = shapes["max_running_requests"]
        qd = torch.empty(bsd, hq, dq, dtype=torch.bfloat16)
        od = torch.empty(bsd, hq, dv, dtype=torch.bfloat16)
        logits = torch.empty(bsd, hq, max_kv_splits, dv, dtype=torch.float32)
        lse = torch.empty(bsd, hq, max_kv_splits, dtype=torch.float32)
        splits = torch.empty(bsd, dtype=torch.int32)
        with capture() as rec:
            da.decode_attention_fwd(
                qd,
                k_buf,
                v_buf,
                od,
                torch.zeros(bsd + 1, dtype=torch.int32),
                torch.zeros(4096, dtype=torch.int64),
                logits,
                lse,
                splits,
                max_kv_splits,
                dq**-0.5,
                1.0,
                1.0,
                sinks=sinks,
                use_pdl=use_pdl,
                page_size=1,
            )
        out += [("text decode", label, r) for r in rec]
    return out


def moe_config_for(shapes, M, config_dir=None):
    """The fused-MoE config SGLang picks on a GB10 for M tokens (and the down one)."""
    from sglang.srt.layers.moe.moe_runner.triton_utils import (
        fused_moe_triton_config as fc,
    )

    m = shapes["moe"]
    E, N, K = m["E"], m["N"], m["K"]
    env = {"SGLANG_MOE_CONFIG_DIR": str(config_dir)} if config_dir else {}
    old = os.environ.pop("SGLANG_MOE_CONFIG_DIR", None)
    os.environ.update(env)
    fc.get_moe_configs.cache_clear()
    fc._get_cuda_shared_memory_per_block_optin.cache_clear()
    try:
        with gb10_identity():
            name = fc.get_config_file_name(E, N, "fp8_w8a8", m["block"])
            config, (down, _) = fc.try_get_optimal_moe_config(
                (E, 2 * N, K),
                (E, K, N),
                m["topk"],
                "fp8_w8a8",
                M,
                block_shape=m["block"],
                return_down_config=True,
            )
    finally:
        os.environ.pop("SGLANG_MOE_CONFIG_DIR", None)
        if old is not None:
            os.environ["SGLANG_MOE_CONFIG_DIR"] = old
        fc.get_moe_configs.cache_clear()
    return name, dict(config), (dict(down) if down else None)


def moe_launches(shapes, config_dir=None, ms=MOE_M):
    """fused_moe_triton's kernels as _fused_moe_kernel_sequence launches them."""
    import sglang.kernels.ops.moe.fused_moe_triton_kernels as fk
    import sglang.kernels.ops.moe.moe_align_small_numel as small
    import torch
    import triton.language as tl
    from sglang.kernels.jit.utils.arch import (
        is_arch_support_pdl,
        override_jit_cuda_arch,
    )
    from sglang.kernels.ops.quantization.fp8_kernel import (
        create_per_token_group_quant_fp8_output_scale,
    )

    # (the package re-exports a function of the module's name: import the module)
    mab = importlib.import_module(
        "sglang.srt.layers.moe.moe_runner.triton_utils.moe_align_block_size"
    )
    m = shapes["moe"]
    E, N, K, topk, block = m["E"], m["N"], m["K"], m["topk"], m["block"]
    fp8 = torch.float8_e4m3fn
    w1 = torch.empty(E, 2 * N, K, dtype=fp8)
    w2 = torch.empty(E, K, N, dtype=fp8)
    w1_s = torch.empty(E, 2 * N // block[0], K // block[1], dtype=torch.float32)
    w2_s = torch.empty(E, K // block[0], N // block[1], dtype=torch.float32)

    def jit_quant(x, group_size, *a, **kw):
        # sglang_per_token_group_quant_fp8 (a CUDA JIT kernel, not Triton): its outputs.
        xs = create_per_token_group_quant_fp8_output_scale(
            x_shape=tuple(x.shape),
            device=x.device,
            group_size=group_size,
            column_major_scales=False,
            scale_tma_aligned=False,
            scale_ue8m0=False,
        )
        return torch.empty(x.shape, dtype=fp8), xs

    def cuda_align(*a, **kw):  # sgl-kernel's moe_align_block_size: fills buffers only
        return None

    out = []
    names = set()
    with override_jit_cuda_arch(*GB10_CAPABILITY):
        pdl = is_arch_support_pdl()
    for M in ms:
        name, config, down = moe_config_for(shapes, M, config_dir)
        names.add(name)
        hidden = torch.empty(M, K, dtype=torch.bfloat16)
        topk_ids = torch.zeros(M, topk, dtype=torch.int32)
        topk_w = torch.empty(M, topk, dtype=torch.float32)
        with (
            patched(
                mab,
                _is_cuda=True,
                moe_align_small_numel=small.moe_align_small_numel,
                SMALL_NUMEL_LIMIT=small.SMALL_NUMEL_LIMIT,
                sgl_moe_align_block_size=cuda_align,
            ),
            patched(
                fk,
                _is_cuda=True,
                sglang_per_token_group_quant_fp8=jit_quant,
                is_arch_support_pdl=lambda: pdl,
            ),
            patched(small, is_arch_support_pdl=lambda: pdl),
            gb10_identity(),
            capture() as rec,
        ):
            sorted_ids, expert_ids, ntp = mab.moe_align_block_size(
                topk_ids, config["BLOCK_SIZE_M"], E
            )
            cache1 = torch.empty(M * topk, 2 * N, dtype=torch.bfloat16)
            common = dict(
                compute_type=tl.bfloat16,
                use_fp8_w8a8=True,
                use_int8_w8a8=False,
                use_int8_w8a16=False,
                use_int4_w4a16=False,
                per_channel_quant=False,
                block_shape=block,
                filter_expert=False,
            )
            fk.invoke_fused_moe_kernel(
                hidden,
                w1,
                None,
                cache1,
                None,
                w1_s,
                None,
                topk_w,
                topk_ids,
                sorted_ids,
                expert_ids,
                ntp,
                False,
                topk,
                config,
                **common,
            )
            cache2 = torch.empty(M * topk, N, dtype=torch.bfloat16)
            cache3 = torch.empty(M, topk, K, dtype=torch.bfloat16)
            fk.invoke_fused_moe_kernel(
                cache2,
                w2,
                None,
                cache3,
                None,
                w2_s,
                None,
                topk_w,
                topk_ids,
                sorted_ids,
                expert_ids,
                ntp,
                True,
                1,
                down or config,
                **common,
                router_topk=topk,
            )
            # moe_combine_topk: topk 8, no routed scaling: moe_sum_reduce_triton for
            # <= 32 tokens when PDL is supported (else sgl-kernel's moe_sum_reduce).
            if M <= 32 and pdl:
                fk.moe_sum_reduce_triton(
                    cache3, torch.empty(M, K, dtype=torch.bfloat16), 1.0
                )
        for i, r in enumerate(rec):
            if r.name == "fused_moe_kernel":
                which = "up (w13)" if r.kwargs["top_k"] == topk else "down (w2)"
            else:
                which = r.name
            out.append(("fused MoE", f"M={M} {which}", r))
    return out, sorted(names)


def dense_fp8_launches(shapes, ms=DENSE_M):
    """The block-FP8 linears that reach Triton on sm_121.

    auto FP8 GEMM backend on sm_12x is cutlass (fp8_utils.initialize_fp8_gemm_config);
    cutlass_w8a8_block_fp8_linear_with_fallback sends weights whose N or K is not a
    multiple of 128 to triton_w8a8_block_fp8_linear (w8a8_block_fp8_matmul_triton).
    """
    import sglang.kernels.ops.gemm.fp8_kernel as gk
    import torch

    hidden = shapes["hidden"]
    block = shapes["moe"]["block"]
    linears = {}
    for kind in ("full", "swa"):
        L = shapes[kind]
        n = L["q_heads"] * L["head_dim"] + L["kv_heads"] * (
            L["head_dim"] + L["v_head_dim"]
        )
        linears[f"{kind} qkv_proj"] = (n, hidden)
    linears["dense mlp gate_up_proj"] = (2 * shapes["dense_intermediate"], hidden)
    linears["dense mlp down_proj"] = (hidden, shapes["dense_intermediate"])
    out, skipped = [], []
    for label, (N, K) in linears.items():
        if N % 128 == 0 and K % 128 == 0:
            skipped.append(f"{label} N={N} K={K}: cutlass")
            continue
        B = torch.empty(N, K, dtype=torch.float8_e4m3fn)
        Bs = torch.empty(-(-N // block[0]), -(-K // block[1]), dtype=torch.float32)
        for M in ms:
            A = torch.empty(M, K, dtype=torch.float8_e4m3fn)
            As = torch.empty(M, -(-K // block[1]), dtype=torch.float32)
            with gb10_identity(), patched(gk, _is_cuda=True), capture() as rec:
                gk.w8a8_block_fp8_matmul_triton(
                    A, B, As, Bs, block, output_dtype=torch.bfloat16
                )
            out += [
                ("dense FP8 linear (Triton fallback)", f"{label} N={N} K={K} M={M}", r)
                for r in rec
            ]
    return out, skipped


def _key(launch):
    """What makes two launches one compiled kernel (Triton's cache key, less the source)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime import jit as tjit

    backend = make_backend(GPUTarget("cuda", TARGET_ARCH, 32))
    binder = tjit.create_function_from_signature(
        launch.fn.signature, launch.fn.params, backend
    )
    kw = dict(launch.kwargs)
    _, specialization, options = binder(*launch.args, **kw)
    return (
        launch.module,
        launch.name,
        repr(specialization),
        repr(sorted(options.items())),
    )


def collect(
    sglang_dir=DEFAULT_SGLANG, moe_config_dir=None, groups=None, jobs=None, moe_m=MOE_M
):
    """Every distinct launch, compiled and judged: (rows, notes)."""
    _import_sglang(sglang_dir)
    shapes = mimo_shapes()
    groups = groups or ("mm", "text", "moe", "dense")
    launches = []
    notes = {"shapes": shapes}
    if "mm" in groups:
        launches += mm_prefill_launches(shapes)
    if "text" in groups:
        launches += text_attention_launches(shapes)
    if "moe" in groups:
        # The MoE config lookup reads the exec config (deterministic inference off,
        # as in the recipe): publish SGLang's defaults, as its unit tests do.
        from sglang.srt.runtime_context import publish
        from sglang.srt.server_args import ServerArgs

        publish(ServerArgs(model_path="dummy"), role="sm121-fit")
        moe, names = moe_launches(shapes, moe_config_dir, moe_m)
        launches += moe
        notes["moe_config_files"] = names
    if "dense" in groups:
        dense, skipped = dense_fp8_launches(shapes)
        launches += dense
        notes["dense_on_cutlass"] = skipped
    seen = {}
    for group, case, launch in launches:
        key = _key(launch)
        if key in seen:
            seen[key]["cases"].append(case)
            continue
        seen[key] = {"group": group, "cases": [case], "launch": launch}
    entries = list(seen.values())
    global _PENDING
    _PENDING = [e["launch"] for e in entries]
    with tempfile.TemporaryDirectory(prefix="sm121-fit-cache-") as cache:
        os.environ["TRITON_CACHE_DIR"] = cache
        # Compiles are independent: one forked worker per core (the launches are
        # inherited, not pickled).
        workers = min(jobs or os.cpu_count() or 1, len(entries)) or 1
        if workers > 1:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(workers) as pool:
                measured = pool.map(_measure_pending, range(len(entries)), chunksize=1)
        else:
            measured = [_measure_pending(i) for i in range(len(entries))]
    rows = []
    for entry, row in zip(entries, measured):
        row["group"] = entry["group"]
        row["cases"] = entry["cases"]
        rows.append(row)
    return rows, notes


_PENDING = []


def _measure_pending(i):
    return measure(_PENDING[i])


# --------------------------------------------------------------------------- output

_SHOWN = (
    "BLOCK_M",
    "BLOCK_N",
    "BLOCK_DMODEL",
    "BLOCK_DPE",
    "BLOCK_DV",
    "BLOCK_H",
    "BLOCK_SIZE_M",
    "BLOCK_SIZE_N",
    "BLOCK_SIZE_K",
    "GROUP_SIZE_M",
    "BLOCK_DIM",
    "WINDOW_LEFT",
    "WINDOW_RIGHT",
    "SLIDING_WINDOW_SIZE",
    "HAS_SINKS",
    "HAS_SINK",
    "SINKS_BIAS_KEY0",
    "IS_CAUSAL",
    "USE_CUSTOM_MASK",
    "USE_GDC",
    "GDC_EARLY",
    "MUL_ROUTED_WEIGHT",
)


def config_text(row):
    c = row["constexprs"]
    parts = [f"{k}={c[k]}" for k in _SHOWN if k in c]
    parts.append(f"warps={row['num_warps']} stages={row['num_stages']}")
    return " ".join(parts)


def table(rows):
    head = (
        "group",
        "kernel",
        "config",
        "cases",
        "smem B",
        "regs",
        "regs x thr",
        "spill st/ld B",
        "fits",
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cases = r["cases"]
        shown = "; ".join(cases[:3]) + (
            f"; +{len(cases) - 3} more" if len(cases) > 3 else ""
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    r["group"],
                    r["kernel"],
                    config_text(r),
                    shown,
                    f"{r['smem']:,}",
                    str(r["regs"]),
                    f"{r['regs'] * r['threads']:,}",
                    f"{r['spill_stores']}/{r['spill_loads']}",
                    "yes" if r["fits"] else f"**no** ({r['why']})",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sglang",
        default=str(DEFAULT_SGLANG),
        help="the patched tree's python/ folder (default: %(default)s)",
    )
    ap.add_argument(
        "--moe-config-dir",
        default=None,
        help="SGLANG_MOE_CONFIG_DIR for the MoE rows (a folder holding configs/triton_X_Y_Z/)",
    )
    ap.add_argument(
        "--only",
        nargs="*",
        choices=("mm", "text", "moe", "dense"),
        help="only these groups",
    )
    ap.add_argument(
        "--moe-m",
        type=int,
        nargs="+",
        default=list(MOE_M),
        help="token counts the MoE config lookup is asked at (default: %(default)s)",
    )
    ap.add_argument(
        "--jobs", type=int, default=None, help="compile workers (default: cores)"
    )
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args(argv)
    if not Path(a.sglang, "sglang").is_dir():
        ap.error(f"{a.sglang}: no sglang/ here (run scripts/apply_patches.sh first)")
    rows, notes = collect(a.sglang, a.moe_config_dir, a.only, a.jobs, tuple(a.moe_m))
    import triton

    print(
        f"sm_121a (GB10) fit, Triton {triton.__version__}; limits: "
        + ", ".join(f"{k} {v:,}" for k, v in GB10_LIMITS.items())
    )
    if notes.get("moe_config_files"):
        print(
            "MoE config file SGLang looks for: "
            + ", ".join(notes["moe_config_files"])
            + (
                f" (SGLANG_MOE_CONFIG_DIR={a.moe_config_dir})"
                if a.moe_config_dir
                else " (SGLang's own config folder)"
            )
        )
    for s in notes.get("dense_on_cutlass", []):
        print(f"dense FP8 on cutlass, not Triton: {s}")
    print(table(rows))
    bad = [r for r in rows if not r["fits"]]
    print(f"{len(rows)} kernels, {len(bad)} do not fit")
    if a.json:
        Path(a.json).write_text(
            json.dumps({"rows": rows, "notes": notes}, indent=1, default=str)
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
