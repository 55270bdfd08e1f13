"""VisionAttention's sinks, applied as MiMo's vision tower defines them.

MiMo-V2.5's vision tower (the only model that builds ``VisionAttention`` with
``use_sink=True``) adds its learned ``sinks[h]`` to the logit of key 0 of each
sequence, inside the block's window band (``modeling_mimo_v2.py`` of the released
checkpoint, ``MiMoVisionAttention``): only queries whose window reaches key 0 feel
it. That is not FA3's ``sinks=`` (a value-less logit in the softmax denominator).
Each backend a recipe uses must compute the key-0 form; the others refuse such a
layer at construction. Reference here: float64, one explicit band mask per
sequence, written from that definition. The vision tower is grouped-query
(32 query heads over 8 KV heads released), so the sdpa backend must take that
ratio, with or without a window.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from sglang.srt.runtime_context import reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.ci.ci_register import register_cpu_ci, register_cuda_ci
from sglang.test.parallel_groups import publish

register_cpu_ci(est_time=20, suite="base-a-test-cpu")
register_cuda_ci(est_time=30, stage="base-a", runner_config="1-gpu-small")

EMBED, HEADS, KV_HEADS, HEAD_DIM, WINDOW = 48, 8, 2, 16, 6
LENGTHS = [20, 3, 9]  # rows past the window of key 0, a clip shorter than it


def publish_backend(backend):
    reset_context()
    publish(ServerArgs(model_path="dummy", mm_attention_backend=backend), role="t")


@pytest.fixture(autouse=True)
def clean_context():
    yield
    reset_context()


def reference(q, k, v, lengths, window, sinks, scale):
    """Float64 grouped-query attention; sinks added to key 0 after the band."""
    q, k, v = q.double(), k.double(), v.double()
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    out, start = torch.empty_like(q), 0
    for n in lengths:
        s = slice(start, start + n)
        logits = torch.einsum("ihd,jhd->hij", q[s], k[s]) * scale
        if window is not None:
            i = torch.arange(n, device=q.device)
            band = (i[:, None] - i[None, :]).abs() <= window
            logits = logits.masked_fill(~band, float("-inf"))
        if sinks is not None:
            logits[:, :, 0] += sinks.double().to(q.device)[:, None]
        out[s] = torch.einsum("hij,jhd->ihd", logits.softmax(-1), v[s])
        start += n
    return out


def vision_layer(backend, use_sink, device="cpu", dtype=torch.float32):
    """A VisionAttention as MiMo's vision blocks build it (GQA, window, sinks)."""
    from sglang.srt.layers.attention.vision import VisionAttention

    publish_backend(backend)
    layer = VisionAttention(
        embed_dim=EMBED,
        num_heads=HEADS,
        num_kv_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        projection_size=EMBED,
        use_qkv_parallel=True,
        proj_bias=True,
        qkv_bias=True,
        flatten_batch=True,
        use_sink=use_sink,
        window_size=(WINDOW, WINDOW),
        prefix="visual.blocks.1.attn",
    )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        if use_sink:
            layer.sinks.copy_(torch.tensor([3.0, -2.0, 0.5, 4.0, -4.0, 1.0, 2.5, -1.0]))
    return layer.to(device=device, dtype=dtype).eval()


def expected(layer, x, full_attn):
    """The layer's own projections around the reference attention."""
    n = x.shape[0]
    with torch.no_grad():
        qkv, _ = layer.qkv_proj(x)
        q, k, v = qkv.float().split(
            [HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], -1
        )
        sinks = None if full_attn or layer.sinks is None else layer.sinks.float()
        attn = reference(
            q.view(n, HEADS, HEAD_DIM),
            k.view(n, KV_HEADS, HEAD_DIM),
            v.view(n, KV_HEADS, HEAD_DIM),
            LENGTHS,
            None if full_attn else WINDOW,
            sinks,
            HEAD_DIM**-0.5,
        )
        out, _ = layer.proj(attn.to(x.dtype).reshape(n, -1))
    return out.double()


