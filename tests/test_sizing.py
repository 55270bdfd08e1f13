"""Memory per GPU from the model's config.json (sglang_mimo.sizing)."""

import copy
import json

import pytest
from recipe_helpers import R
from sglang_mimo import sizing as Z

MODELS = {
    # parameters of the whole checkpoint, and the relative tolerance of the count:
    # MiMo-V2.5 and V2.5-Pro from the released checkpoints' weight listings (FP8 block
    # scales included, which the count leaves out: 1/16384 of the FP8 weights, 0.006 %);
    # MiMo-V2-Flash, whose config is a reconstruction, from its model card (309 B).
    "XiaomiMiMo/MiMo-V2-Flash": (309e9, 0.02),
    "XiaomiMiMo/MiMo-V2.5": (310_775_040_000, 1e-4),
    "XiaomiMiMo/MiMo-V2.5-Pro": (1_023_244_718_976, 1e-4),
}
# Size of the released FP8 checkpoints (weight listings), GiB: binary units, since
# 310.8 G parameters of at least 1 byte each are more than 293.4e9 bytes.
RELEASED_GIB = {"XiaomiMiMo/MiMo-V2.5": 293.40, "XiaomiMiMo/MiMo-V2.5-Pro": 962.42}
MTP_LAYERS = 3  # model cards; the released totals match 3 (model.mtp.layers.0-2)


def cfg(model_id):
    return Z.load_config(Z.config_dir(model_id))


def layout(**kw):
    base = dict(tp=1, attn_dp=1, enable_dp_lm_head=False, dp_encoder=True, kv_bytes=2,
                swa_ratio=0.8, mtp_layers=MTP_LAYERS)  # fmt: skip
    return Z.Layout(**{**base, **kw})


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_shapes_give_the_checkpoints_totals(model_id):
    """The shapes of config.json, with the checkpoint's 3 MTP layers and encoders,
    count the checkpoint's parameters."""
    total, rel = MODELS[model_id]
    assert Z.parameters(cfg(model_id), MTP_LAYERS) == pytest.approx(total, rel=rel)


@pytest.mark.parametrize("model_id", sorted(RELEASED_GIB))
def test_fp8_bytes_give_the_released_checkpoint_size(model_id):
    """One rank holding everything, in the checkpoint's dtypes (FP8 blocks with their
    scales, BF16 for the ignored_layers o_proj, embeddings, norms, routers, encoders):
    the released checkpoint's size. Quantizing the o_proj too would miss by 0.5 %."""
    c = cfg(model_id)
    gib = Z.weight_bytes_per_rank(c, layout()) / Z.GIB
    assert gib == pytest.approx(RELEASED_GIB[model_id], rel=1e-3)
    c["quantization_config"].pop("ignored_layers")
    assert Z.weight_bytes_per_rank(c, layout()) / Z.GIB < 0.995 * gib


def test_the_released_vision_tower():
    """MiMo-V2.5's vision tower as SGLang builds it (models/mimo_vl.py): head dim 64
    (qk_channels' default: the file has none), GQA qkv_proj of (32 + 2 x 8) x 64 rows
    over 1280, proj 1280 x 2048, gated MLP 4608; patch embedding 1280 x 3 x 2 x 16 x 16
    (`in_chans`; SGLang reads `in_channels`, default 3); merger 5120 x 5120 + 4096 x
    5120."""
    vc = cfg("XiaomiMiMo/MiMo-V2.5")["vision_config"]
    assert "qk_channels" not in vc and vc["in_chans"] == 3
    block = (32 + 2 * 8) * 64 * 1280 + 1280 * 2048 + 3 * 1280 * 4608
    want = 28 * block + 1280 * 3 * 2 * 16 * 16 + 5120 * 5120 + 4096 * 5120
    assert Z._vision_params(vc) == want  # 728.1 M: the model card's 729 M


