"""Sliding window and per-head sinks in the Triton varlen prefill kernel
(``context_attention_fwd``) and in ``VisionTritonAttention``.

The kernel is SGLang's own Triton code. On a CPU machine it runs in Triton's
interpreter (``TRITON_INTERPRET=1``, in a subprocess: the variable must be set
before triton is imported); on a GPU it is compiled (the CUDA test).
Both compare with a float64 reference written from FlashAttention's window
convention: query i of a sequence sees key j of the same sequence iff
``i - left <= j <= i + right`` (-1 unbounded), ``causal`` makes right 0. A sink
adds ``exp(s_h)`` to head h's softmax denominator with no value (the gpt-oss form,
FA3's ``sinks``), or, with ``sinks_bias_key0=True``, is added to the logit of key 0
of each sequence where the query sees it (the form of MiMo's vision tower).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from sglang.srt.runtime_context import reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.ci.ci_register import register_cpu_ci, register_cuda_ci
from sglang.test.parallel_groups import publish

register_cpu_ci(est_time=60, suite="base-a-test-cpu")
register_cuda_ci(est_time=60, stage="base-a", runner_config="1-gpu-small")

# (clip lengths, window, causal, sinks): window edges, sinks (True: the
# denominator form; "key0": the key-0 bias), causal and not, packed ragged clips
# with length 1, windows narrower than one 64/128-key block (rows whose window
# misses whole blocks), a window wider than every clip.
CASES = [
    ([5, 1, 70, 130], (-1, -1), False, False),
    ([5, 1, 70, 130], (-1, -1), True, False),
    ([5, 1, 70, 130], (3, 0), True, False),
    ([5, 1, 70, 130], (2, 3), False, True),
    ([200, 1, 7], (0, 0), False, True),
    ([300], (10, 0), True, False),
    ([300, 1], (10, 5), False, True),
    ([129, 1, 64], (5000, 0), True, True),
    ([257, 3], (-1, -1), False, True),
    ([5, 1, 70, 130], (2, 3), False, "key0"),
    ([300, 1], (10, 5), False, "key0"),
    ([200, 129, 1], (64, 64), False, "key0"),
    ([257, 3], (-1, -1), False, "key0"),
]

REFERENCE = """
import math, torch

def reference(q, k, v, lengths, window, causal, sinks, scale, key0=False):
    out = torch.empty(q.shape, dtype=torch.float64)
    left, right = window
    start = 0
    for n in lengths:
        s = slice(start, start + n)
        i = torch.arange(n)[:, None]
        j = torch.arange(n)[None, :]
        seen = torch.ones(n, n, dtype=torch.bool)
        if causal:
            seen &= j <= i
        if left >= 0:
            seen &= j >= i - left
        if right >= 0:
            seen &= j <= i + right
        scores = torch.einsum("ihd,jhd->hij", q[s].double(), k[s].double()) * scale
        scores = scores.masked_fill(~seen, float("-inf"))
        if sinks is not None and key0:
            scores[:, :, 0] += sinks.double()[:, None]
        elif sinks is not None:
            sink = sinks.double()[:, None, None].expand(-1, n, 1)
            scores = torch.cat([scores, sink], -1)
        probs = scores.softmax(-1)[..., :n]
        out[s] = torch.einsum("hij,jhd->ihd", probs, v[s].double())
        start += n
    return out


