#!/usr/bin/env python3
"""Benchmark MiMo audio-encoder attention (patch 0006) on one CUDA GPU.

Shapes like the MiMo audio tokenizer's encoder: head dim 64, 12 and 20 heads,
(a) 16 clips of 100-1500 frames packed, (b) a 30-minute clip (~90,000 tokens
at 50 tokens/s) as sglang packs it (30 segments of 3000) and (c) as one
sequence; windows (128, 0) causal and full causal (-1, 0).

Paths, each on the same packed bf16 q/k/v:
  per-seq SDPA loop  - one 4-D SDPA call per clip, explicit [L, L] band mask
  padded SDPA        - clips padded to the longest, one SDPA call, [B, 1, L, L] mask
  torch varlen_attn  - torch.nn.attention.varlen.varlen_attn(window_size=...)
  patch: fallback    - sdpa_varlen_attention() of the patch (blocked SDPA)
  patch: chosen      - mimo_audio_varlen_attention() of the patch (what runs)
Time is the median of CUDA-event timed calls; memory is the peak allocated
above the inputs during one call. Error is the max abs difference to a float32
reference (blocked, explicit mask). OOM marks a path that cannot fit.

The patch's functions come from `sglang.srt.models.mimo_audio` when sglang is
importable, else (--mimo-audio FILE) from that file's source: only the two
functions and their module constants are executed, nothing else of sglang.
"""

import argparse
import ast
import logging
import math
import statistics
import sys

import torch
import torch.nn.functional as F

WANTED = ("_SDPA_VARLEN_BLOCK", "_varlen_attn_failed")
FUNCS = ("sdpa_varlen_attention", "mimo_audio_varlen_attention")


def load_patch_functions(path):
    if path is None:
        from sglang.srt.models import mimo_audio as m

        return m.sdpa_varlen_attention, m.mimo_audio_varlen_attention
    tree = ast.parse(open(path).read())
    keep = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in FUNCS:
            keep.append(node)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in WANTED for t in node.targets
        ):
            keep.append(node)
    ns = {
        "torch": torch,
        "F": F,
        "Optional": __import__("typing").Optional,
        "Tuple": __import__("typing").Tuple,
        "logger": logging.getLogger("mimo_audio"),
    }
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), ns)
    missing = [f for f in FUNCS if f not in ns]
    assert not missing, f"{path} lacks {missing}: is the patch applied?"
    return ns["sdpa_varlen_attention"], ns["mimo_audio_varlen_attention"]


def band(n_q, n_k, window, device, q0=0, k0=0):
    left, right = window
    off = torch.arange(k0, k0 + n_k, device=device) - torch.arange(
        q0, q0 + n_q, device=device
    ).unsqueeze(1)
    m = torch.ones(n_q, n_k, dtype=torch.bool, device=device)
    if left >= 0:
        m &= off >= -left
    if right >= 0:
        m &= off <= right
    return m


def per_seq_sdpa(q, k, v, lengths, window):
    out = torch.empty_like(q)
    s = 0
    for n in lengths:
        sl = slice(s, s + n)
        out[sl] = F.scaled_dot_product_attention(  # 4-D: fused kernels allowed
            q[None, sl].transpose(1, 2),
            k[None, sl].transpose(1, 2),
            v[None, sl].transpose(1, 2),
            attn_mask=band(n, n, window, q.device),
        )[0].transpose(0, 1)
        s += n
    return out


def padded_sdpa(q, k, v, lengths, window):
    b, lmax, h, d = len(lengths), max(lengths), q.shape[1], q.shape[2]
    idx = torch.cat(
        [torch.arange(n, device=q.device) + i * lmax for i, n in enumerate(lengths)]
    )

    def pad(t):
        p = t.new_zeros(b * lmax, h, d)
        p[idx] = t
        return p.view(b, lmax, h, d).transpose(1, 2)

    valid = torch.zeros(b, lmax, dtype=torch.bool, device=q.device)
    valid.view(-1)[idx] = True
    mask = band(lmax, lmax, window, q.device) & valid[:, None, :]
    mask |= ~valid[:, :, None]  # padded query rows: anything, dropped below
    o = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=mask[:, None])
    return o.transpose(1, 2).reshape(b * lmax, h, d)[idx]


def torch_varlen(q, k, v, cu, max_len, window):
    from torch.nn.attention.varlen import varlen_attn

    return varlen_attn(q, k, v, cu, cu, max_len, max_len, window_size=window)


def reference(q, k, v, lengths, window, block=1024):
    """float32, explicit mask, per clip and query block (independent of the patch)."""
    q, k, v = q.float(), k.float(), v.float()
    out = torch.empty_like(q)
    s = 0
    for n in lengths:
        for a in range(0, n, block):
            e = min(n, a + block)
            m = band(e - a, n, window, q.device, q0=a)
            out[s + a : s + e] = F.scaled_dot_product_attention(
                q[s + a : s + e].transpose(0, 1),
                k[s : s + n].transpose(0, 1),
                v[s : s + n].transpose(0, 1),
                attn_mask=m,
            ).transpose(0, 1)
        s += n
    return out


