#!/usr/bin/env python3
"""Benchmark the multimodal attention backends of patches 0007/0008/0014 on one CUDA GPU.

Audio shapes like the MiMo audio tokenizer's encoder: head dim 64, 12 and 20
heads, (a) 16 clips of 100-1500 frames packed, (b) a 30-minute clip (~90,000
tokens at 50 tokens/s) as sglang packs it (30 segments of 3000) and (c) as one
sequence; windows (128, 0) causal and full causal. Vision shapes like the
MiMo-V2.5 vision tower: 32 query heads over 8 KV heads, head dim 64, window
(64, 64) without and with per-head key-0 sinks (a bias on the logit of key 0, as
the tower applies them), and full attention; 4 images of 4096 patches plus a
16x1024 video.

Paths, each on the same packed q/k/v:
  torch varlen_attn     - torch.nn.attention.varlen.varlen_attn(window_size=...),
                          the reference kernel (no sinks: a sink case is compared
                          with its time without sinks; GQA expanded beforehand)
  sdpa backend          - sdpa_band_attention() of patched layers/attention/vision.py
                          (what VisionSdpaAttention runs for a causal/windowed layer)
  triton_attn backend   - context_attention_fwd() of the patched tree's
                          kernels/ops/attention/prefill_attention.py, as
                          VisionTritonAttention calls it
  triton_attn baseline  - the same function of the --baseline tree, side by side
Time is the median of CUDA-event timed calls; memory is the peak allocated
above the inputs during one call. Error is the max abs difference to a float32
reference (per clip and query block, explicit mask, independent of the
patches). OOM marks a path that cannot fit.

--sglang DIR points at the patched tree's python/ folder (the one holding
sglang/), --baseline at another's. sglang's dependencies need not be installed:
only the two functions are loaded, each kernel module on its own with a
two-function stand-in for sglang.srt.utils (is_cuda/is_hip).
"""

import argparse
import ast
import math
import os
import statistics
import sys

import torch
import torch.nn.functional as F

KERNEL = "sglang/kernels/ops/attention/prefill_attention.py"
VISION = "sglang/srt/layers/attention/vision.py"
# The test file whose REFERENCE code and CASES --check-kernel runs.
KERNEL_TEST = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "tests/regression/registered/unit/layers/attention/test_triton_prefill_window_sinks.py",
)


def load_sdpa_band(sglang_python):
    path = os.path.join(sglang_python, VISION)
    tree = ast.parse(open(path).read())
    keep = [
        n
        for n in tree.body
        if (isinstance(n, ast.FunctionDef) and n.name == "sdpa_band_attention")
        or (
            isinstance(n, ast.Assign)
            and any(getattr(t, "id", "") == "_SDPA_BAND_BLOCK" for t in n.targets)
        )
    ]
    assert len(keep) == 2, f"{path}: no sdpa_band_attention: is 0007 applied?"
    ns = {"torch": torch, "F": F}
    ns.update({k: getattr(__import__("typing"), k) for k in ("Optional", "Tuple")})
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), ns)
    return ns["sdpa_band_attention"]


def load_triton_kernel(sglang_python, name="prefill_attention"):
    """The tree's kernel module, loaded on its own under ``name`` with a
    two-function stand-in for sglang.srt.utils (is_cuda/is_hip): two trees'
    kernels can be loaded side by side."""
    import importlib.util
    import types

    if "sglang.srt.utils" not in sys.modules:
        stub = types.ModuleType("sglang.srt.utils")
        stub.is_cuda = lambda: torch.cuda.is_available() and torch.version.cuda
        stub.is_hip = lambda: torch.version.hip is not None
        for pkg in ("sglang", "sglang.srt"):
            sys.modules.setdefault(pkg, types.ModuleType(pkg))
        sys.modules["sglang.srt.utils"] = stub
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(sglang_python, KERNEL)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def band(n_q, n_k, window, causal, device, q0=0):
    left, right = window
    if causal:
        right = 0
    off = torch.arange(n_k, device=device) - torch.arange(
        q0, q0 + n_q, device=device
    ).unsqueeze(1)
    m = torch.ones(n_q, n_k, dtype=torch.bool, device=device)
    if left >= 0:
        m &= off >= -left
    if right >= 0:
        m &= off <= right
    return m


