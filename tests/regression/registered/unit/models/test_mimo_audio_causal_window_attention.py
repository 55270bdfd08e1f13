"""MiMo audio encoder attention: causal, windowed, per packed sequence.

The MiMo audio tokenizer's encoder layers are causal, and its hybrid blocks attend
through a sliding window (``encoder_causal``, ``encoder_attn_window_size``,
``swa_per_block`` of the config). Tested through the real modules
(``sglang.srt.models.mimo_audio``, ``VisionAttention``) on a tiny random config,
with ``--mm-attention-backend sdpa`` (the CPU backend); the CUDA test compares the
half-precision path with a float reference.

Window convention (FlashAttention's): with ``window_size = (left, right)``,
query i of a sequence sees key j of the *same* sequence iff
``i - left <= j <= i + right`` (-1 = unbounded); ``causal`` forces right = 0;
a query always sees itself.
"""

import sys

import pytest
import torch

from sglang.srt.runtime_context import reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.ci.ci_register import register_cpu_ci, register_cuda_ci
from sglang.test.parallel_groups import publish  # also writes the 1-rank TP groups

register_cpu_ci(est_time=30, suite="base-a-test-cpu")
register_cuda_ci(est_time=30, stage="base-a", runner_config="1-gpu-small")

D_MODEL, HEADS = 32, 4


@pytest.fixture(scope="module", autouse=True)
def runtime():
    reset_context()
    publish(
        ServerArgs(model_path="dummy", mm_attention_backend="sdpa"),
        role="test",
    )
    yield
    reset_context()


def mimo():
    from sglang.srt.models import mimo_audio

    return mimo_audio


def tiny_config(**kw):
    return mimo().MiMoAudioTokenizerConfig(
        d_model=D_MODEL,
        encoder_attention_heads=HEADS,
        encoder_ffn_dim=64,
        **kw,
    )


def randomize(module, seed, qkv_std=0.3):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            std = (qkv_std if "qkv" in name else 0.3) if p.dim() > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


def make_layer(causal, window, seed=0):
    cfg = tiny_config()
    layer = mimo().AudioEncoderTransformerLayer(cfg, causal, tuple(window))
    return randomize(layer, seed).eval()


def run_layer(layer, x, lengths):
    """One encoder layer on packed tokens, called as AudioEncoder.get_features does."""
    m = mimo()
    lengths = torch.tensor(lengths)
    rope = m.AudioRotaryEmbedding(10000, D_MODEL // HEADS, 4096)
    pe = rope(x, m.get_position_ids(lengths).long())
    cu = torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
    with torch.no_grad():
        return layer(x, cu, int(lengths.max()), pe)


def visible(n, window, causal):
    """Boolean [n, n] band of one sequence, written from the convention above."""
    left, right = window
    i = torch.arange(n).unsqueeze(1)
    j = torch.arange(n).unsqueeze(0)
    mask = torch.ones(n, n, dtype=torch.bool)
    if causal:
        mask &= j <= i
    if left >= 0:
        mask &= j >= i - left
    if right >= 0:
        mask &= j <= i + right
    return mask


def dense_reference(q, k, v, lengths, window, causal):
    """Float64 attention over the whole packed batch with one explicit mask."""
    mask = torch.block_diag(*[visible(n, window, causal) for n in lengths])
    mask = mask.to(q.device)
    scores = torch.einsum("ihd,jhd->hij", q.double(), k.double())
    scores = scores / q.shape[-1] ** 0.5
    probs = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return torch.einsum("hij,jhd->ihd", probs, v.double())


def mask_kwargs(vision_attention):
    """The mask arguments (window, sinks, causal) that VisionAttention.forward
    really hands its backend: one real forward call with the backend spied on."""
    seen = {}
    backend = vision_attention.qkv_backend
    real = backend.forward

    def spy(**kw):
        seen.update(kw)
        return real(**kw)

    embed = vision_attention.qkv_proj.input_size
    x = torch.randn(5, embed, generator=torch.Generator().manual_seed(0))
    backend.forward = spy
    try:
        with torch.no_grad():
            vision_attention(x, cu_seqlens=torch.tensor([0, 5], dtype=torch.int32))
    finally:
        del backend.forward
    return {k: seen[k] for k in ("window_size", "s_aux", "causal") if k in seen}


def backend_call(vision_attention, q, k, v, lengths):
    """Call the attention backend exactly as VisionAttention.forward does."""
    cu = torch.tensor([0] + lengths).cumsum(0).to(torch.int32).to(q.device)
    return vision_attention.qkv_backend.forward(
        q=q,
        k=k,
        v=v,
        bsz=1,
        seq_len=q.shape[0],
        cu_seqlens=cu,
        attention_mask=None,
        forward_metadata=None,
        sequence_lengths=None,
        max_seqlen=max(lengths),
        output_ws=None,
        softmax_scale=vision_attention.softmax_scale,
        **mask_kwargs(vision_attention),
    )


def make_attention(causal, window, heads=HEADS, head_dim=D_MODEL // HEADS):
    return mimo().AudioEncoderAttention(heads * head_dim, heads, tuple(window), causal)


# --- one encoder layer ----------------------------------------------------------

LAYERS = [((4, 0), True), ((-1, -1), True)]


@pytest.mark.parametrize("window,causal", LAYERS)
def test_layer_prefix_invariance(window, causal):
    layer = make_layer(causal, window)
    x = torch.randn(33, D_MODEL, generator=torch.Generator().manual_seed(1))
    short = run_layer(layer, x[:20], [20])
    long = run_layer(layer, x, [33])
    torch.testing.assert_close(short, long[:20], rtol=0, atol=1e-5)


def changed_outputs(layer, n, j, delta):
    x = torch.randn(n, D_MODEL, generator=torch.Generator().manual_seed(2))
    base = run_layer(layer, x, [n])
    x2 = x.clone()
    x2[j] += delta
    diff = (run_layer(layer, x2, [n]) - base).abs().amax(-1)
    return set(torch.nonzero(diff > 1e-4).flatten().tolist())


@pytest.mark.parametrize(
    "window,causal,expected",
    [
        ((4, 0), True, set(range(6, 11))),  # i - 4 <= 6 <= i
        ((-1, -1), True, set(range(6, 16))),  # every later token
        ((4, 0), False, set(range(6, 11))),  # (w, 0) is causal by itself
        ((2, 3), False, set(range(3, 9))),  # i - 2 <= 6 <= i + 3
    ],
)
def test_layer_dependence_follows_window(window, causal, expected):
    layer = make_layer(causal, window)
    delta = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(3))
    assert changed_outputs(layer, 16, 6, delta) == expected


# --- the attention the layer runs, against a dense float reference ---------------

WINDOWS = [
    ((128, 0), True),
    ((128, 0), False),
    ((3, 0), True),
    ((1, 0), True),
    ((0, 0), True),
    ((0, 0), False),
    ((2, 3), False),
    ((2, 3), True),
    ((-1, -1), True),
    ((-1, 0), False),
    ((5000, 0), True),  # wider than every clip
]


def random_lengths(seed):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 300, (5,), generator=gen).tolist()
    # length-1 clips, a clip across the SDPA block size, clips around the window
    return lengths + [1, 700, 129, 1, 130]


