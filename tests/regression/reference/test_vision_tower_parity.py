"""SGLang's MiMo-V2.5 vision tower against the independent reference.

A tiny vision tower that keeps the released architecture (grouped-query attention at
the released ratio, full-attention blocks at the released period, row-ordered then
column-ordered windowed blocks, learned sinks on every windowed block, the merger)
and shrinks only sizes; the same weights (released names) go into SGLang's
``MiMoVisionTransformer`` through the model's own loading rules and into
``mimo_v2_reference.vision_tower``. Images of several sizes, one that crosses the
window in both token orders, and a video (every frame its own sequence), on the
multimodal backend a CPU engine uses (``sdpa``).

Tolerance: float32, max abs error <= 1e-4 of the output's max abs value and cosine
>= 0.999999 per case; bfloat16 (SGLang in bf16 against the float64 reference of the
same bf16 weights): max abs error at most twice the reference's own error when it runs
in bf16 (bf16 rounding through ten random blocks is large: about 0.2 of the output's
max abs value). The measured errors are printed (``-s``).
"""

import pytest
import torch

from mimo_v2_reference import vision_tower, vision_weights
from sglang.srt.runtime_context import reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.parallel_groups import publish

SINKS_PATCH = "0009-mimo-vision-sinks-as-key0-bias.patch"

# MiMo-V2.5's vision_config with sizes shrunk: 32/8 heads -> 8/2 (the same 4:1 GQA,
# num_query_groups 4), head dim 64 -> 16 with hidden != heads * head_dim as released
# (1280 vs 2048 -> 48 vs 128), depth 28 -> 10 keeping the period of 9 (full blocks
# [0, 9, 18, 27] -> [0, 9]; four row-ordered then four column-ordered windowed blocks),
# window 64 -> 8 tokens, patch 16 -> 4.
TINY_VISION = {
    "depth": 10,
    "fullatt_block_indexes": [0, 9],
    "hidden_act": "silu",
    "hidden_size": 48,
    "in_chans": 3,
    "intermediate_size": 96,
    "num_heads": 8,
    "num_key_value_heads": 2,
    "num_query_groups": 4,
    "qk_channels": 16,
    "kv_channels": 16,
    "out_hidden_size": 40,
    "patch_size": 4,
    "spatial_merge_size": 2,
    "spatial_patch_size": 4,
    "temporal_patch_size": 2,
    "tokens_per_second": 2,
    "use_sink": True,
    "visual_token_window_size": 8,
    "vit_window_attn_types": [-1, 0, 0, 0, 0, 1, 1, 1, 1, -1],
    "window_size": 16,
}

# (grid_t, grid_h, grid_w) of each item in one call; a list of several is one batch.
CASES = {
    "image 4x4 (16 tokens: rows past the window miss key 0)": [(1, 4, 4)],
    "image 8x12 (96 tokens, windows crossed in row and column order)": [(1, 8, 12)],
    "image 12x6 (tall: the column order differs most)": [(1, 12, 6)],
    "video 3 frames of 6x8": [(3, 6, 8)],
    "batch: image 2x2 + image 8x12 + video 2 frames of 4x6": [
        (1, 2, 2),
        (1, 8, 12),
        (2, 4, 6),
    ],
}


@pytest.fixture(scope="module", autouse=True)
def runtime():
    reset_context()
    publish(ServerArgs(model_path="dummy", mm_attention_backend="sdpa"), role="test")
    yield
    reset_context()


def sglang_tower(weights, dtype):
    """SGLang's vision tower, weights loaded as MiMoV2ForCausalLM.load_weights does
    for ``visual.*`` (``attn.qkv`` -> ``attn.qkv_proj``; gate/up stacked)."""
    from sglang.srt.models.mimo_vl import MiMoVisionTransformer, MiMoVLVisionConfig

    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        tower = MiMoVisionTransformer(
            MiMoVLVisionConfig.from_dict(dict(TINY_VISION)), prefix="visual"
        )
    finally:
        torch.set_default_dtype(default)
    params = dict(tower.named_parameters())
    for name, tensor in weights.items():
        name = name[len("visual.") :].replace("attn.qkv.", "attn.qkv_proj.")
        shard = None
        for part, index in (("gate_proj", 0), ("up_proj", 1)):
            if part in name:
                name, shard = name.replace(part, "gate_up_proj"), index
                break
        param = params[name]
        loader = getattr(param, "weight_loader", None)
        if shard is not None:
            loader(param, tensor.to(param.dtype), shard)
        elif loader is not None:
            loader(param, tensor.to(param.dtype))
        else:
            param.data.copy_(tensor)
        if name.endswith("patch_embed.proj.weight"):
            tower.patch_embed.sync_proj_weight_linear_format()
    return tower.eval()


def pixels(grids, seed):
    patch = 3 * TINY_VISION["temporal_patch_size"] * TINY_VISION["patch_size"] ** 2
    n = sum(t * h * w for t, h, w in grids)
    return torch.randn(n, patch, generator=torch.Generator().manual_seed(seed))


def compare(dtype, ref_dtype, grids):
    weights = vision_weights(TINY_VISION, seed=1, dtype=dtype)
    x = pixels(grids, seed=2).to(dtype)
    ref = vision_tower(weights, TINY_VISION, x, grids, dtype=ref_dtype)
    with torch.no_grad():
        out = sglang_tower(weights, dtype)(x, torch.tensor(grids))
    out, ref = out.double(), ref.double()
    err = (out - ref).abs().max().item() / ref.abs().max().item()
    cos = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), 0).item()
    return err, cos


@pytest.mark.fixes(SINKS_PATCH)
@pytest.mark.parametrize("case", list(CASES))
def test_vision_tower_float32(case):
    err, cos = compare(torch.float32, torch.float32, CASES[case])
    print(
        f"vision tower fp32 sdpa [{case}]: max abs err {err:.2e} (rel), cos {cos:.8f}"
    )
    assert err <= 1e-4 and cos >= 0.999999, (err, cos)


@pytest.mark.fixes(SINKS_PATCH)
@pytest.mark.parametrize("case", list(CASES)[1:4])
def test_vision_tower_bfloat16(case):
    grids = CASES[case]
    err, cos = compare(torch.bfloat16, torch.float64, grids)
    # bf16 rounding alone: the reference itself in bf16 against it in float64
    weights = vision_weights(TINY_VISION, seed=1, dtype=torch.bfloat16)
    x = pixels(grids, seed=2).bfloat16()
    ref = vision_tower(weights, TINY_VISION, x, grids, dtype=torch.float64)
    ref16 = vision_tower(weights, TINY_VISION, x, grids, dtype=torch.bfloat16).double()
    floor = (ref16 - ref).abs().max().item() / ref.abs().max().item()
    print(
        f"vision tower bf16 sdpa [{case}]: max abs err {err:.2e} (rel), cos {cos:.6f};"
        f" the reference's own bf16 error {floor:.2e}"
    )
    assert err <= 2 * floor, (err, floor)