def run_case(lengths, window, causal, use_sinks, device, dtype, heads, dim, seed):
    from sglang.kernels.ops.attention.prefill_attention import context_attention_fwd

    gen = torch.Generator().manual_seed(seed)
    n = sum(lengths)
    q, k, v = torch.randn(3, n, heads, dim, generator=gen)
    sinks = torch.randn(heads, generator=gen) * 2 if use_sinks else None
    lens = torch.tensor(lengths, dtype=torch.int32)
    starts = torch.nn.functional.pad(lens.cumsum(0), (1, 0))[:-1].to(torch.int32)
    qd, kd, vd = (t.to(device, dtype) for t in (q, k, v))
    out = torch.empty_like(qd)
    context_attention_fwd(
        qd, kd, vd, out, starts.to(device), lens.to(device), max(lengths),
        is_causal=causal, window_size=window,
        sinks=None if sinks is None else sinks.to(device),
        **({"sinks_bias_key0": True} if use_sinks == "key0" else {}),
    )
    ref = reference(*(t.float().cpu() for t in (qd, kd, vd)), lengths, window,
                    causal, sinks, 1 / math.sqrt(dim), use_sinks == "key0")
    got = out.double().cpu()
    return bool(torch.isfinite(got).all()), float((got - ref).abs().max())
"""


def test_kernel_matches_float64_reference_in_the_triton_interpreter(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(REFERENCE + textwrap.dedent(f"""
            import json
            print(json.dumps([run_case(*c, "cpu", torch.float32, 2, 16, i)
                              for i, c in enumerate({CASES!r})]))
            """))
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for case, (finite, err) in zip(CASES, results):
        assert finite and err < 1e-5, (case, err)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="requires CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("heads,dim", [(16, 80), (20, 64)])  # vision, audio
def test_kernel_matches_float64_reference_on_cuda(dtype, heads, dim):
    namespace = {}
    exec(REFERENCE, namespace)
    # bf16: the kernel rounds P to bf16 before P.V (as v0.5.23's kernel does)
    # and stores a bf16 output: two roundings of values up to |v| ~ 5 (the H200
    # run measured 0.0203 for a one-key window with sinks).
    tol = 3e-2 if dtype == torch.bfloat16 else 4e-3
    for i, case in enumerate(CASES):
        finite, err = namespace["run_case"](*case, "cuda", dtype, heads, dim, i)
        assert finite and err < tol, (case, err)


# --- VisionTritonAttention hands the kernel the layer's mask ------------------


@pytest.fixture
def triton_backend(monkeypatch):
    """--mm-attention-backend triton_attn, and a recorder in place of the
    kernel entry point (the compiled kernel needs a GPU)."""
    from sglang.srt.layers.attention import vision

    calls = []
    monkeypatch.setattr(
        vision, "context_attention_fwd", lambda *a, **kw: calls.append(kw)
    )
    reset_context()
    publish(
        ServerArgs(model_path="dummy", mm_attention_backend="triton_attn"), role="t"
    )
    yield calls
    reset_context()


def test_audio_windowed_layer_runs_on_triton_with_its_window(triton_backend):
    from sglang.srt.models.mimo_audio import AudioEncoderAttention

    layer = AudioEncoderAttention(32, 4, (128, 0), causal=True)  # 0007 refused it
    with torch.no_grad():
        layer(torch.randn(6, 32), torch.tensor([0, 6], dtype=torch.int32), 6)
    assert tuple(triton_backend[-1]["window_size"]) == (128, 0)
    assert triton_backend[-1]["is_causal"] is True
    assert triton_backend[-1].get("sinks") is None


def test_vision_sink_layer_hands_window_and_sinks_to_triton(triton_backend):
    """MiMo-VL's windowed blocks: use_sink with a window, full_attn=False."""
    from sglang.srt.layers.attention.vision import VisionAttention

    m = VisionAttention(
        embed_dim=32,
        num_heads=4,
        projection_size=32,
        use_qkv_parallel=True,
        flatten_batch=True,
        use_sink=True,
        window_size=(64, 64),
        prefix="vision",
    )
    with torch.no_grad():
        m.sinks.copy_(torch.arange(4, dtype=torch.bfloat16))
        m(
            torch.randn(6, 32),
            cu_seqlens=torch.tensor([0, 6], dtype=torch.int32),
            full_attn=False,
        )
    assert tuple(triton_backend[-1]["window_size"]) == (64, 64)
    assert triton_backend[-1]["sinks"].tolist() == [0, 1, 2, 3]
    assert triton_backend[-1]["is_causal"] is False


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
