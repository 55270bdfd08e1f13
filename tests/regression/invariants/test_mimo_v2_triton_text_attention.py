"""MiMo-V2's text attention through SGLang's Triton kernels, against the reference.

The GB10 recipe serves the text model with ``--attention-backend triton``. The CPU
engine tier runs torch_native, which has no attention sinks, so nothing else here
compares the sliding-window layers' sinks with the reference. These CUDA tests run
the pinned release's own Triton text-attention kernels (``extend_attention_fwd``,
``decode_attention_fwd``; neither is touched by the series, so both trees run the
same code) with the arguments ``TritonAttnBackend`` (``srt/layers/attention/
triton_backend.py``) hands them for MiMo's two layer kinds, and compare with a float64
reference of MiMo's attention written from transformers' ``MiMoV2FlashAttention``
(``eager_attention_forward`` of ``modeling_mimo_v2_flash.py``):

- sliding-window layers: key ``k`` is kept for query ``q`` when ``0 <= q - k <
  sliding_window_size`` (128 released), and a learned per-head sink is one more
  logit in the softmax denominator with no value (concatenated, softmaxed, dropped);
- full layers: causal, no sinks (``add_full_attention_sink_bias`` is false in both
  released configs);
- grouped-query heads (query head ``h`` reads KV head ``h // group``), scale
  ``head_dim ** -0.5`` with head_dim 192, values of 128; ``attention_value_scale``
  multiplies v before attention in both (``models/mimo_v2.py`` ``forward``), so the
  kernel and the reference take the same scaled v.

Shapes are one TP-4 rank's (the recipe's): full layers 16 query / 1 KV head, sliding
layers 16 / 2. Two windows are in play, as in the backend: the kernels' masks get the
window the patched model passes to ``RadixAttention`` (``sliding_window_size - 1``,
patch 0012: SGLang's window does not count the query's own key); the sliding-window
KV gathers (``update_sliding_window_buffer``) get the backend's own window,
``model_runner.sliding_window_size``, which for MiMo is the config's 128 (MiMo's model
class has no ``get_attention_sliding_window_size``; checked on the CPU below). Decode
masks nothing: it attends to the gathered ``min(seq_len, 128)`` keys, its own
included. The unpatched model passes 128 to the kernels, which is the model's
business, not the kernels': this file tests the kernel contract with the windows the
patched model gives, on both trees.

EAGLE's target verify (every recipe drafts with MTP, ``--speculative-eagle-topk 1``)
goes through the same extend kernel with a chain's custom mask; its drafts must attend
as the same tokens would in a causal extend after the committed ones.

Index arguments are built as the backend builds them for a plain KV pool with page
size 1; triton_backend.py imports ``sgl_kernel`` on CUDA, so its helpers cannot be
imported on a GPU machine without it and are mirrored here (each mirror names its
source), with ``create_flashinfer_kv_indices_triton`` and ``get_num_kv_splits_triton``
the kernels the backend launches. ``test_index_mirror_matches_the_backend`` checks the
mirrors against the backend's own ``update_sliding_window_buffer`` and the KV index
translator's ``pack_read_stream`` on the CPU (Triton's interpreter, where the backend
imports without ``sgl_kernel``).

Tolerance: three times the reference's own error when run in the kernel's dtype (the
eager form in bf16 or fp16 against float64), as tests/engine/text_parity.py. Each
case also checks that the comparison could fail where it matters: a window one key
narrower or wider, dropped sinks (sliding layers), a dropped oldest key and a sink
where none belongs (full layers) must each be farther from the reference than the
tolerance.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[3]
CONFIGS = ("MiMo-V2.5", "MiMo-V2-Flash")  # recipes/configs/NAME/config.json
TP = 4  # the GB10 recipe's --tp-size

# One TP-4 rank of the released configs (checked by test_shapes_are_the_released_ones).
SLIDING_WINDOW_SIZE = 128  # keys a query sees, its own included
KERNEL_WINDOW = SLIDING_WINDOW_SIZE - 1  # what RadixAttention gets (patch 0012)
# TritonAttnBackend.sliding_window_size (triton_backend.py:217) is
# model_runner.sliding_window_size, resolve_sliding_window_size
# (model_runner_components/load_model_utils.py:144-157): the config's value for MiMo
BACKEND_WINDOW = SLIDING_WINDOW_SIZE
HEAD_DIM, V_HEAD_DIM = 192, 128
VALUE_SCALE = 0.707
LAYERS = {
    # name: (query heads, KV heads, window counting the query's own key, sinks)
    "sliding": (16, 2, SLIDING_WINDOW_SIZE, True),
    "full": (16, 1, None, False),
}
MAX_KV_SPLITS = 8  # --triton-attention-num-kv-splits default
TOL_FACTOR = 3

# (prefix length, extend length) per request of one extend batch; decode: sequence
# lengths, the new token last. Lengths cross the window (127, 128, 129) and the kernels'
# 64/32-key blocks; prefixes shorter and longer than the window.
PREFILL = [(0, 1000), (0, 300), (0, 129), (0, 128), (0, 127), (0, 1)]
PREFIX = [(128, 300), (500, 129), (127, 1), (1, 700), (900, 100), (1000, 1), (129, 64)]
DECODE = [1, 2, 127, 128, 129, 130, 300, 1000, 1025, 4097]
# EAGLE verify: committed lengths, and the recipes' draft tokens per request
# (--speculative-num-draft-tokens 4: the bonus token and 3 MTP drafts).
VERIFY = [1, 3, 124, 125, 127, 128, 129, 300, 1000]
DRAFT_TOKENS = 4


def reference(q, k, v, q_pos, window, sinks, scale, dtype, first_key=0):
    """transformers' eager MiMo-V2 attention for one sequence, computed in ``dtype``.

    q [n, H, 192] at absolute positions ``q_pos`` [n]; k [L, Hkv, 192], v [L, Hkv, 128]
    for positions 0..L-1; ``window`` counts the query's own key (None: full);
    ``sinks`` [H] or None. ``first_key`` (sensitivity only) hides the keys before it
    from queries that see another key."""
    group = q.shape[1] // k.shape[1]
    q, k, v = (t.to(dtype) for t in (q, k, v))
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    logits = torch.einsum("qhd,khd->hqk", q, k) * scale
    qp = q_pos[:, None].to(q.device)
    kp = torch.arange(k.shape[0], device=q.device)[None, :]
    keep = kp <= qp
    if window is not None:
        keep &= qp - kp < window
    keep &= kp >= torch.clamp(qp, max=first_key)
    logits = logits.masked_fill(~keep, float("-inf"))
    if sinks is not None:
        column = sinks.to(dtype)[:, None, None].expand(-1, q.shape[0], 1)
        logits = torch.cat([logits, column], -1)
    logits = logits - logits.max(dim=-1, keepdim=True).values
    probs = torch.softmax(logits, dim=-1, dtype=dtype)
    if sinks is not None:
        probs = probs[..., :-1]
    return torch.einsum("hqk,khd->qhd", probs.to(dtype), v)


# --- index arguments, as TritonAttnBackend builds them (plain pool, page size 1) ------


def fill_kv_indices(req_to_token, req_pool_indices, lens, start=None):
    """kv_indptr / kv_indices of ``lens`` keys per request from ``start`` (None: 0).

    Mirrors TritonAttnBackend._fill_kv_indptr_and_indices (triton_backend.py:515-534)
    and the gather of update_sliding_window_buffer (:2845-2902), both through
    KVIndexTranslator.pack_read_stream (mem_cache/kv_index_translator.py:537-612),
    which for a pool that does not translate (a plain pool) launches
    create_flashinfer_kv_indices_triton on ``req_to_token`` rows, one program per
    request (num_token_blocks=1)."""
    from sglang.kernels.ops.attention.kv_indices import (
        create_flashinfer_kv_indices_triton,
    )

    bs = lens.numel()
    indptr = torch.zeros(bs + 1, dtype=torch.int32, device=lens.device)
    indptr[1:] = torch.cumsum(lens, dim=0)
    indices = torch.empty(int(indptr[-1]), dtype=torch.int64, device=lens.device)
    create_flashinfer_kv_indices_triton[(bs, 1)](
        req_to_token,
        req_pool_indices[:bs],
        lens,
        indptr,
        start,
        indices,
        req_to_token.stride(0),
        ENTRY_PAGE_SIZE=1,
        TOKEN_BLOCK_PARALLEL=False,
        token_mapping=None,
    )
    return indptr, indices


def window_kv_indices(req_to_token, req_pool_indices, seq_lens, window):
    """update_sliding_window_buffer (triton_backend.py:2845-2902): the last
    min(seq_len, window) keys; returns (indptr, indices, lens, start)."""
    lens = torch.minimum(seq_lens, torch.tensor(window))
    start = seq_lens - lens
    indptr, indices = fill_kv_indices(req_to_token, req_pool_indices, lens, start)
    return indptr, indices, lens, start


def num_kv_splits(seq_lens, num_head, num_kv_head):
    """TritonAttnBackend.get_num_kv_splits (triton_backend.py:431-480), not
    deterministic, no static splits, no split tile size."""
    import triton
    from sglang.kernels.ops.attention.metadata import get_num_kv_splits_triton
    from sglang.srt.utils import get_device_core_count

    bs = seq_lens.numel()
    out = torch.empty((bs,), dtype=torch.int32, device=seq_lens.device)
    uneven = torch.zeros((1,), dtype=torch.int32, device=seq_lens.device)
    cores = get_device_core_count(seq_lens.device.index or 0)
    if cores <= 0:  # no CUDA device (Triton's interpreter)
        out.fill_(MAX_KV_SPLITS)
        return out, uneven
    get_num_kv_splits_triton[(1,)](
        out,
        seq_lens,
        bs,
        1,
        num_head,
        num_kv_head,
        MAX_KV_SPLITS,
        cores,
        MAX_NUM_SEQ=256 if bs < 256 else triton.next_power_of_2(bs),
        uneven_batch_ptr=uneven,
    )
    return out, uneven


# --- one batch through the kernels -------------------------------------------------


class Batch:
    """Random q/k/v of whole sequences, their KV in a pool at scattered slots (slot 0
    left out, as SGLang keeps it), request rows scattered in ``req_to_token``."""

    def __init__(self, lengths, layer, dtype, seed, device="cuda"):
        heads, kv_heads, self.window, use_sinks = LAYERS[layer]
        gen = torch.Generator().manual_seed(seed)
        self.device = dev = device
        self.q, self.k, self.v = [], [], []
        for n in lengths:
            self.q.append(torch.randn(n, heads, HEAD_DIM, generator=gen).to(dev, dtype))
            self.k.append(
                torch.randn(n, kv_heads, HEAD_DIM, generator=gen).to(dev, dtype)
            )
            # the model scales v (in its dtype) before attention
            v = torch.randn(n, kv_heads, V_HEAD_DIM, generator=gen).to(dev, dtype)
            self.v.append(v * VALUE_SCALE)
        # per-head sinks in the model's dtype, from about -3 to 5
        self.sinks = (
            (torch.randn(heads, generator=gen) * 2 + 1).to(dev, dtype)
            if use_sinks
            else None
        )
        total = sum(lengths)
        slots = (torch.randperm(total, generator=gen) + 1).to(dev)
        self.k_buffer = torch.zeros(
            total + 1, kv_heads, HEAD_DIM, dtype=dtype, device=dev
        )
        self.v_buffer = torch.zeros(
            total + 1, kv_heads, V_HEAD_DIM, dtype=dtype, device=dev
        )
        rows = torch.randperm(len(lengths) + 3, generator=gen)[: len(lengths)]
        self.req_to_token = torch.zeros(
            len(lengths) + 3, max(lengths), dtype=torch.int32, device=dev
        )
        self.slots, off = [], 0
        for i, n in enumerate(lengths):
            s = slots[off : off + n]
            off += n
            self.req_to_token[rows[i], :n] = s.to(torch.int32)
            self.slots.append(s)
        self.req_pool_indices = rows.to(dev)
        self.heads, self.kv_heads = heads, kv_heads
        self.scale = HEAD_DIM**-0.5
        self.dtype = dtype

    def store(self, i, positions):
        """set_kv_buffer of a plain pool: k_buffer[loc] = k (forward_extend and
        forward_decode write the batch's own tokens before the kernel)."""
        loc = self.slots[i][positions]
        self.k_buffer[loc] = self.k[i][positions]
        self.v_buffer[loc] = self.v[i][positions]

    def kernel_window(self):
        return -1 if self.window is None else KERNEL_WINDOW

    def extend(self, prefix_lens, extend_lens, custom_mask=None, mask_indptr=None):
        """TritonAttnBackend.init_forward_metadata (extend, triton_backend.py:1063-1127)
        and forward_extend (:1669-1916); ``custom_mask`` / ``mask_indptr`` as target
        verify passes them (``verify``)."""
        from sglang.kernels.ops.attention.extend_attention import extend_attention_fwd

        dev = self.device
        for i, (p, e) in enumerate(zip(prefix_lens, extend_lens)):
            self.store(i, slice(0, p))  # the cached prefix (an earlier forward)
        prefix = torch.tensor(prefix_lens, dtype=torch.int32, device=dev)
        ext = torch.tensor(extend_lens, dtype=torch.int32, device=dev)
        kv_indptr, kv_indices = fill_kv_indices(
            self.req_to_token, self.req_pool_indices, prefix
        )
        window_offsets = None
        if self.window is not None:
            kv_indptr, kv_indices, _, window_offsets = window_kv_indices(
                self.req_to_token, self.req_pool_indices, prefix, BACKEND_WINDOW
            )
        qo_indptr = torch.zeros(len(extend_lens) + 1, dtype=torch.int64, device=dev)
        qo_indptr[1:] = torch.cumsum(ext, dim=0)
        q = torch.cat([self.q[i][p:] for i, p in enumerate(prefix_lens)])
        k = torch.cat([self.k[i][p:] for i, p in enumerate(prefix_lens)])
        v = torch.cat([self.v[i][p:] for i, p in enumerate(prefix_lens)])
        for i, p in enumerate(prefix_lens):
            self.store(i, slice(p, None))  # save_kv_cache, before the kernel
        o = q.new_empty((q.shape[0], self.heads * V_HEAD_DIM))
        extend_attention_fwd(
            q.view(-1, self.heads, HEAD_DIM),
            k.contiguous(),
            v.contiguous(),
            o.view(-1, self.heads, V_HEAD_DIM),
            self.k_buffer,
            self.v_buffer,
            qo_indptr,
            kv_indptr,
            kv_indices,
            custom_mask,
            True,  # causal
            mask_indptr,
            max(extend_lens),
            1.0,  # k_descale
            1.0,  # v_descale
            self.scale,
            logit_cap=0.0,
            sliding_window_size=self.kernel_window(),
            sinks=self.sinks,
            window_kv_offsets=window_offsets,
            xai_temperature_len=-1,
            page_size=1,
            score_mod=None,
            aux_tensors=None,
            extend_seq_lens_cpu=list(extend_lens),
        )
        if dev == "cuda":
            torch.cuda.synchronize()
        q_pos = [torch.arange(p, p + e) for p, e in zip(prefix_lens, extend_lens)]
        return o.view(-1, self.heads, V_HEAD_DIM), q_pos

    def verify(self, seq_lens, draft):
        """EAGLE's target verify with ``--speculative-eagle-topk 1`` (every recipe's
        chain of MTP drafts): ``draft`` tokens per request after ``seq_lens`` committed
        ones. TritonAttnBackend.init_forward_metadata (target_verify,
        triton_backend.py:1007-1062) and forward_extend (causal, with the custom mask;
        the split-KV verify kernels are ROCm only). The mask is the FULL_MASK layout of
        speculative/eagle_utils.py build_tree_kernel_efficient, one row of
        ``seq_len + draft`` columns per draft token, filled for a chain: every committed
        key, and draft ``j`` for draft ``i`` when ``j <= i`` (the tree kernel itself is
        in sgl_kernel)."""
        bs = len(seq_lens)
        chain = torch.ones(draft, draft, dtype=torch.bool).tril()
        custom_mask = torch.cat(
            [
                torch.cat([torch.ones(draft, n, dtype=torch.bool), chain], 1).flatten()
                for n in seq_lens
            ]
        ).to(self.device)
        lens = torch.tensor(seq_lens, dtype=torch.int64, device=self.device)
        mask_indptr = torch.zeros(bs + 1, dtype=torch.int64, device=self.device)
        mask_indptr[1:] = torch.cumsum(draft * (lens + draft), dim=0)
        # The metadata target verify builds is extend's with these two added (its
        # qo_indptr steps by ``draft``, the same offsets).
        return self.extend(seq_lens, [draft] * bs, custom_mask, mask_indptr)

    def decode(self, seq_lens):
        """TritonAttnBackend.init_forward_metadata (decode, triton_backend.py:890-1006)
        and forward_decode (:2288-2500) on CUDA (the standard grouped kernel; Lean
        decode is ROCm only)."""
        from sglang.kernels.ops.attention.decode_attention import decode_attention_fwd

        dev = self.device
        for i, n in enumerate(seq_lens):
            self.store(i, slice(0, n - 1))  # earlier tokens
            self.store(i, slice(n - 1, n))  # save_kv_cache of the new token
        lens = torch.tensor(seq_lens, dtype=torch.int64, device=dev)
        kv_indptr, kv_indices = fill_kv_indices(
            self.req_to_token, self.req_pool_indices, lens
        )
        if self.window is not None:
            kv_indptr, kv_indices, _, _ = window_kv_indices(
                self.req_to_token, self.req_pool_indices, lens, BACKEND_WINDOW
            )
        bs = len(seq_lens)
        # the backend sizes the buffers with the model's heads per rank (64 // 4 query
        # heads, 4 // 4 full-layer KV heads) and splits by the full seq_lens for every
        # layer (forward_metadata.num_kv_splits)
        splits, uneven = num_kv_splits(lens, 16, 1)
        attn_logits = torch.empty(
            (bs, 16, MAX_KV_SPLITS, V_HEAD_DIM), dtype=torch.float32, device=dev
        )
        attn_lse = torch.empty((bs, 16, MAX_KV_SPLITS), dtype=torch.float32, device=dev)
        q = torch.stack([self.q[i][n - 1] for i, n in enumerate(seq_lens)])
        o = q.new_empty((bs, self.heads * V_HEAD_DIM))
        decode_attention_fwd(
            q.view(-1, self.heads, HEAD_DIM),
            self.k_buffer,
            self.v_buffer,
            o.view(-1, self.heads, V_HEAD_DIM),
            kv_indptr,
            kv_indices,
            attn_logits,
            attn_lse,
            splits,
            MAX_KV_SPLITS,
            self.scale,
            1.0,
            1.0,
            logit_cap=0.0,
            sinks=self.sinks,
            xai_temperature_len=-1,
            has_mla=False,
            # sgl_kernel.utils.is_arch_support_pdl: compute capability 9 or more
            use_pdl=dev == "cuda" and torch.cuda.get_device_capability()[0] >= 9,
            page_size=1,
            score_mod=None,
            aux_tensors=None,
            enable_lean=False,
            uneven_batch=uneven,
        )
        if dev == "cuda":
            torch.cuda.synchronize()
        return o.view(-1, self.heads, V_HEAD_DIM), [
            torch.tensor([n - 1]) for n in seq_lens
        ]

    def references(self, q_pos, dtype, **change):
        """The reference over the batch's query rows, in ``dtype``; ``change``
        overrides window / sinks / first_key (the sensitivity checks)."""
        args = {**dict(window=self.window, sinks=self.sinks, first_key=0), **change}
        return torch.cat(
            [
                reference(
                    self.q[i][pos.to(self.q[i].device)],
                    self.k[i][: int(pos[-1]) + 1],
                    self.v[i][: int(pos[-1]) + 1],
                    pos,
                    args["window"],
                    args["sinks"],
                    self.scale,
                    dtype,
                    args["first_key"],
                )
                for i, pos in enumerate(q_pos)
            ]
        ).double()


def compare(batch, out, q_pos):
    """(error, tolerance, the reference's own error, {wrong variant: its distance})."""
    ref = batch.references(q_pos, torch.float64)
    floor = (batch.references(q_pos, batch.dtype) - ref).abs().max().item()
    err = (out.double() - ref).abs().max().item()
    away = {
        name: (batch.references(q_pos, torch.float64, **c) - ref).abs().max().item()
        for name, c in wrong_variants(batch).items()
    }
    return err, TOL_FACTOR * floor, floor, away


def wrong_variants(batch):
    """What the comparison must be able to tell from the reference."""
    if batch.window is not None:
        return {
            "window one key narrower": dict(window=batch.window - 1),
            "window one key wider": dict(window=batch.window + 1),
            "sinks dropped": dict(sinks=None),
        }
    gen = torch.Generator().manual_seed(7)
    sink = (torch.randn(batch.heads, generator=gen) * 2 + 1).to(
        batch.device, batch.dtype
    )
    return {"oldest key dropped": dict(first_key=1), "a sink added": dict(sinks=sink)}


def check(label, batch, out, q_pos):
    assert torch.isfinite(out).all(), f"{label}: non-finite output"
    err, tol, floor, away = compare(batch, out, q_pos)
    print(
        f"[mimo-v2 triton text attention] {label}: max abs error {err:.3e}, "
        f"tolerance {tol:.3e} ({TOL_FACTOR} x the reference's own {floor:.1e}); "
        + ", ".join(f"{k} {v:.3e}" for k, v in away.items())
    )
    for name, d in away.items():
        assert d > tol, f"{label}: the comparison cannot see '{name}' ({d:.3e})"
    if err > tol:
        # which wrong variant the kernel computed instead, if any
        near = {
            name: (out.double() - batch.references(q_pos, torch.float64, **c))
            .abs()
            .max()
            .item()
            for name, c in wrong_variants(batch).items()
        }
        said = (
            f"{label}: max abs error {err:.3e} > tolerance {tol:.3e}; the kernel's "
            "distance from the reference with "
            + ", ".join(f"{k}: {v:.3e}" for k, v in near.items())
        )
        print(f"[mimo-v2 triton text attention] {said}")  # xfail hides the message
        pytest.fail(said, pytrace=False)
    return err, tol


DTYPES = [torch.bfloat16, torch.float16]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("case", ["prefill", "prefix"])
def test_extend_matches_mimo_reference(case, layer, dtype):
    pairs = PREFILL if case == "prefill" else PREFIX
    batch = Batch([p + e for p, e in pairs], layer, dtype, seed=len(pairs))
    out, q_pos = batch.extend([p for p, _ in pairs], [e for _, e in pairs])
    check(f"extend {case} {layer} {dtype}", batch, out, q_pos)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_eagle_verify_matches_mimo_reference(layer, dtype):
    """The chain of drafts verified in one extend: each draft token attends as the
    same token would in a plain causal extend after the committed ones."""
    batch = Batch([n + DRAFT_TOKENS for n in VERIFY], layer, dtype, seed=5)
    out, q_pos = batch.verify(VERIFY, DRAFT_TOKENS)
    check(f"eagle verify {layer} {dtype}", batch, out, q_pos)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=["bf16", "fp16"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_decode_matches_mimo_reference(layer, dtype):
    batch = Batch(DECODE, layer, dtype, seed=3)
    out, q_pos = batch.decode(DECODE)
    check(f"decode {layer} {dtype}", batch, out, q_pos)


# --- on the CPU ---------------------------------------------------------------------


def released_text_config(name):
    cfg = json.loads((REPO / "recipes" / "configs" / name / "config.json").read_text())
    return cfg.get("text_config", cfg)


def test_shapes_are_the_released_ones():
    """The constants above are one TP-4 rank of both released configs."""
    for name in CONFIGS:
        cfg = released_text_config(name)
        assert cfg["sliding_window_size"] == SLIDING_WINDOW_SIZE, name
        assert cfg["attention_value_scale"] == VALUE_SCALE, name
        assert cfg["head_dim"] == cfg["swa_head_dim"] == HEAD_DIM, name
        assert cfg["v_head_dim"] == cfg["swa_v_head_dim"] == V_HEAD_DIM, name
        full = (
            cfg["num_attention_heads"] // TP,
            max(1, cfg["num_key_value_heads"] // TP),
            None,
            cfg["add_full_attention_sink_bias"],
        )
        sliding = (
            cfg["swa_num_attention_heads"] // TP,
            max(1, cfg["swa_num_key_value_heads"] // TP),
            cfg["sliding_window_size"],
            cfg["add_swa_attention_sink_bias"],
        )
        assert LAYERS == {"sliding": sliding, "full": full}, name


MIRROR = """
import sys, torch
sys.path.insert(0, {here!r})
import test_mimo_v2_triton_text_attention as t
from sglang.srt.layers.attention.triton_backend import update_sliding_window_buffer
from sglang.srt.configs.model_config import ModelConfig
from sglang.srt.mem_cache.kv_index_translator import KVIndexTranslator
from sglang.srt.model_executor.model_runner_components.load_model_utils import (
    resolve_sliding_window_size,
)
from sglang.srt.models.mimo_v2 import MiMoV2FlashForCausalLM, MiMoV2ForCausalLM
from types import SimpleNamespace
from sglang.srt.runtime_context import reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.parallel_groups import publish

reset_context()
publish(ServerArgs(model_path="dummy"), role="t")
gen = torch.Generator().manual_seed(0)
lengths = [1, 126, 127, 128, 129, 700, 0]
req_to_token = torch.randint(1, 5000, (10, 800), generator=gen, dtype=torch.int32)
rows = torch.randperm(10, generator=gen)[: len(lengths)]
seq_lens = torch.tensor(lengths)
translator = KVIndexTranslator(
    req_to_token=req_to_token, token_to_kv_pool_allocator=None,
    token_to_kv_pool=None, page_size=1, device="cpu",
)
bs = len(lengths)
indptr = torch.zeros(bs + 1, dtype=torch.int32)
got = update_sliding_window_buffer(
    indptr, translator, None, rows, t.KERNEL_WINDOW, seq_lens, bs, "cpu", None
)
want = t.window_kv_indices(req_to_token, rows, seq_lens, t.KERNEL_WINDOW)
assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
assert torch.equal(got[2], want[2]) and torch.equal(got[3], want[3])
# the full-layer stream: _fill_kv_indptr_and_indices through pack_read_stream
indptr = torch.zeros(bs + 1, dtype=torch.int32)
indptr[1:] = torch.cumsum(seq_lens, 0)
out = torch.empty(int(indptr[-1]), dtype=torch.int64)
translator.pack_read_stream(
    None, req_pool_indices=rows, seq_lens=seq_lens, indptr=indptr, out=out
)
want = t.fill_kv_indices(req_to_token, rows, seq_lens)
assert torch.equal(indptr, want[0]) and torch.equal(out, want[1])
# the backend's window for MiMo: the config's sliding_window_size, as SGLang resolves it
for cls, name in ((MiMoV2ForCausalLM, "MiMo-V2.5"), (MiMoV2FlashForCausalLM, "MiMo-V2-Flash")):
    cfg = t.released_text_config(name)
    model_config = SimpleNamespace(hf_text_config=SimpleNamespace(**cfg))
    model_config.is_hybrid_swa = True
    model_config.attention_chunk_size = None
    model_config.sliding_window_size = ModelConfig._get_sliding_window_size(model_config)
    assert resolve_sliding_window_size(cls, model_config) == t.BACKEND_WINDOW, name
print("ok", want[1].numel(), got[1].numel())
"""


def test_index_mirror_matches_the_backend(tmp_path):
    """The mirrored index builders give what the backend's own helpers give, on the
    CPU in Triton's interpreter (which must be set before triton is imported: a
    subprocess)."""
    script = tmp_path / "mirror.py"
    script.write_text(textwrap.dedent(MIRROR.format(here=str(Path(__file__).parent))))
    env = {**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("ok"), proc.stdout