@pytest.mark.parametrize("window,causal", WINDOWS)
def test_attention_matches_dense_reference(window, causal):
    attn = make_attention(causal, window, heads=2, head_dim=8)
    for seed in (0, 1):
        lengths = random_lengths(seed)
        gen = torch.Generator().manual_seed(seed)
        q, k, v = torch.randn(3, sum(lengths), 2, 8, generator=gen)
        out = backend_call(attn.attn, q, k, v, lengths)
        ref = dense_reference(q, k, v, lengths, window, causal)
        torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "window,causal",
    [
        ((0, 0), False),
        ((2, 0), True),
        ((2, 1), False),
        ((-1, 0), False),
        ((1, 5), True),
    ],
)
def test_window_edges_are_inclusive_of_self(window, causal):
    """q = 0 makes the softmax uniform over the visible keys; one-hot values
    then read back exactly which keys each query saw, per packed clip."""
    lengths = [5, 7, 1]
    n = sum(lengths)
    attn = make_attention(causal, window, heads=1, head_dim=n)
    q = torch.zeros(n, 1, n)
    v = torch.eye(n).unsqueeze(1)
    out = backend_call(attn.attn, q, torch.randn(n, 1, n), v, lengths)[:, 0]
    expected = torch.block_diag(*[visible(m, window, causal) for m in lengths])
    assert torch.equal(out > 1e-6, expected)
    torch.testing.assert_close(out.sum(-1), torch.ones(n))


# --- the whole encoder: the user-visible symptom ---------------------------------


def tiny_encoder():
    m = mimo()
    cfg = tiny_config(
        n_mels=8,
        encoder_layers=4,
        encoder_skip_layer_id=2,
        encoder_causal=True,
        encoder_attn_window_size=[6, 0],
        hybrid_attention=True,
        swa_per_block=2,
        avg_pooler=2,
        num_quantizers=4,
        codebook_size=[64],
    )
    enc = randomize(m.AudioEncoder(cfg), seed=5, qkv_std=0.1).eval()
    gen = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for vq in enc.quantizer.vq.layers:  # kmeans_init leaves zero codebooks
            vq._codebook.embed.copy_(torch.randn(64, D_MODEL, generator=gen))
    return enc