def test_the_released_audio_encoder():
    """MiMo-V2.5's audio encoder (models/mimo_audio.py build_audio_encoder): 20
    embeddings of 1280 x 1024 (speech_vocab_size is the string "1280"), 6 Qwen2 layers
    of 1024 (16 heads x 64; MLP 4096), projection 4096 -> 16384 -> 4096."""
    ac = cfg("XiaomiMiMo/MiMo-V2.5")["audio_config"]
    assert ac["speech_vocab_size"] == "1280" and ac["audio_channels"] == 20
    want = (
        20 * 1280 * 1024
        + 6 * (4 * 1024 * 1024 + 3 * 1024 * 4096)
        + 16384 * 4096 + 4096 * 16384
    )  # fmt: skip
    assert Z._audio_params(ac, None) == want  # 261.1 M: the card's 261 M


def test_ignored_layers_match_as_sglang_matches_them():
    c = cfg("XiaomiMiMo/MiMo-V2.5")
    assert Z.ignored(c, "model.layers.47.self_attn.o_proj")
    assert Z.ignored(c, "model.decoder.self_attn.o_proj")  # the MTP draft's layer
    assert not Z.ignored(c, "model.layers.47.self_attn.qkv_proj")
    assert not Z.ignored(c, "model.layers.4.mlp.experts")
    assert not Z.ignored(c, "model.layers.48.self_attn.o_proj")  # no such layer listed


def test_the_audio_encoder_is_whole_on_every_rank():
    """Vision shards over attention TP without --mm-enable-dp-encoder; the audio
    encoder (plain torch / transformers modules) does not."""
    c = cfg("XiaomiMiMo/MiMo-V2.5")
    split = Z.weight_bytes_per_rank(c, layout(tp=4, dp_encoder=False))
    whole = Z.weight_bytes_per_rank(c, layout(tp=4, dp_encoder=True))
    assert whole - split == pytest.approx(
        Z._vision_params(c["vision_config"]) * 2 * (1 - 1 / 4)
    )


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
    39 sliding-window layers + 3 MTP layers (the recipe's draft steps: the released
    config has no num_nextn_predict_layers) with 8 (2 per rank), 192 + 128 per head;
    the sliding-window pool at 0.8 of the full pool."""
    c = cfg("XiaomiMiMo/MiMo-V2.5")
    full = sum(1 for x in c["hybrid_layer_pattern"] if x == 0)
    assert full == 9
    swa = len(c["hybrid_layer_pattern"]) - full + MTP_LAYERS
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


def _data(name):
    """A recipe's YAML as data, to change (a loaded Recipe is frozen)."""
    return R.read_recipe_data(R.known_recipes()[name])


@pytest.mark.parametrize("name", sorted(R.known_recipes()))
def test_every_recipe_fits(name):
    r = R.load_recipe(name)
    s = Z.size_recipe(r, R.server_arg_items(r), Z.config_dir(r.model.id))
    assert s.fits and Z.problem(r, s) is None
    assert s.weights_gib < s.budget_gib


def test_pro_on_one_h200_node_does_not_fit():
    """The sizing rule is what picks two nodes: V2.5-Pro on one node of 8 (TP 8) fails."""
    r = _data("mimo-v2.5-pro-h200x16")
    r["hardware"]["nodes"] = 1
    r["server_args"] = [
        {"--tp-size": 8} if isinstance(a, dict) and "--tp-size" in a else a
        for a in r["server_args"]
    ]
    errs = R.semantic_errors(r, r["name"])
    (mem,) = [e for e in errs if e.startswith("memory:")]
    assert "GiB of weights per GPU" in mem


def test_too_long_a_context_is_named():
    r = _data("mimo-v2.5-gb10x4")
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
    c = cfg(r.model.id)
    c["num_hidden_layers"] = 24
    c["hybrid_layer_pattern"] = c["hybrid_layer_pattern"][:24]
    c["moe_layer_freq"] = c["moe_layer_freq"][:24]
    (tmp_path / "config.json").write_text(json.dumps(c))
    half = Z.size_recipe(r, R.server_arg_items(r), tmp_path)
    full = Z.size_recipe(r, R.server_arg_items(r), Z.config_dir(r.model.id))
    assert half.weights_gib < 0.6 * full.weights_gib


def test_unknown_quantization_is_refused():
    c = copy.deepcopy(cfg("XiaomiMiMo/MiMo-V2-Flash"))
    c["quantization_config"] = {"quant_method": "awq"}
    with pytest.raises(ValueError, match="awq"):
        Z.weight_bytes_per_rank(c, layout())
