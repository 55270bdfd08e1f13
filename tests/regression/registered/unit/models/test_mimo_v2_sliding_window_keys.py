"""How many keys a query of MiMo-V2's sliding-window layers sees.

MiMo's ``sliding_window_size`` (128 in the released configs) counts the keys a
query attends to, its own included: the model's reference (transformers'
``MiMoV2FlashForCausalLM``) keeps key ``k`` for query ``q`` when
``0 <= q - k < sliding_window_size``. SGLang's window (``RadixAttention``
``sliding_window_size``) does not count the query's own key: the torch_native
backend keeps ``q - window <= k <= q``, FA3 gets ``window_size=(window, 0)``.

The real ``MiMoV2DecoderLayer`` (a sliding-window layer of the released pattern)
and ``MiMoV2MTPLayer`` are built with a small config; their attention module is
replaced by a recorder of the arguments the layer passes it (building the real
one needs the rotary kernels of a GPU), and the recorded window goes through the
torch_native backend's own sliding-window mask. Every query past the first
``sliding_window_size`` must see exactly ``sliding_window_size`` keys.
"""

import sys

import pytest
import torch
from transformers import PretrainedConfig

from sglang.srt.layers.attention.torch_native_backend import TorchNativeAttnBackend
from sglang.srt.layers.layer_boundary.factories import layer_stack
from sglang.srt.models import mimo_v2, mimo_v2_nextn
from sglang.srt.runtime_context import reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.ci.ci_register import register_cpu_ci
from sglang.test.parallel_groups import publish

register_cpu_ci(est_time=5, suite="base-a-test-cpu")

WINDOW = 8
SEQ_LEN = 3 * WINDOW


def small_config():
    # MiMo-V2.5's layer kinds (a full layer, then sliding-window ones) and
    # grouped-query ratios, sizes shrunk.
    return PretrainedConfig(
        hidden_size=32,
        intermediate_size=64,
        hidden_act="silu",
        layernorm_epsilon=1e-5,
        num_attention_heads=16,
        num_key_value_heads=1,
        head_dim=16,
        v_head_dim=8,
        swa_num_attention_heads=16,
        swa_num_key_value_heads=2,
        swa_head_dim=16,
        swa_v_head_dim=8,
        sliding_window_size=WINDOW,
        hybrid_layer_pattern=[0, 1, 1],
        moe_layer_freq=[0, 0, 0],
        attention_bias=False,
        add_swa_attention_sink_bias=True,
        add_full_attention_sink_bias=False,
        attention_value_scale=0.707,
        rope_theta=5000000,
        swa_rope_theta=10000,
        partial_rotary_factor=0.334,
        max_position_embeddings=64,
    )


class AttentionArgs(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs


@pytest.fixture(autouse=True)
def context(monkeypatch):
    reset_context()
    publish(ServerArgs(model_path="dummy"), role="t")
    monkeypatch.setattr(mimo_v2, "MiMoV2Attention", AttentionArgs)
    monkeypatch.setattr(mimo_v2_nextn, "MiMoV2Attention", AttentionArgs)
    yield
    reset_context()


def keys_per_query(window):
    mask = TorchNativeAttnBackend._make_sliding_window_mask(
        q_len=SEQ_LEN,
        kv_len=SEQ_LEN,
        sliding_window_size=window,
        device=torch.device("cpu"),
    )
    return mask.sum(dim=-1).tolist()


def build(kind):
    config = small_config()
    with layer_stack():
        if kind == "decoder":
            return mimo_v2.MiMoV2DecoderLayer(
                config, layer_id=1, prefix="model.layers.1"
            )
        return mimo_v2_nextn.MiMoV2MTPLayer(config, layer_id=0, prefix="model.mtp.0")


@pytest.mark.parametrize("kind", ["decoder", "mtp"])
def test_sliding_window_layer_attends_to_sliding_window_keys(kind):
    window = build(kind).self_attn.kwargs["sliding_window_size"]
    got = keys_per_query(window)
    # the reference: key k is kept for query q when 0 <= q - k < WINDOW
    want = [min(q + 1, WINDOW) for q in range(SEQ_LEN)]
    assert got == want, (
        f"layer window {window}: queries see {max(got)} keys, "
        f"the model's sliding_window_size is {WINDOW}"
    )


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