def measure(fn, min_time=0.3, max_iters=50):
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    try:
        out = fn()  # warm-up and memory
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
        return f"error: {str(e).splitlines()[0][:60]}", None, None


def check_fallback(chosen, dtype, dev, lengths):
    """Stand-in for a GPU where varlen_attn has no kernel (sm_121 is unverified)."""
    import torch.nn.attention.varlen as tv

    real = tv.varlen_attn

    def refuse(*a, **k):
        raise RuntimeError("stand-in: no kernel image is available for execution")

    q, k, v = (
        torch.randn(sum(lengths), 12, 64, device=dev, dtype=dtype) for _ in range(3)
    )
    cu = torch.tensor([0] + lengths, device=dev).cumsum(0).to(torch.int32)
    for window in ((128, 0), (-1, 0)):
        tv.varlen_attn = refuse
        try:
            out = chosen(q, k, v, cu, max(lengths), window)
        finally:
            tv.varlen_attn = real
        err = (out.float() - reference(q, k, v, lengths, window)).abs().max().item()
        print(f"fallback {window}: max err {err:.4f}")
        assert err < (2e-2 if dtype == torch.bfloat16 else 4e-3)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mimo-audio", help="patched models/mimo_audio.py to load")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    ap.add_argument("--quick", action="store_true", help="16-clip cases only")
    ap.add_argument(
        "--check-fallback",
        action="store_true",
        help="make varlen_attn raise once; the chosen path must fall back, exact",
    )
    args = ap.parse_args()
    sdpa_varlen, chosen = load_patch_functions(args.mimo_audio)
    dtype = getattr(torch, args.dtype)
    dev = torch.device("cuda")
    print(
        f"GPU: {torch.cuda.get_device_name()} (sm_{''.join(map(str, torch.cuda.get_device_capability()))}), torch {torch.__version__}, {args.dtype}, head dim 64"
    )
    gen = torch.Generator().manual_seed(0)
    clips = torch.randint(100, 1501, (16,), generator=gen).tolist()
    # sglang cuts audio into 6000-mel-frame segments (tokenize_audio_batch), so a
    # 30-minute clip reaches the encoder as 30 packed sequences of 3000 tokens;
    # the single 90,000-token sequence is the kernel's worst case.
    shapes = [("16 clips", clips)]
    if not args.quick:
        shapes += [("30-min clip as served", [3000] * 30), ("30-min clip", [90000])]
    paths = [
        ("per-seq SDPA loop", lambda q, k, v, L, cu, w: per_seq_sdpa(q, k, v, L, w)),
        ("padded SDPA+mask", lambda q, k, v, L, cu, w: padded_sdpa(q, k, v, L, w)),
        (
            "torch varlen_attn",
            lambda q, k, v, L, cu, w: torch_varlen(q, k, v, cu, max(L), w),
        ),
        (
            "patch: fallback (blocked SDPA)",
            lambda q, k, v, L, cu, w: sdpa_varlen(q, k, v, cu, w),
        ),
        ("patch: chosen", lambda q, k, v, L, cu, w: chosen(q, k, v, cu, max(L), w)),
    ]
    if args.check_fallback:
        return check_fallback(chosen, dtype, dev, clips)
    for shape_name, lengths in shapes:
        for heads in (12, 20):
            for wname, window in (
                ("(128,0) causal", (128, 0)),
                ("full causal", (-1, 0)),
            ):
                total = sum(lengths)
                q, k, v = (
                    torch.randn(total, heads, 64, device=dev, dtype=dtype)
                    for _ in range(3)
                )
                cu = torch.tensor([0] + lengths, device=dev).cumsum(0).to(torch.int32)
                ref = reference(q, k, v, lengths, window)
                case = f"{shape_name} ({total} tok), {heads} heads, {wname}"
                res = {}
                for pname, fn in paths:
                    if pname.startswith("padded") and len(lengths) == 1:
                        res[pname] = ("= per-seq", None, None, None)
                        continue
                    out, ms, peak = measure(lambda: fn(q, k, v, lengths, cu, window))
                    if ms is None:
                        res[pname] = (out, None, None, None)
                    else:
                        err = (out.float() - ref).abs().max().item()
                        res[pname] = ("ok", ms, peak, err)
                    del out
                    torch.cuda.empty_cache()
                print(f"\n{case}")
                print(
                    f"  {'path':32s} {'time ms':>10s} {'peak MiB':>10s} {'max err':>9s}"
                )
                for pname, (st, ms, peak, err) in res.items():
                    if ms is None:
                        print(f"  {pname:32s} {st}")
                    else:
                        print(
                            f"  {pname:32s} {ms:10.3f} {peak / 2**20:10.1f} {err:9.4f}"
                        )
                c, loop, fast = (
                    res["patch: chosen"],
                    res["per-seq SDPA loop"],
                    res["torch varlen_attn"],
                )
                if c[1] and fast[1]:
                    speed = f"{loop[1] / c[1]:.1f}x vs loop" if loop[1] else "loop OOM"
                    print(
                        f"  chosen: {speed}, {c[1] / fast[1]:.2f}x varlen_attn time, {c[2] / max(fast[2], 1):.2f}x its memory"
                    )
                del q, k, v, ref
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