def reference(q, k, v, lengths, window, causal, sinks=None, key0=False, block=1024):
    """float32, explicit mask, per clip and query block; sinks in the denominator
    form, or with ``key0`` as a bias on the logit of key 0 inside the window."""
    q, k, v = q.float(), k.float(), v.float()
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    scale = 1 / math.sqrt(q.shape[-1])
    out = torch.empty_like(q)
    s = 0
    for n in lengths:
        for a in range(0, n, block):
            e = min(n, a + block)
            m = band(e - a, n, window, causal, q.device, q0=a)
            scores = torch.einsum("ihd,jhd->hij", q[s + a : s + e], k[s : s + n])
            scores = (scores * scale).masked_fill(~m, float("-inf"))
            if sinks is not None and key0:
                scores[:, :, 0] += sinks.float()[:, None]
            elif sinks is not None:
                sink = sinks.float()[:, None, None].expand(-1, e - a, 1)
                scores = torch.cat([scores, sink], -1)
            p = scores.softmax(-1)[..., :n]
            out[s + a : s + e] = torch.einsum("hij,jhd->ihd", p, v[s : s + n])
        s += n
    return out


def measure(fn, min_time=0.3, max_iters=50):
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    try:
        out = fn()  # warm-up (and Triton compile) and memory
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        times = []
        while len(times) < 3 or (
            sum(times) < min_time * 1e3 and len(times) < max_iters
        ):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        return out, statistics.median(times), peak
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return "OOM", None, None
    except (RuntimeError, TypeError) as e:
        return f"error: {str(e).splitlines()[0][:70]}", None, None


