"""MiMo audio encoder attention under DP attention: which group its output reduces over.

Under ``--attn-dp-size`` the audio encoder's weights shard over the attention-TP
group, so its output projection must reduce over that group, not over all of TP
(#37059: every request with audio hangs the server). The real pinned ``AudioEncoderAttention``
(``VisionAttention`` with its ``QKVParallelLinear`` / ``RowParallelLinear``) is built
and run on a tiny config in one process, in the placement of TP rank 0 of
``--tp-size 4 --attn-dp-size 2`` (attention TP 2), set up by SGLang's own helpers:
``publish`` of the ServerArgs and ``initialize_dp_attention`` (what a worker calls).

The one stand-in: the two process groups are :class:`RecordingGroup` objects, which
answer ``all_reduce`` with the input (as one rank's view of a sum) and record which
group was asked. On GPUs the full-TP reduce is the hang of #37059: the other DP
group's ranks never enter it. The real-server proof on CPU (gloo) is in the engine
tier.
"""

import sys

import pytest
import torch

from sglang.srt.layers.dp_attention import (
    initialize_dp_attention,
    is_dp_attention_enabled,
)
from sglang.srt.runtime_context import get_parallel, reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.ci.ci_register import register_cpu_ci
from sglang.test.parallel_groups import parallel_scope, publish

register_cpu_ci(est_time=10, suite="base-a-test-cpu")

D_MODEL, HEADS = 32, 4


class RecordingGroup:
    """Stands in for a GroupCoordinator of ``world_size`` ranks seen from rank 0."""

    def __init__(self, name, world_size, calls):
        self.name = name
        self.world_size = world_size
        self.rank_in_group = 0
        self.calls = calls

    def all_reduce(self, tensor):
        self.calls.append(self.name)
        return tensor


def placement(tp, attn_dp):
    reset_context()
    args = ServerArgs(
        model_path="dummy",
        mm_attention_backend="sdpa",
        tp_size=tp,
        attn_dp_size=attn_dp,
    )
    publish(args, role="test")
    initialize_dp_attention(args)
    return args


def encoder_attention_output_groups(tp, attn_dp):
    """Build one audio encoder attention layer, run it once, return the reduce groups."""
    from sglang.srt.models.mimo_audio import AudioEncoderAttention

    placement(tp, attn_dp)
    parallel = get_parallel()
    calls = []
    groups = dict(
        tp_group=RecordingGroup("tp", parallel.tp_size, calls),
        attn_tp_group=RecordingGroup("attn_tp", parallel.attn_tp_size, calls),
    )
    with parallel_scope(**groups):
        torch.manual_seed(0)
        layer = AudioEncoderAttention(D_MODEL, HEADS).eval()
        n = 6
        x = torch.randn(n, D_MODEL)
        cu = torch.tensor([0, n], dtype=torch.int32)
        with torch.no_grad():
            out = layer(x, cu_seqlens=cu, max_seqlen=n)
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape == (n, D_MODEL)
    return calls


@pytest.fixture(autouse=True)
def clean_context():
    yield
    reset_context()


def test_output_projection_reduces_over_attention_tp_under_dp_attention():
    """TP 4, attention DP 2: the encoder's weights shard over attention TP (2 ranks),
    so its output must be reduced over those 2 ranks, not over all 4."""
    assert encoder_attention_output_groups(4, 2) == ["attn_tp"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
