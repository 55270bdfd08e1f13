"""MiMo audio encoder attention: what 0006 must not change (placement; no DP attention).

Helpers and fixtures come from 0006's registered test file.
"""

from test_mimo_audio_attn_tp_reduce import (  # noqa: F401  (fixtures)
    clean_context,
    encoder_attention_output_groups,
    placement,
)

from sglang.srt.layers.dp_attention import is_dp_attention_enabled
from sglang.srt.runtime_context import get_parallel


def test_placement_is_attention_dp():
    placement(4, 2)
    parallel = get_parallel()
    assert (parallel.tp_size, parallel.attn_tp_size, parallel.attn_dp_size) == (4, 2, 2)
    assert is_dp_attention_enabled()


def test_without_dp_attention_the_reduce_is_unchanged():
    """TP 2 without attention DP: attention TP is TP; one reduce, as before."""
    calls = encoder_attention_output_groups(2, 1)
    assert len(calls) == 1 and calls[0] in ("tp", "attn_tp")
