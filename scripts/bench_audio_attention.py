#!/usr/bin/env python3
"""Benchmark the multimodal attention backends of patches 0007/0008 on one CUDA GPU.

Audio shapes like the MiMo audio tokenizer's encoder: head dim 64, 12 and 20
heads, (a) 16 clips of 100-1500 frames packed, (b) a 30-minute clip (~90,000
tokens at 50 tokens/s) as sglang packs it (30 segments of 3000) and (c) as one
sequence; windows (128, 0) causal and full causal. Vision shapes like the
MiMo-V2.5 vision tower's windowed blocks: 32 query heads over 8 KV heads, head
dim 64, window (64, 64), not causal, with and without per-head sinks; 4 images
of 4096 patches plus a 16x1024 video.

Paths, each on the same packed q/k/v:
  torch varlen_attn   - torch.nn.attention.varlen.varlen_attn(window_size=...),
                        the reference kernel (no sinks; GQA expanded beforehand)
  sdpa backend        - sdpa_band_attention() of patched layers/attention/vision.py
                        (what VisionSdpaAttention runs for a causal/windowed layer)
  triton_attn backend - context_attention_fwd() of patched
                        kernels/ops/attention/prefill_attention.py (0008), as
                        VisionTritonAttention calls it
Time is the median of CUDA-event timed calls; memory is the peak allocated
above the inputs during one call. Error is the max abs difference to a float32
reference (per clip and query block, explicit mask, independent of the
patches). OOM marks a path that cannot fit.

--sglang DIR points at the patched tree's python/ folder (the one holding
sglang/). sglang's dependencies need not be installed: only the two functions
are loaded, the kernel module with a two-function stand-in for sglang.srt.utils
(is_cuda/is_hip), written to a scratch folder.
"""

import argparse
import ast
import math
import os
import shutil
import statistics
import sys
import tempfile

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


def load_triton_kernel(sglang_python):
    """Import the patched kernel module with nothing else of sglang."""
    scratch = tempfile.mkdtemp(prefix="mini-sglang-")
    pkg = os.path.join(scratch, "sglang")
    for sub in ("", "srt", "kernels", "kernels/ops", "kernels/ops/attention"):
        os.makedirs(os.path.join(pkg, sub), exist_ok=True)
        open(os.path.join(pkg, sub, "__init__.py"), "w").close()
    with open(os.path.join(pkg, "srt", "utils.py"), "w") as f:
        f.write(
            "import torch\n"
            "def is_cuda():\n    return torch.cuda.is_available() and torch.version.cuda is not None\n"
            "def is_hip():\n    return torch.version.hip is not None\n"
        )
    shutil.copy(os.path.join(sglang_python, KERNEL), os.path.join(scratch, KERNEL))
    sys.path.insert(0, scratch)
    from sglang.kernels.ops.attention.prefill_attention import context_attention_fwd

    return context_attention_fwd


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


def reference(q, k, v, lengths, window, causal, sinks=None, block=1024):
    """float32, explicit mask, per clip and query block."""
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
            if sinks is not None:
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
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    ap.add_argument("--quick", action="store_true", help="16-clip cases only")
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
    triton_fwd = load_triton_kernel(args.sglang)
    if args.check_kernel:
        return check_kernel(args.check_kernel)
    from torch.nn.attention.varlen import varlen_attn

    dtype = getattr(torch, args.dtype)
    dev = torch.device("cuda")
    cap = "".join(map(str, torch.cuda.get_device_capability()))
    print(
        f"GPU: {torch.cuda.get_device_name()} (sm_{cap}), torch {torch.__version__}, "
        f"{args.dtype}"
    )

    def triton_call(q, k, v, lengths, cu, window, causal, sinks=None):
        out = torch.empty_like(q)
        lens = cu[1:] - cu[:-1]
        triton_fwd(
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
    cases.append(
        (
            "vision 4 images + 16-frame video",
            vision,
            32,
            8,
            (64, 64),
            False,
            False,
            "(64,64)",
        )
    )
    cases.append(
        (
            "vision 4 images + 16-frame video",
            vision,
            32,
            8,
            (64, 64),
            False,
            True,
            "(64,64) + sinks",
        )
    )

    rows = []
    for name, lengths, hq, hkv, window, causal, use_sinks, wname in cases:
        total = sum(lengths)
        q = torch.randn(total, hq, 64, device=dev, dtype=dtype)
        k, v = (torch.randn(total, hkv, 64, device=dev, dtype=dtype) for _ in range(2))
        sinks = torch.randn(hq, device=dev) * 2 if use_sinks else None
        cu = torch.tensor([0] + lengths, device=dev).cumsum(0).to(torch.int32)
        ref = reference(q, k, v, lengths, window, causal, sinks)
        kx = k.repeat_interleave(hq // hkv, dim=1)
        vx = v.repeat_interleave(hq // hkv, dim=1)
        paths = {
            "sdpa backend": lambda: sdpa_band(q, k, v, cu, window, causal),
            "triton_attn backend": lambda: triton_call(
                q, k, v, lengths, cu, window, causal, sinks
            ),
        }
        if sinks is None:  # varlen_attn has no sinks
            paths = {
                "torch varlen_attn": lambda: varlen_call(
                    q, kx, vx, lengths, cu, window, causal
                ),
                **paths,
            }
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
        base = res.get("torch varlen_attn")
        if base:
            for pname in ("sdpa backend", "triton_attn backend"):
                if res.get(pname):
                    t, m = res[pname][0] / base[0], res[pname][1] / max(base[1], 1)
                    print(f"  {pname}: {t:.2f}x varlen_attn time, {m:.2f}x its memory")
        rows.append((case, res))
        del q, k, v, kx, vx, ref
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
