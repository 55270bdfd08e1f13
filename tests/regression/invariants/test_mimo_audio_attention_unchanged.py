"""MiMo audio encoder and vision attention: what 0007 must not change.

Full bidirectional attention (a non-causal layer without a window), packing, and
the mask every vision layer hands its backend stay as in v0.5.23. Helpers and
fixtures come from 0007's registered test file.
"""

import pytest
import torch
from test_mimo_audio_causal_window_attention import (  # noqa: F401  (fixtures)
    D_MODEL,
    HEADS,
    LAYERS,
    backend_call,
    changed_outputs,
    dense_reference,
    make_attention,
    make_layer,
    mask_kwargs,
    random_lengths,
    randomize,
    run_layer,
    runtime,
    visible,
)


def test_full_noncausal_layer_depends_on_every_token():
    layer = make_layer(False, (-1, -1))
    delta = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(3))
    assert changed_outputs(layer, 16, 6, delta) == set(range(16))


def test_layernorm_hides_shift_and_scale_of_a_token():
    """Why a probe saw 'no attention between packed tokens': the layer is
    pre-norm, and LayerNorm removes a constant shift (and a positive scale) of
    a token's features before q, k and v are formed: such a perturbation moves
    only token j's own residual, even in a full bidirectional layer."""
    layer = make_layer(False, (-1, -1))
    assert changed_outputs(layer, 16, 6, torch.full((D_MODEL,), 1.0)) == {6}


@pytest.mark.parametrize("window,causal", LAYERS + [((-1, -1), False)])
def test_packing_equals_alone(window, causal):
    layer = make_layer(causal, window)
    x = torch.randn(18, D_MODEL, generator=torch.Generator().manual_seed(4))
    packed = run_layer(layer, x, [11, 7])
    torch.testing.assert_close(packed[:11], run_layer(layer, x[:11], [11]))
    torch.testing.assert_close(packed[11:], run_layer(layer, x[11:], [7]))


@pytest.mark.parametrize(
    "window,causal",
    [
        ((-1, -1), False),  # full bidirectional
        ((5000, 5000), False),  # as wide as full
    ],
)
def test_attention_matches_dense_reference(window, causal):
    attn = make_attention(causal, window, heads=2, head_dim=8)
    for seed in (0, 1):
        lengths = random_lengths(seed)
        gen = torch.Generator().manual_seed(seed)
        q, k, v = torch.randn(3, sum(lengths), 2, 8, generator=gen)
        out = backend_call(attn.attn, q, k, v, lengths)
        ref = dense_reference(q, k, v, lengths, window, causal)
        torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)


def test_full_window_edges_are_inclusive_of_self():
    """q = 0 makes the softmax uniform over the visible keys; one-hot values
    then read back exactly which keys each query saw, per packed clip."""
    window, causal = (-1, -1), False
    lengths = [5, 7, 1]
    n = sum(lengths)
    attn = make_attention(causal, window, heads=1, head_dim=n)
    q = torch.zeros(n, 1, n)
    v = torch.eye(n).unsqueeze(1)
    out = backend_call(attn.attn, q, torch.randn(n, 1, n), v, lengths)[:, 0]
    expected = torch.block_diag(*[visible(m, window, causal) for m in lengths])
    assert torch.equal(out > 1e-6, expected)
    torch.testing.assert_close(out.sum(-1), torch.ones(n))


def test_vision_style_layer_unchanged():
    from sglang.srt.layers.attention.vision import VisionAttention

    m = VisionAttention(
        embed_dim=D_MODEL,
        num_heads=HEADS,
        projection_size=D_MODEL,
        use_qkv_parallel=True,
        flatten_batch=True,
        window_size=(8, 0),  # ignored without attention sinks, as before
        prefix="vision",
    )
    randomize(m, seed=8)
    lengths = [9, 13]
    gen = torch.Generator().manual_seed(9)
    q, k, v = torch.randn(3, sum(lengths), HEADS, D_MODEL // HEADS, generator=gen)
    out = backend_call(m, q, k, v, lengths)
    ref = dense_reference(q, k, v, lengths, (-1, -1), causal=False)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)

    x = torch.randn(sum(lengths), D_MODEL, generator=gen)
    cu = torch.tensor([0, 9, 22], dtype=torch.int32)
    with torch.no_grad():
        y = m(x, cu_seqlens=cu).squeeze(0)
        x2 = x.clone()
        x2[3] += torch.randn(D_MODEL, generator=gen)
        changed = (m(x2, cu_seqlens=cu).squeeze(0) - y).abs().amax(-1) > 1e-5
    assert changed.tolist() == [True] * 9 + [False] * 13


def test_vision_layers_keep_their_mask_on_every_backend(monkeypatch):
    """The new flag is not set by vision models: a vision layer hands its
    backend no causal mask and no window without sinks, exactly as before;
    with sinks (MiMo-VL's windowed blocks) window and sinks go to the backend."""
    from sglang.srt.layers.attention.vision import VisionAttention

    def vision(use_sink):
        m = VisionAttention(
            embed_dim=D_MODEL,
            num_heads=HEADS,
            projection_size=D_MODEL,
            use_qkv_parallel=True,
            flatten_batch=True,
            window_size=(8, 8),
            use_sink=use_sink,
            prefix="vision",
        )
        return randomize(m, seed=8)

    plain = mask_kwargs(vision(False))
    assert plain["window_size"] == (-1, -1) and plain["s_aux"] is None
    assert not plain.get("causal", False)
    m = vision(True)
    cu = torch.tensor([0, 5], dtype=torch.int32)
    seen = {}
    real = m.qkv_backend.forward
    m.qkv_backend.forward = lambda **kw: seen.update(kw) or real(**kw)
    with torch.no_grad():
        m(torch.randn(5, D_MODEL), cu_seqlens=cu, full_attn=False)
    # v0.5.23 hands the sinks over as s_aux (FA3's denominator form); with the
    # vision-sinks patch as sinks_key0 (MiMo's key-0 bias): either way they go.
    sinks = seen.get("sinks_key0", seen.get("s_aux"))
    assert tuple(seen["window_size"]) == (8, 8) and sinks is not None
    assert not seen.get("causal", False)
