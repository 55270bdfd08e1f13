"""MiMo-V2's fused qkv_proj loaded at an attention TP below the checkpoint's.

MiMo-V2.5 / V2.5-Pro store ``qkv_proj`` pre-sharded for an attention TP of
``num_key_value_heads``: one ``[q_i; k_i; v_i]`` block per shard. The real pinned
``load_mimo_v2_qkv_proj_weight`` loads such a weight (written here from separate
q, k and v with the released layout, sizes shrunk) into a real ``QKVParallelLinear``
of attention TP 1, for a full-attention layer (4 key-value heads: one per block) and
a sliding-window one (8: two per block), in BF16 and float32. The layer must then
compute ``x @ [q; k; v].T``: the checkpoint's projections, in the order the layer
splits them.
"""

import sys

import pytest
import torch

from sglang.srt.layers.linear import QKVParallelLinear
from sglang.srt.models.mimo_v2 import load_mimo_v2_qkv_proj_weight
from sglang.srt.runtime_context import reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.ci.ci_register import register_cpu_ci
from sglang.test.parallel_groups import publish

register_cpu_ci(est_time=5, suite="base-a-test-cpu")

HIDDEN, HEADS, HEAD_DIM, V_HEAD_DIM = 32, 16, 12, 8
CKPT_TP = 4  # the released V2.5's num_key_value_heads


@pytest.fixture(autouse=True)
def context():
    reset_context()
    publish(ServerArgs(model_path="dummy"), role="t")
    yield
    reset_context()


def fused_checkpoint(q, k, v, blocks):
    """The released layout: one [q_i; k_i; v_i] block per checkpoint shard."""
    return torch.cat(
        [
            torch.cat(parts)
            for parts in zip(q.chunk(blocks), k.chunk(blocks), v.chunk(blocks))
        ]
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("kv_heads", [4, 8], ids=["full-4kv", "swa-8kv"])
def test_fused_qkv_below_checkpoint_tp_loads_q_k_v(kv_heads, dtype):
    gen = torch.Generator().manual_seed(kv_heads)
    q = torch.randn(HEADS * HEAD_DIM, HIDDEN, generator=gen).to(dtype)
    k = torch.randn(kv_heads * HEAD_DIM, HIDDEN, generator=gen).to(dtype)
    v = torch.randn(kv_heads * V_HEAD_DIM, HIDDEN, generator=gen).to(dtype)
    layer = QKVParallelLinear(
        HIDDEN,
        HEAD_DIM,
        HEADS,
        kv_heads,
        bias=False,
        params_dtype=dtype,
        v_head_size=V_HEAD_DIM,
    )
    load_mimo_v2_qkv_proj_weight(
        "model.layers.1.self_attn.qkv_proj.weight",
        layer.weight,
        fused_checkpoint(q, k, v, CKPT_TP),
        CKPT_TP,
        qkv_proj=layer,
    )
    x = torch.randn(5, HIDDEN, generator=gen).to(dtype)
    out, _ = layer(x)
    got_q, got_k, got_v = out.float().split([len(q), len(k), len(v)], dim=-1)
    for name, got, w in (("q", got_q, q), ("k", got_k, k), ("v", got_v, v)):
        torch.testing.assert_close(
            got, x.float() @ w.float().T, rtol=2e-2, atol=2e-2, msg=name
        )


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
