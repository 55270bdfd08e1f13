"""Memory per GPU from the model's config.json (sglang_mimo.sizing)."""

import copy
import json

import pytest
from recipe_helpers import R
from sglang_mimo import sizing as Z

MODELS = {
    # model card totals: parameters, in units of 1e9
    "XiaomiMiMo/MiMo-V2-Flash": 309,
    "XiaomiMiMo/MiMo-V2.5": 310,
    "XiaomiMiMo/MiMo-V2.5-Pro": 1020,
}


def cfg(model_id):
    return Z.load_config(Z.config_dir(model_id))


def layout(**kw):
    base = dict(tp=1, attn_dp=1, enable_dp_lm_head=False, dp_encoder=True, kv_bytes=2,
                swa_ratio=0.8, mtp_layers=3)  # fmt: skip
    return Z.Layout(**{**base, **kw})


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_shapes_give_the_model_cards_totals(model_id):
    """One rank holding everything, counted in bytes at 2 bytes per parameter (BF16)
    for every tensor: the parameter count of the whole checkpoint."""
    c = copy.deepcopy(cfg(model_id))
    c.pop("quantization_config")
    params = Z.weight_bytes_per_rank(c, layout()) / 2 / 1e9
    assert params == pytest.approx(MODELS[model_id], rel=0.02)


def test_fp8_halves_the_linear_weights():
    c = cfg("XiaomiMiMo/MiMo-V2-Flash")
    bf16 = copy.deepcopy(c)
    bf16.pop("quantization_config")
    fp8 = Z.weight_bytes_per_rank(c, layout())
    assert 0.5 < fp8 / Z.weight_bytes_per_rank(bf16, layout()) < 0.52


def test_experts_split_over_tp_and_attention_over_attention_tp():
    c = cfg("XiaomiMiMo/MiMo-V2.5")
    w8 = Z.weight_bytes_per_rank(c, layout(tp=8, attn_dp=2))
    w16 = Z.weight_bytes_per_rank(c, layout(tp=16, attn_dp=4))  # same attention TP 4
    w8_attn8 = Z.weight_bytes_per_rank(c, layout(tp=8, attn_dp=1))
    assert w16 < w8 * 0.55  # experts and dense halve; attention stays
    assert w8_attn8 < w8  # attention split over 8 instead of 4


def test_kv_bytes_per_token_from_the_head_dims():
    """MiMo-V2.5 at attention TP 4, BF16 KV: 9 full layers with 4 KV heads (1 per rank),
    39 sliding-window layers + 3 MTP layers with 8 (2 per rank), 192 + 128 per head;
    the sliding-window pool at 0.8 of the full pool."""
    c = cfg("XiaomiMiMo/MiMo-V2.5")
    full = sum(1 for x in c["hybrid_layer_pattern"] if x == 0)
    swa = len(c["hybrid_layer_pattern"]) - full + c["num_nextn_predict_layers"]
    per_head = c["head_dim"] + c["v_head_dim"]
    want = 2 * (full * 1 * per_head + 0.8 * swa * 2 * per_head)
    assert Z.kv_bytes_per_token(c, layout(tp=8, attn_dp=2)) == int(want)
    # FP8 KV: half; a narrower swa pool: less.
    assert Z.kv_bytes_per_token(c, layout(tp=8, attn_dp=2, kv_bytes=1)) == int(want / 2)
    assert Z.kv_bytes_per_token(c, layout(tp=8, attn_dp=2, swa_ratio=0.3)) < want


def test_kv_heads_are_replicated_below_one_per_rank():
    c = cfg("XiaomiMiMo/MiMo-V2-Flash")  # 4 full-attention KV heads
    at4 = Z.kv_bytes_per_token(c, layout(tp=4, mtp_layers=0, swa_ratio=0.0))
    at8 = Z.kv_bytes_per_token(c, layout(tp=8, mtp_layers=0, swa_ratio=0.0))
    assert at4 == at8  # one head per rank either way


@pytest.mark.parametrize("name", sorted(R.known_recipes()))
def test_every_recipe_fits(name):
    r = R.load_recipe(name)
    s = Z.size_recipe(r, R.server_arg_items(r), Z.config_dir(r["model"]["id"]))
    assert s.fits and Z.problem(r, s) is None
    assert s.weights_gib < s.budget_gib


def test_pro_on_one_h200_node_does_not_fit():
    """The sizing rule is what picks two nodes: V2.5-Pro on one node of 8 (TP 8) fails."""
    r = copy.deepcopy(R.load_recipe("mimo-v2.5-pro-h200x16"))
    r["hardware"]["nodes"] = 1
    r["server_args"] = [
        {"--tp-size": 8} if isinstance(a, dict) and "--tp-size" in a else a
        for a in r["server_args"]
    ]
    errs = R.semantic_errors(r, r["name"])
    (mem,) = [e for e in errs if e.startswith("memory:")]
    assert "GiB of weights per GPU" in mem


def test_too_long_a_context_is_named():
    r = copy.deepcopy(R.load_recipe("mimo-v2.5-gb10x4"))
    r["server_args"] = [
        {"--context-length": 1048576} if isinstance(a, dict) and "--context-length" in a
        else a for a in r["server_args"]
    ]  # fmt: skip
    errs = R.semantic_errors(r, r["name"])
    assert any(
        "lower --max-running-requests or --context-length" in e for e in errs
    ), errs


def test_a_local_checkpoint_config_is_used(tmp_path):
    r = R.load_recipe("mimo-v2-flash-h200x8")
    c = cfg(r["model"]["id"])
    c["num_hidden_layers"] = 24
    c["hybrid_layer_pattern"] = c["hybrid_layer_pattern"][:24]
    c["moe_layer_freq"] = c["moe_layer_freq"][:24]
    (tmp_path / "config.json").write_text(json.dumps(c))
    half = Z.size_recipe(r, R.server_arg_items(r), tmp_path)
    full = Z.size_recipe(r, R.server_arg_items(r), Z.config_dir(r["model"]["id"]))
    assert half.weights_gib < 0.6 * full.weights_gib


def test_unknown_quantization_is_refused():
    c = copy.deepcopy(cfg("XiaomiMiMo/MiMo-V2-Flash"))
    c["quantization_config"] = {"quant_method": "awq"}
    with pytest.raises(ValueError, match="awq"):
        Z.weight_bytes_per_rank(c, layout())
