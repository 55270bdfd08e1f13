"""Triton multimodal attention backend: what 0008 must not change.

A vision layer without sinks and without a declared mask hands the Triton kernel
no window and no causal mask, as in v0.5.23. The fixture comes from 0008's
registered test file.
"""

import torch
from test_triton_prefill_window_sinks import triton_backend  # noqa: F401  (fixture)


def test_plain_vision_layer_on_triton_is_unchanged(triton_backend):
    """No sinks, no declared mask: no window, not causal, as in v0.5.23."""
    from sglang.srt.layers.attention.vision import VisionAttention

    m = VisionAttention(
        embed_dim=32,
        num_heads=4,
        projection_size=32,
        use_qkv_parallel=True,
        flatten_batch=True,
        window_size=(64, 64),
        prefix="vision",
    )
    with torch.no_grad():
        m(torch.randn(6, 32), cu_seqlens=torch.tensor([0, 6], dtype=torch.int32))
    assert triton_backend[-1]["is_causal"] is False
    assert tuple(triton_backend[-1].get("window_size", (-1, -1))) == (-1, -1)
    assert triton_backend[-1].get("sinks") is None