@pytest.mark.parametrize("n_mel", [80, 81])
def test_encoder_codes_of_a_clip_are_a_prefix_of_the_extended_clip(n_mel):
    """All but the last code frame must match. conv1 (k=3, pad=1) gives frame
    n_mel-1 a zero right neighbour in the short clip and a real one in the long
    clip; conv2 (k=3, stride=2, pad=1) puts that frame only into the last
    encoder frame, and the 2-frame average pooler puts the last encoder frame
    only into the last code frame. Causal attention carries nothing backwards,
    so exactly 1 trailing code frame may differ."""
    enc = tiny_encoder()
    mel = torch.randn(130, 8, generator=torch.Generator().manual_seed(7))

    def encode(n, **kw):
        return enc.encode(mel[:n], input_lens=torch.tensor([n]), **kw)

    _, feats_short, n_short, _ = encode(n_mel, use_quantizer=False)
    _, feats_long, _, _ = encode(130, use_quantizer=False)
    keep = int(n_short) - 1
    torch.testing.assert_close(feats_short[:keep], feats_long[:keep], rtol=0, atol=1e-5)
    codes_short, _ = encode(n_mel, return_codes_only=True)
    codes_long, _ = encode(130, return_codes_only=True)
    assert torch.equal(codes_short[:, :keep], codes_long[:, :keep])


# --- CUDA: half precision against the float reference ----------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="requires CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("window,causal", [((128, 0), True), ((-1, -1), True)])
def test_cuda_half_precision_matches_float_reference(dtype, window, causal):
    gen = torch.Generator().manual_seed(10)
    lengths = torch.randint(100, 1500, (16,), generator=gen).tolist()
    attn = make_attention(causal, window, heads=12, head_dim=64)
    q, k, v = torch.randn(3, sum(lengths), 12, 64, generator=gen)
    out = backend_call(attn.attn, *(t.cuda().to(dtype) for t in (q, k, v)), lengths)
    start = 0
    for n in lengths:  # float reference per clip keeps the dense mask small
        s = slice(start, start + n)
        ref = dense_reference(
            q[s].cuda(), k[s].cuda(), v[s].cuda(), [n], window, causal
        )
        tol = 2e-2 if dtype == torch.bfloat16 else 4e-3
        torch.testing.assert_close(out[s].double(), ref, rtol=0, atol=tol)
        start += n


# --- the mask reaches every backend the recipes use ------------------------------
# fa3/fa4 kernels are CUDA-only and the Triton kernel needs a GPU: on CPU the
# kernel entry point each backend calls is replaced by a recorder (a stand-in
# for the kernel only); the backend code in front of it is SGLang's own.


@pytest.fixture
def mm_backend():
    """Publish --mm-attention-backend NAME for the layers built in the test."""

    def use(name):
        reset_context()
        publish(ServerArgs(model_path="dummy", mm_attention_backend=name), role="test")

    yield use
    use("sdpa")


class KernelRecorder:
    def __init__(self, monkeypatch, name):
        from sglang.srt.layers.attention import vision

        self.calls = []

        def kernel(*args, **kwargs):
            self.calls.append(kwargs)
            q = args[0]
            return torch.zeros_like(q) if name == "flash_attn_func" else None

        monkeypatch.setattr(vision, name, kernel, raising=False)


def backend_of(name, window, causal):
    """An audio layer's VisionAttention with its backend built as SGLang builds
    it, bypassing only the CUDA-availability check of the CUDA-only classes."""
    from sglang.srt.layers.attention import vision

    attn = make_attention(causal, window, heads=2, head_dim=8).attn
    cls = vision.QKV_BACKEND_IMPL[name]
    backend = object.__new__(cls)
    torch.nn.Module.__init__(backend)
    attn.qkv_backend = backend
    return attn


@pytest.mark.parametrize("name", ["fa3", "fa4"])
@pytest.mark.parametrize("window,causal", [((128, 0), True), ((-1, -1), True)])
def test_flash_attention_backends_get_causal_and_window(
    name, window, causal, mm_backend, monkeypatch
):
    rec = KernelRecorder(monkeypatch, "flash_attn_func")
    attn = backend_of(name, window, causal)
    q = torch.randn(12, 2, 8)
    backend_call(attn, q, q, q, [5, 7])
    assert rec.calls[-1]["causal"] is True
    assert tuple(rec.calls[-1]["window_size"]) == window


def test_triton_backend_gets_causal(monkeypatch):
    rec = KernelRecorder(monkeypatch, "context_attention_fwd")
    attn = backend_of("triton_attn", (-1, -1), True)
    q = torch.randn(12, 2, 8)
    backend_call(attn, q, q, q, [5, 7])
    assert rec.calls[-1]["is_causal"] is True


@pytest.mark.parametrize("name", ["flashinfer_cudnn", "aiter_attn"])
def test_backend_that_cannot_apply_the_window_refuses_the_layer(name, mm_backend):
    mm_backend(name)
    with pytest.raises(ValueError, match="sliding window \\(128, 0\\)"):
        make_attention(False, (128, 0))


def test_backend_that_cannot_apply_causal_refuses_the_layer(mm_backend):
    mm_backend("flashinfer_cudnn")
    with pytest.raises(ValueError, match="is causal"):
        make_attention(True, (-1, -1))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