def check_kernel(test_file):
    """The float64-reference check of tests/regression/registered/unit/layers/
    attention/test_triton_prefill_window_sinks.py (its REFERENCE code and CASES), compiled for this GPU, at the test's
    tolerances; for machines where the test itself cannot import sglang."""
    tree = ast.parse(open(test_file).read())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") in (
            "REFERENCE",
            "CASES",
        ):
            found[node.targets[0].id] = ast.literal_eval(node.value)
    ns = {}
    exec(found["REFERENCE"], ns)
    bad = 0
    for dtype, tol in ((torch.bfloat16, 3e-2), (torch.float16, 4e-3)):
        for heads, dim in ((16, 80), (20, 64), (32, 64)):
            for i, case in enumerate(found["CASES"]):
                finite, err = ns["run_case"](*case, "cuda", dtype, heads, dim, i)
                ok = finite and err < tol
                bad += not ok
                print(
                    f"{'ok  ' if ok else 'FAIL'} {dtype} {heads}x{dim} {case}: "
                    f"max err {err:.5f}"
                )
    print(f"kernel check: {bad} failed")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sglang", required=True, help="patched tree's python/ folder")
    ap.add_argument(
        "--baseline",
        metavar="DIR",
        help="another tree's python/ folder (e.g. the series without its last "
        "kernel patch): its kernel is timed beside the patched one",
    )
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    ap.add_argument("--quick", action="store_true", help="16-clip cases only")
    ap.add_argument("--no-sdpa", action="store_true", help="skip the sdpa backend")
    ap.add_argument(
        "--check-kernel",
        metavar="TEST_FILE",
        nargs="?",
        const=KERNEL_TEST,
        help="run the float64 kernel check of this test file instead of timing "
        f"(default: {KERNEL_TEST})",
    )
    args = ap.parse_args()
    sdpa_band = load_sdpa_band(args.sglang)
    kernel = load_triton_kernel(args.sglang)
    if args.check_kernel:
        # the test's run_case imports the kernel by its sglang name
        sys.modules["sglang.kernels.ops.attention.prefill_attention"] = kernel
        return check_kernel(args.check_kernel)
    kernels = {"triton_attn backend": kernel.context_attention_fwd}
    if args.baseline:
        base = load_triton_kernel(args.baseline, "baseline_prefill_attention")
        kernels = {"triton_attn baseline": base.context_attention_fwd, **kernels}
    from torch.nn.attention.varlen import varlen_attn

    dtype = getattr(torch, args.dtype)
    dev = torch.device("cuda")
    cap = "".join(map(str, torch.cuda.get_device_capability()))
    print(
        f"GPU: {torch.cuda.get_device_name()} (sm_{cap}), torch {torch.__version__}, "
        f"{args.dtype}"
    )
    if args.baseline:
        print(f"triton_attn baseline: {args.baseline}\ntriton_attn: {args.sglang}")

    def triton_call(fwd, q, k, v, lengths, cu, window, causal, sinks=None):
        out = torch.empty_like(q)
        lens = cu[1:] - cu[:-1]
        fwd(
            q,
            k,
            v,
            out,
            cu[:-1],
            lens,
            max(lengths),
            is_causal=causal,
            window_size=window,
            sinks=sinks,
            sinks_bias_key0=sinks is not None,
        )
        return out

    def varlen_call(q, k, v, lengths, cu, window, causal):
        left, right = window
        w = (left, 0 if causal else right)
        return varlen_attn(q, k, v, cu, cu, max(lengths), max(lengths), window_size=w)

    gen = torch.Generator().manual_seed(0)
    clips = torch.randint(100, 1501, (16,), generator=gen).tolist()
    audio = [("16 clips", clips)]
    if not args.quick:
        audio += [("30-min clip as served", [3000] * 30), ("30-min clip", [90000])]
    cases = []
    for name, lengths in audio:
        for heads in (12, 20):
            for wname, window in (
                ("(128,0) causal", (128, 0)),
                ("full causal", (-1, -1)),
            ):
                cases.append(
                    (f"audio {name}", lengths, heads, heads, window, True, False, wname)
                )
    vision = [4096] * 4 + [1024] * 16
    for wname, window, sinks in (
        ("(64,64)", (64, 64), False),
        ("(64,64) + key-0 sinks", (64, 64), True),
        ("full", (-1, -1), False),
    ):
        name = "vision 4 images + 16-frame video"
        cases.append((name, vision, 32, 8, window, False, sinks, wname))

    varlen_ms = {}  # (lengths, heads, window, causal) -> varlen_attn's time
    table = []
    for name, lengths, hq, hkv, window, causal, use_sinks, wname in cases:
        total = sum(lengths)
        q = torch.randn(total, hq, 64, device=dev, dtype=dtype)
        k, v = (torch.randn(total, hkv, 64, device=dev, dtype=dtype) for _ in range(2))
        sinks = torch.randn(hq, device=dev) * 2 if use_sinks else None
        cu = torch.tensor([0] + lengths, device=dev).cumsum(0).to(torch.int32)
        ref = reference(q, k, v, lengths, window, causal, sinks, key0=True)
        kx = k.repeat_interleave(hq // hkv, dim=1)
        vx = v.repeat_interleave(hq // hkv, dim=1)
        paths = {}
        if sinks is None:  # varlen_attn has no sinks
            paths["torch varlen_attn"] = lambda: varlen_call(
                q, kx, vx, lengths, cu, window, causal
            )
        if not args.no_sdpa:
            paths["sdpa backend"] = lambda: sdpa_band(
                q, k, v, cu, window, causal, sinks_key0=sinks
            )
        for pname, fwd in kernels.items():
            paths[pname] = lambda fwd=fwd: triton_call(
                fwd, q, k, v, lengths, cu, window, causal, sinks
            )
        case = f"{name} ({total} tok), {hq}/{hkv} heads, {wname}"
        print(
            f"\n{case}\n  {'path':22s} {'time ms':>10s} {'peak MiB':>10s} {'max err':>9s}"
        )
        res = {}
        for pname, fn in paths.items():
            out, ms, peak = measure(fn)
            if ms is None:
                print(f"  {pname:22s} {out}")
                res[pname] = None
                continue
            err = (out.float() - ref).abs().max().item()
            res[pname] = (ms, peak, err)
            print(f"  {pname:22s} {ms:10.3f} {peak / 2**20:10.1f} {err:9.4f}")
            del out
            torch.cuda.empty_cache()
        key = (tuple(lengths), hq, window, causal)
        if res.get("torch varlen_attn"):
            varlen_ms[key] = res["torch varlen_attn"]
        base = varlen_ms.get(key)
        if base:
            what = "varlen_attn" if sinks is None else "varlen_attn without sinks"
            for pname in paths:
                if pname != "torch varlen_attn" and res.get(pname):
                    t, m = res[pname][0] / base[0], res[pname][1] / max(base[1], 1)
                    print(f"  {pname}: {t:.2f}x {what} time, {m:.2f}x its memory")
        table.append((case, res, base))
        paths = res = None  # the case's tensors, freed before the next
        torch.cuda.empty_cache()
    names = ([] if args.no_sdpa else ["sdpa backend"]) + list(kernels)
    print(markdown(table, names))
    return 0


def markdown(table, names):
    """The summary: one row a case, time and peak memory per path, in brackets the
    ratios to varlen_attn's (without sinks for a sink case), and the max errors."""
    head = ["case", "torch varlen_attn", *names, "max err"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, res, base in table:
        cells = [case]
        for name in ["torch varlen_attn", *names]:
            r = res.get(name)
            if name not in res:
                cells.append("n/a (no sinks)" if name == "torch varlen_attn" else "")
            elif r is None:
                cells.append("failed")
            else:
                cell = f"{r[0]:.3f} ms, {r[1] / 2**20:.0f} MiB"
                if base and name != "torch varlen_attn":
                    cell += f" ({r[0] / base[0]:.2f}x, {r[1] / max(base[1], 1):.2f}x)"
                cells.append(cell)
        cells.append("/".join(f"{r[2]:.4f}" for r in res.values() if r))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
