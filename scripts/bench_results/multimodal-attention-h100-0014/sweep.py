"""Block-config sweep of 0014's kernel on one CUDA GPU: time per case per
(BLOCK_M, BLOCK_N, num_warps, num_stages), against torch varlen_attn.

    python3 sweep.py TREE_PYTHON_DIR [bfloat16|float16]   (from the repository root)
"""

import sys, os, itertools, torch

sys.path.insert(0, "scripts")
import bench_audio_attention as b
from torch.nn.attention.varlen import varlen_attn

dtype = getattr(torch, sys.argv[2] if len(sys.argv) > 2 else "bfloat16")
mod = b.load_triton_kernel(sys.argv[1], "sweep_kernel")
configs = [
    (128, 64, 4, 3),
    (128, 64, 8, 3),
    (128, 64, 4, 2),
    (128, 128, 8, 2),
    (128, 128, 8, 3),
    (64, 64, 4, 3),
    (128, 32, 4, 3),
    (64, 128, 4, 2),
    (128, 64, 4, 4),
]
gen = torch.Generator().manual_seed(0)
clips = torch.randint(100, 1501, (16,), generator=gen).tolist()
vision = [4096] * 4 + [1024] * 16
cases = []
for name, lengths in (
    ("16 clips", clips),
    ("30x3000", [3000] * 30),
    ("90000", [90000]),
):
    for heads in (12, 20):
        for window in ((128, 0), (-1, -1)):
            cases.append((name, lengths, heads, heads, window, True, False))
cases += [
    ("vision", vision, 32, 8, (64, 64), False, False),
    ("vision", vision, 32, 8, (64, 64), False, True),
    ("vision", vision, 32, 8, (-1, -1), False, False),
]
print(f"{torch.cuda.get_device_name()} {dtype}")
print("case | varlen ms | " + " | ".join(map(str, configs)))
dev = "cuda"
for name, lengths, hq, hkv, window, causal, sinks in cases:
    total = sum(lengths)
    q = torch.randn(total, hq, 64, device=dev, dtype=dtype)
    k, v = (torch.randn(total, hkv, 64, device=dev, dtype=dtype) for _ in range(2))
    s = torch.randn(hq, device=dev) * 2 if sinks else None
    cu = torch.tensor([0] + lengths, device=dev).cumsum(0).to(torch.int32)
    kx, vx = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)
    w = (window[0], 0 if causal else window[1])
    _, tv, _ = b.measure(
        lambda: varlen_attn(
            q, kx, vx, cu, cu, max(lengths), max(lengths), window_size=w
        )
    )
    row = []
    ref = None
    for c in configs:
        mod._block_config = lambda hd, c=c: c

        def f():
            o = torch.empty_like(q)
            mod.context_attention_fwd(
                q,
                k,
                v,
                o,
                cu[:-1],
                cu[1:] - cu[:-1],
                max(lengths),
                is_causal=causal,
                window_size=window,
                sinks=s,
                sinks_bias_key0=sinks,
            )
            return o

        out, t, _ = b.measure(f)
        if t is None:
            row.append(f"{out}")
            continue
        if ref is None:
            ref = out
        d = (out.float() - ref.float()).abs().max().item()
        row.append(f"{t:.3f} ({t / tv:.2f}x){'!' if d > 0.05 else ''}")
    print(
        f"{name} {hq}/{hkv} {window} causal={causal} sinks={sinks} | {tv:.3f} | "
        + " | ".join(row),
        flush=True,
    )