def run(layer, x, full_attn):
    cu = torch.tensor([0] + LENGTHS, device=x.device).cumsum(0).to(torch.int32)
    with torch.no_grad():
        return layer(x, cu_seqlens=cu, full_attn=full_attn).reshape(x.shape[0], -1)


def inputs(device="cpu", dtype=torch.float32):
    gen = torch.Generator().manual_seed(1)
    return torch.randn(sum(LENGTHS), EMBED, generator=gen).to(device, dtype)


def test_sdpa_windowed_layer_adds_sinks_to_key0():
    layer = vision_layer("sdpa", use_sink=True)
    x = inputs()
    err = (run(layer, x, False).double() - expected(layer, x, False)).abs().max()
    assert err < 1e-4, err


def test_sdpa_full_attention_layer_takes_grouped_query_heads():
    layer = vision_layer("sdpa", use_sink=False)
    x = inputs()
    err = (run(layer, x, True).double() - expected(layer, x, True)).abs().max()
    assert err < 1e-4, err


def test_backend_without_key0_sinks_refuses_a_sink_layer():
    with pytest.raises(ValueError, match="attention sinks"):
        vision_layer("fa4", use_sink=True)


def test_fa3_lse_correction_is_exact():
    """FA3 has no key-0 bias: VisionFlash3Attention attends without sinks and
    corrects the output from the log-sum-exp (``add_sinks_key0``)."""
    from sglang.srt.layers.attention.vision_utils import add_sinks_key0

    gen = torch.Generator().manual_seed(2)
    n = sum(LENGTHS)
    q = torch.randn(n, HEADS, HEAD_DIM, generator=gen, dtype=torch.float64)
    k, v = torch.randn(2, n, KV_HEADS, HEAD_DIM, generator=gen, dtype=torch.float64)
    sinks = torch.randn(HEADS, generator=gen, dtype=torch.float64) * 3
    scale = HEAD_DIM**-0.5
    plain = reference(q, k, v, LENGTHS, WINDOW, None, scale)
    # log-sum-exp of each row's scaled logits in the band, [heads, tokens]
    group = HEADS // KV_HEADS
    kk = k.repeat_interleave(group, 1)
    lse, start = torch.empty(HEADS, n, dtype=torch.float64), 0
    for length in LENGTHS:
        s = slice(start, start + length)
        logits = torch.einsum("ihd,jhd->hij", q[s], kk[s]) * scale
        i = torch.arange(length)
        band = (i[:, None] - i[None, :]).abs() <= WINDOW
        lse[:, s] = logits.masked_fill(~band, float("-inf")).logsumexp(-1)
        start += length
    cu = torch.tensor([0] + LENGTHS).cumsum(0).to(torch.int32)
    got = add_sinks_key0(plain.clone(), lse, q, k, v, cu, WINDOW, sinks, scale)
    want = reference(q, k, v, LENGTHS, WINDOW, sinks, scale)
    assert (got - want).abs().max() < 1e-5  # the correction computes in float32


def flash_attn_varlen_standin(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q,
    max_seqlen_k,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    sinks=None,
    return_softmax_lse=False,
    **kwargs,
):
    """FA3's varlen entry point (sgl_kernel, CUDA only) as its contract says: windowed
    attention per sequence, ``sinks`` as value-less softmax logits, the log-sum-exp
    [heads, tokens] of the logits when asked. Float64, plain torch."""
    assert not causal and window_size[0] == window_size[1]
    scale = softmax_scale or q.shape[-1] ** -0.5
    lengths = (cu_seqlens_q[1:] - cu_seqlens_q[:-1]).tolist()
    group = q.shape[1] // k.shape[1]
    qd, kd, vd = q.double(), k.double().repeat_interleave(group, 1), v.double()
    vd = vd.repeat_interleave(group, 1)
    out, lse, start = torch.empty_like(qd), torch.empty(q.shape[1], q.shape[0]), 0
    for n in lengths:
        s = slice(start, start + n)
        logits = torch.einsum("ihd,jhd->hij", qd[s], kd[s]) * scale
        if window_size[0] >= 0:
            i = torch.arange(n)
            band = (i[:, None] - i[None, :]).abs() <= window_size[0]
            logits = logits.masked_fill(~band, float("-inf"))
        lse[:, s] = logits.logsumexp(-1).float()
        if sinks is not None:
            column = sinks.double()[:, None, None].expand(-1, n, 1)
            logits = torch.cat([logits, column], -1)
        out[s] = torch.einsum("hij,jhd->ihd", logits.softmax(-1)[..., :n], vd[s])
        start += n
    out = out.to(q.dtype)
    return (out, lse) if return_softmax_lse else out


