#!/usr/bin/env python3
"""Cost of MiMo's vision sinks (key-0 bias) on one CUDA GPU, side by side.

Shapes of MiMo-V2.5's windowed vision blocks: 32 query heads over 8 KV heads, head
dim 64, window (64, 64), not causal; 4 images of 4096 patches plus a video of 16
frames of 1024 (32,768 tokens, 20 sequences). bf16.

Rows, each on the same q/k/v:
  triton, no sinks          context_attention_fwd(window) of the patched tree (0008)
  triton, denominator sinks the same with sinks= (FA3's form, v0.5.23's vision path)
  triton, key-0 sinks       the same with sinks_bias_key0=True (0009's triton_attn)
  torch varlen_attn         torch.nn.attention.varlen.varlen_attn(window), GQA
                            expanded: a FlashAttention-class kernel, for scale
  add_sinks_key0            0009's fa3 correction alone (on varlen_attn's output,
                            with a stand-in log-sum-exp of the right shape: the
                            time does not depend on its values)
Time: median of CUDA-event timed calls after warm-up. Run with the patched tree
first on PYTHONPATH (the device's trees, as scripts/device_cuda_tests.py unpacks
them). Prints a Markdown table.
"""

import statistics

import torch

from sglang.kernels.ops.attention.prefill_attention import context_attention_fwd
from sglang.srt.layers.attention.vision_utils import add_sinks_key0

HEADS, KV_HEADS, DIM, WINDOW = 32, 8, 64, 64
LENGTHS = [4096] * 4 + [1024] * 16


def timed(fn, reps=20):
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(True), torch.cuda.Event(True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    dev, dtype = "cuda", torch.bfloat16
    gen = torch.Generator(device=dev).manual_seed(0)
    n = sum(LENGTHS)
    q = torch.randn(n, HEADS, DIM, device=dev, dtype=dtype, generator=gen)
    k, v = torch.randn(2, n, KV_HEADS, DIM, device=dev, dtype=dtype, generator=gen)
    sinks = torch.randn(HEADS, device=dev, generator=gen) * 2
    lens = torch.tensor(LENGTHS, device=dev, dtype=torch.int32)
    cu = torch.nn.functional.pad(lens.cumsum(0), (1, 0)).to(torch.int32)
    out = torch.empty_like(q)
    scale = DIM**-0.5

    def triton(**kw):
        return lambda: context_attention_fwd(
            q,
            k,
            v,
            out,
            cu[:-1],
            lens,
            max(LENGTHS),
            is_causal=False,
            window_size=(WINDOW, WINDOW),
            **kw,
        )

    rows = [
        ("triton, no sinks", triton()),
        ("triton, denominator sinks", triton(sinks=sinks)),
        ("triton, key-0 sinks", triton(sinks=sinks, sinks_bias_key0=True)),
    ]
    try:
        from torch.nn.attention.varlen import varlen_attn

        ke = k.repeat_interleave(HEADS // KV_HEADS, 1)
        ve = v.repeat_interleave(HEADS // KV_HEADS, 1)
        varlen = lambda: varlen_attn(  # noqa: E731
            q,
            ke,
            ve,
            cu,
            cu,
            max(LENGTHS),
            max(LENGTHS),
            scale=scale,
            window_size=(WINDOW, WINDOW),
        )
        base = varlen()
        lse = torch.randn(HEADS, n, device=dev) + 10
        rows.append(("torch varlen_attn (window, no sinks)", varlen))
        rows.append(
            (
                "add_sinks_key0 (fa3 correction alone)",
                lambda: add_sinks_key0(base, lse, q, k, v, cu, WINDOW, sinks, scale),
            )
        )
    except Exception as e:  # noqa: BLE001
        print(f"varlen_attn unavailable: {e}")
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    print(
        f"{n} tokens in {len(LENGTHS)} sequences, {HEADS}/{KV_HEADS} heads, "
        f"head dim {DIM}, window ({WINDOW}, {WINDOW}), bf16\n"
    )
    print("| path | median ms |\n|---|---|")
    for name, fn in rows:
        print(f"| {name} | {timed(fn):.3f} |")


if __name__ == "__main__":
    main()