def test_fa3_backend_adds_sinks_key0(monkeypatch):
    """VisionFlash3Attention with what VisionAttention hands it for a sink layer,
    FA3's kernel (CUDA only) replaced by a float64 stand-in of its contract."""
    from sglang.srt.layers.attention import vision

    layer = vision_layer("sdpa", use_sink=True)
    seen = {}
    # what VisionAttention.forward hands its backend, recorded (not computed)
    layer.qkv_backend.forward = lambda **kw: seen.update(kw) or torch.zeros_like(
        kw["q"]
    )
    x = inputs()
    run(layer, x, False)
    monkeypatch.setattr(
        vision, "flash_attn_func", flash_attn_varlen_standin, raising=False
    )
    fa3 = object.__new__(vision.VisionFlash3Attention)
    torch.nn.Module.__init__(fa3)
    kwargs = {k: w for k, w in seen.items() if k not in ("q", "k", "v")}
    with torch.no_grad():
        attn = fa3.forward(seen["q"], seen["k"], seen["v"], **kwargs)
        got, _ = layer.proj(attn.reshape(x.shape[0], -1))
    err = (got.double() - expected(layer, x, False)).abs().max()
    assert err < 1e-4, err


def test_triton_attn_windowed_layer_adds_sinks_to_key0(tmp_path):
    """triton_attn end to end (layer, backend, Triton kernel), the kernel in
    Triton's interpreter: TRITON_INTERPRET must be set before triton is imported,
    so in a subprocess."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            import test_vision_attention_sinks_key0 as t
            layer = t.vision_layer("triton_attn", use_sink=True)
            x = t.inputs()
            out = t.run(layer, x, False).double()
            print(float((out - t.expected(layer, x, False)).abs().max()))
            """))
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = float(proc.stdout.strip().splitlines()[-1])
    assert err < 1e-4, err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="requires CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fa3_lse_correction_in_half_precision_on_cuda(dtype):
    """The correction on the GPU, with a half-precision attention output (as FA3
    returns it) and a float32 log-sum-exp."""
    from sglang.srt.layers.attention.vision_utils import add_sinks_key0

    gen = torch.Generator().manual_seed(3)
    lengths = [700, 5, 300]
    n, window = sum(lengths), 64
    q = torch.randn(n, HEADS, HEAD_DIM, generator=gen)
    k, v = torch.randn(2, n, KV_HEADS, HEAD_DIM, generator=gen)
    sinks = torch.randn(HEADS, generator=gen) * 3
    scale = HEAD_DIM**-0.5
    plain = reference(q, k, v, lengths, window, None, scale)
    kk = k.double().repeat_interleave(HEADS // KV_HEADS, 1)
    lse, start = torch.empty(HEADS, n, dtype=torch.float64), 0
    for length in lengths:
        s = slice(start, start + length)
        logits = torch.einsum("ihd,jhd->hij", q[s].double(), kk[s]) * scale
        i = torch.arange(length)
        band = (i[:, None] - i[None, :]).abs() <= window
        lse[:, s] = logits.masked_fill(~band, float("-inf")).logsumexp(-1)
        start += length
    cu = torch.tensor([0] + lengths).cumsum(0).to(torch.int32).cuda()
    qd, kd, vd = (t.to("cuda", dtype) for t in (q, k, v))
    got = add_sinks_key0(
        plain.to("cuda", dtype),
        lse.float().cuda(),
        qd,
        kd,
        vd,
        cu,
        window,
        sinks.cuda(),
        scale,
    )
    want = reference(qd.float(), kd.float(), vd.float(), lengths, window, sinks, scale)
    err = (got.double().cpu() - want.cpu()).abs().max()
    assert err < (3e-2 if dtype == torch.bfloat16 else 4e-3), err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
