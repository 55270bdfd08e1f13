"""An independent float32 reference of MiMo-V2.5's vision tower.

Written here from the semantics of the released checkpoint's ``modeling_mimo_v2.py``
(``MiMoVisionTransformer`` and its blocks), not from SGLang's code, so that a
comparison against SGLang's own modules says whether SGLang computes what the model
computes. Plain torch, float32 (or float64), one sequence at a time, explicit masks:
slow and obvious on purpose.

What the released model does, in the terms used below:

- ``patch_embed``: a Conv3d with kernel = stride = (temporal_patch, patch, patch) and
  no bias over each flattened patch, i.e. one matrix product per patch.
- Rotary position: 2-D (row, column of the patch), ``head_dim // 2`` dimensions of
  frequencies ``theta ** (-2i / (head_dim // 2))``, theta 10000, row frequencies then
  column frequencies, repeated twice (``rotate_half`` form).
- Patches come in merge-unit order (2 x 2 patches that the merger joins are adjacent).
  ``vit_window_attn_types`` per block: -1 full attention, 0 windowed in row order,
  1 windowed in column order: tokens are re-ordered by merge unit into column-major
  order before a run of type-1 blocks (with the column order's rotary) and back after.
- Sequences: every frame (``grid_t`` of them per item) is its own sequence.
- Attention: grouped-query (``num_heads`` query heads over ``num_key_value_heads``),
  scale ``head_dim ** -0.5``. Blocks not in ``fullatt_block_indexes`` see only keys
  within ``visual_token_window_size`` of the query (``|i - j| <= w``, in the block's
  token order) and, with ``use_sink``, have a learned logit bias ``sinks[h]`` added to
  the logit of key 0 of each sequence (after the band, so only queries within the
  window of key 0 feel it). Full-attention blocks have no sinks.
- Block: RMSNorm (eps 1e-6) -> attention (qkv and proj with bias) -> residual;
  RMSNorm -> SwiGLU MLP (gate, up, down with bias) -> residual.
- Merger: LayerNorm without bias (eps 1e-6) over each token, the 4 tokens of a merge
  unit concatenated, Linear -> GELU -> Linear, no biases.

Weights use the released checkpoint's names (``visual.blocks.N.attn.qkv.weight``,
``...attn.sinks``, ``...mlp.gate_proj.weight``, ``visual.merger.mlp.0.weight``, ...).
"""

import torch
import torch.nn.functional as F


def rms_norm(x, weight, eps=1e-6):
    x32 = x.to(torch.float64) if x.dtype == torch.float64 else x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return (y * weight).to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def merge_unit_positions(t, h, w, merge):
    """(row, column) of every patch of one item, in merge-unit order."""
    rows = (
        torch.arange(h).view(h // merge, merge, 1, 1).expand(-1, -1, w // merge, merge)
    )
    cols = (
        torch.arange(w).view(1, 1, w // merge, merge).expand(h // merge, merge, -1, -1)
    )
    rows = rows.permute(0, 2, 1, 3).reshape(-1)
    cols = cols.permute(0, 2, 1, 3).reshape(-1)
    return torch.stack([rows, cols], -1).repeat(t, 1)


def column_order(grid_thw, merge):
    """Token permutation to column-major order of merge units, per frame."""
    unit = merge * merge
    order, offset = [], 0
    for t, h, w in grid_thw:
        units = torch.arange(t * (h // merge) * (w // merge)).view(
            t, h // merge, w // merge
        )
        units = units.transpose(1, 2).reshape(-1) + offset
        offset += t * (h // merge) * (w // merge)
        order.append((units[:, None] * unit + torch.arange(unit)).reshape(-1))
    return torch.cat(order)


def attention(x, p, cfg, seqlens, rope, windowed, dtype):
    heads, kv_heads = cfg["num_heads"], cfg["num_key_value_heads"]
    d = cfg.get("qk_channels", 64)
    n = x.shape[0]
    qkv = x @ p["qkv.weight"].T + p["qkv.bias"]
    q, k, v = qkv.split([heads * d, kv_heads * d, kv_heads * d], -1)
    q, k, v = q.view(n, heads, d), k.view(n, kv_heads, d), v.view(n, kv_heads, d)
    cos, sin = rope
    q = q * cos[:, None] + rotate_half(q) * sin[:, None]
    k = k * cos[:, None] + rotate_half(k) * sin[:, None]
    group = heads // kv_heads
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    out, start = torch.empty_like(q), 0
    window = cfg["visual_token_window_size"]
    for length in seqlens:
        sl = slice(start, start + length)
        logits = torch.einsum("ihd,jhd->hij", q[sl], k[sl]) * d**-0.5
        if windowed:
            i = torch.arange(length)
            band = (i[:, None] - i[None, :]).abs() <= window
            logits = logits.masked_fill(~band, float("-inf"))
            if "sinks" in p:
                logits[:, :, 0] = logits[:, :, 0] + p["sinks"].to(dtype)[:, None]
        out[sl] = torch.einsum("hij,jhd->ihd", logits.softmax(-1), v[sl])
        start += length
    return out.reshape(n, heads * d) @ p["proj.weight"].T + p["proj.bias"]


def vision_tower(weights, cfg, pixel_values, grid_thw, dtype=torch.float32):
    """MiMo-V2.5's vision tower: [patches, C*T*P*P] pixels -> [tokens / 4, out]."""
    w = {
        k[len("visual.") :]: v.to(dtype)
        for k, v in weights.items()
        if k.startswith("visual.")
    }
    merge = cfg["spatial_merge_size"]
    d = cfg.get("qk_channels", 64)
    hidden = cfg["hidden_size"]
    x = pixel_values.to(dtype) @ w["patch_embed.proj.weight"].reshape(hidden, -1).T

    rdim = d // 2
    inv_freq = 1.0 / (10000 ** (torch.arange(0, rdim, 2, dtype=dtype) / rdim))
    pos = torch.cat([merge_unit_positions(t, h, ww, merge) for t, h, ww in grid_thw])
    freqs = (pos[..., None].to(dtype) * inv_freq).flatten(1)
    emb = torch.cat([freqs, freqs], -1)
    col = column_order(grid_thw, merge)
    rope_row = (emb.cos(), emb.sin())
    rope_col = (emb[col].cos(), emb[col].sin())
    seqlens = [h * ww for t, h, ww in grid_thw for _ in range(t)]

    types = cfg["vit_window_attn_types"]
    full = set(cfg["fullatt_block_indexes"])
    in_column_order = False
    for i in range(cfg["depth"]):
        if (types[i] == 1) != in_column_order:
            x = x[col] if types[i] == 1 else x[torch.argsort(col)]
            in_column_order = types[i] == 1
        p = {
            k[len(f"blocks.{i}.") :]: v
            for k, v in w.items()
            if k.startswith(f"blocks.{i}.")
        }
        a = {k[len("attn.") :]: v for k, v in p.items() if k.startswith("attn.")}
        rope = rope_col if in_column_order else rope_row
        x = x + attention(
            rms_norm(x, p["norm1.weight"]), a, cfg, seqlens, rope, i not in full, dtype
        )
        h = rms_norm(x, p["norm2.weight"])
        gate = h @ p["mlp.gate_proj.weight"].T + p["mlp.gate_proj.bias"]
        up = h @ p["mlp.up_proj.weight"].T + p["mlp.up_proj.bias"]
        x = (
            x
            + (F.silu(gate) * up) @ p["mlp.down_proj.weight"].T
            + p["mlp.down_proj.bias"]
        )

    x = F.layer_norm(x, (hidden,), w["merger.ln_q.weight"], None, eps=1e-6)
    x = x.reshape(-1, hidden * merge * merge)
    x = F.gelu(x @ w["merger.mlp.0.weight"].T) @ w["merger.mlp.2.weight"].T
    return x


def vision_weights(cfg, seed=0, dtype=torch.float32):
    """Random weights for a vision tower of ``cfg``, with the released checkpoint's
    names, shapes, which blocks carry sinks, and bfloat16 values."""
    gen = torch.Generator().manual_seed(seed)
    hidden, inter = cfg["hidden_size"], cfg["intermediate_size"]
    heads, kv_heads = cfg["num_heads"], cfg["num_key_value_heads"]
    d = cfg.get("qk_channels", 64)
    merge_dim = hidden * cfg["spatial_merge_size"] ** 2
    ps, tps = cfg["patch_size"], cfg["temporal_patch_size"]

    def rnd(*shape, std):
        # bfloat16 values, as the released weights are (SGLang keeps sinks in bf16)
        return (torch.randn(*shape, generator=gen) * std).bfloat16().to(dtype)

    w = {"visual.patch_embed.proj.weight": rnd(hidden, 3, tps, ps, ps, std=0.1)}
    for i in range(cfg["depth"]):
        b = f"visual.blocks.{i}."
        w[b + "norm1.weight"] = 1 + rnd(hidden, std=0.1)
        w[b + "norm2.weight"] = 1 + rnd(hidden, std=0.1)
        w[b + "attn.qkv.weight"] = rnd((heads + 2 * kv_heads) * d, hidden, std=0.3)
        w[b + "attn.qkv.bias"] = rnd((heads + 2 * kv_heads) * d, std=0.1)
        w[b + "attn.proj.weight"] = rnd(hidden, heads * d, std=0.1)
        w[b + "attn.proj.bias"] = rnd(hidden, std=0.1)
        if cfg.get("use_sink") and i not in cfg["fullatt_block_indexes"]:
            w[b + "attn.sinks"] = rnd(heads, std=2.0)
        for name, shape in (
            ("gate_proj", (inter, hidden)),
            ("up_proj", (inter, hidden)),
            ("down_proj", (hidden, inter)),
        ):
            w[b + f"mlp.{name}.weight"] = rnd(*shape, std=0.15)
            w[b + f"mlp.{name}.bias"] = rnd(shape[0], std=0.1)
    w["visual.merger.ln_q.weight"] = 1 + rnd(hidden, std=0.1)
    w["visual.merger.mlp.0.weight"] = rnd(merge_dim, merge_dim, std=0.1)
    w["visual.merger.mlp.2.weight"] = rnd(cfg["out_hidden_size"], merge_dim, std=0.1)
    return w


def audio_input_stack(weights, cfg, codes, dtype=torch.float32, eps=1e-6):
    """MiMo-V2.5's audio input stack: RVQ codes [frames, channels] -> [groups, out].

    As released (``audio_config``): the codes of a clip are padded to a multiple of
    ``group_size`` frames by repeating the last frame; each frame's
    ``audio_channels`` code embeddings (``speech_embeddings.N``) are summed; each
    group of ``group_size`` frames goes through ``input_local_layers`` Qwen2-style
    layers (RMSNorm, q/k/v with bias and o without, rotary over the frame's
    position 0..group_size-1 with ``rope_theta``, full attention within the group
    when ``input_full_attention``, SwiGLU MLP), then the final RMSNorm when
    ``add_post_norm``; the group's frames are concatenated and projected by
    ``projection_layers`` = 2 linear layers with GELU between, no biases.
    Weights under the released names (``audio_encoder.input_local_transformer.*``,
    ``audio_encoder.projection.mlp.{0,2}.weight``, ``speech_embeddings.N.weight``).
    """
    w = {k.removeprefix("audio_encoder."): v.to(dtype) for k, v in weights.items()}
    group, channels = cfg["group_size"], cfg["audio_channels"]
    dim, heads = cfg["input_local_dim"], cfg["input_local_attn_heads"]
    head_dim = cfg["input_local_head_dim"]
    pad = (-codes.shape[0]) % group
    if pad:
        codes = torch.cat([codes, codes[-1:].expand(pad, -1)])
    x = sum(
        w[f"speech_embeddings.{c}.weight"][codes[:, c].long()] for c in range(channels)
    )
    x = x.view(-1, group, dim)

    rot = int(head_dim * cfg.get("partial_rotary_factor", 1.0))
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, rot, 2, dtype=dtype) / rot))
    freqs = torch.arange(group, dtype=dtype)[:, None] * inv_freq
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]  # [group, 1, rot]

    def rope(t):
        r, rest = t[..., :rot], t[..., rot:]
        return torch.cat([r * cos + rotate_half(r) * sin, rest], -1)

    for i in range(cfg["input_local_layers"]):
        p = f"input_local_transformer.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q, k, v = (
            (
                h @ w[p + f"self_attn.{n}_proj.weight"].T
                + w[p + f"self_attn.{n}_proj.bias"]
            ).view(-1, group, heads, head_dim)
            for n in "qkv"
        )
        q, k = rope(q), rope(k)
        logits = torch.einsum("bihd,bjhd->bhij", q, k) * head_dim**-0.5
        if not cfg.get("input_full_attention", True):
            causal = torch.ones(group, group, dtype=torch.bool).tril()
            logits = logits.masked_fill(~causal, float("-inf"))
        a = torch.einsum("bhij,bjhd->bihd", logits.softmax(-1), v).reshape(
            -1, group, heads * head_dim
        )
        x = x + a @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    if cfg.get("add_post_norm", False):
        x = rms_norm(x, w["input_local_transformer.norm.weight"], eps)
    x = x.reshape(x.shape[0], group * dim)
    return F.gelu(x @ w["projection.mlp.0.weight"].T) @ w["projection.mlp.2.weight"].T


def audio_input_weights(cfg, seed=0, dtype=torch.float32):
    """Random bf16-valued weights of the audio input stack under the released names."""
    gen = torch.Generator().manual_seed(seed)
    dim, inter = cfg["input_local_dim"], cfg["input_local_intermediate_size"]
    hd = cfg["input_local_attn_heads"] * cfg["input_local_head_dim"]
    group, out = cfg["group_size"], cfg["out_hidden_size"]

    def rnd(*shape, std):
        return (torch.randn(*shape, generator=gen) * std).bfloat16().to(dtype)

    vocab = int(cfg["speech_vocab_size"])
    w = {
        f"speech_embeddings.{c}.weight": rnd(vocab, dim, std=0.3)
        for c in range(cfg["audio_channels"])
    }
    a = "audio_encoder.input_local_transformer."
    for i in range(cfg["input_local_layers"]):
        p = f"{a}layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + rnd(dim, std=0.1)
        w[p + "post_attention_layernorm.weight"] = 1 + rnd(dim, std=0.1)
        for n in "qkv":
            w[p + f"self_attn.{n}_proj.weight"] = rnd(hd, dim, std=0.15)
            w[p + f"self_attn.{n}_proj.bias"] = rnd(hd, std=0.1)
        w[p + "self_attn.o_proj.weight"] = rnd(dim, hd, std=0.1)
        w[p + "mlp.gate_proj.weight"] = rnd(inter, dim, std=0.1)
        w[p + "mlp.up_proj.weight"] = rnd(inter, dim, std=0.1)
        w[p + "mlp.down_proj.weight"] = rnd(dim, inter, std=0.1)
    w[a + "norm.weight"] = 1 + rnd(dim, std=0.1)
    w["audio_encoder.projection.mlp.0.weight"] = rnd(
        4 * group * dim, group * dim, std=0.1
    )
    w["audio_encoder.projection.mlp.2.weight"] = rnd(out, 4 * group * dim, std=0.05)
    return w


# ----------------------------------------------------------------------------- text


def text_model(weights, cfg, dtype=torch.float32):
    """MiMo's text model (decoder layers, hybrid full / sliding-window attention, MoE)
    as transformers' own ``MiMoV2FlashForCausalLM`` computes it (eager attention, the
    sinks as an extra softmax column dropped before P.V), built from the checkpoint's
    ``config.json`` (``cfg``) and loaded with its weights (``weights``, released names).

    That implementation, not one written here, is the text model's reference: it is
    maintained in transformers by its authors with Xiaomi's, independent of SGLang, and
    it is the released semantics the text sinks follow (the vision tower above is the
    one part whose semantics only the checkpoint's remote code had). The checkpoint's
    names map onto it as follows: a fused ``qkv_proj`` (``attention_projection_layout``
    ``fused_qkv``: one ``[q; k; v]`` block per key-value head of the full-attention
    layers) is split into ``q_proj``/``k_proj``/``v_proj``; the per-expert
    ``mlp.experts.E.{gate,up,down}_proj`` are stacked into ``gate_up_proj`` /
    ``down_proj``; ``attention_sink_bias`` is ``sinks``. Layers without sinks get
    ``sinks = None``. Loading is strict: an unmapped or missing weight raises."""
    from transformers.models.mimo_v2_flash import (
        MiMoV2FlashConfig,
        MiMoV2FlashForCausalLM,
    )

    pattern = cfg["hybrid_layer_pattern"]
    # transformers' MiMoV2FlashAttention assumes what the releases have: as many query
    # heads in both layer types and twice the key-value heads in the windowed ones.
    if cfg["swa_num_attention_heads"] != cfg["num_attention_heads"] or cfg[
        "swa_num_key_value_heads"
    ] != 2 * cfg["num_key_value_heads"]:
        raise ValueError("transformers' MiMo-V2-Flash cannot express these head counts")
    for key in ("head_dim", "v_head_dim"):
        if cfg[f"swa_{key}"] != cfg[key]:
            raise ValueError(f"swa_{key} != {key}: not expressible in transformers")
    rotary = cfg.get("partial_rotary_factor", 1.0)
    config = MiMoV2FlashConfig(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        moe_intermediate_size=cfg["moe_intermediate_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"],
        head_dim=cfg["head_dim"],
        v_head_dim=cfg["v_head_dim"],
        sliding_window=cfg["sliding_window"],
        layer_types=[
            "sliding_attention" if p else "full_attention" for p in pattern
        ],
        mlp_layer_types=["sparse" if f else "dense" for f in cfg["moe_layer_freq"]],
        n_routed_experts=cfg["n_routed_experts"],
        num_experts_per_tok=cfg["num_experts_per_tok"],
        n_group=cfg["n_group"],
        topk_group=cfg["topk_group"],
        norm_topk_prob=cfg["norm_topk_prob"],
        routed_scaling_factor=cfg.get("routed_scaling_factor") or 1.0,
        rms_norm_eps=cfg["layernorm_epsilon"],
        hidden_act=cfg["hidden_act"],
        attention_bias=cfg.get("attention_bias", False),
        attention_value_scale=cfg.get("attention_value_scale"),
        max_position_embeddings=cfg["max_position_embeddings"],
        tie_word_embeddings=cfg.get("tie_word_embeddings", False),
        rope_parameters={
            "full_attention": {
                "rope_type": "default",
                "rope_theta": cfg["rope_theta"],
                "partial_rotary_factor": rotary,
            },
            "sliding_attention": {
                "rope_type": "default",
                "rope_theta": cfg["swa_rope_theta"],
                "partial_rotary_factor": rotary,
            },
        },
    )
    config._attn_implementation = "eager"
    model = MiMoV2FlashForCausalLM(config).eval()

    state = {}
    fused = cfg.get("attention_projection_layout") == "fused_qkv"
    blocks = cfg["num_key_value_heads"]
    for name, tensor in weights.items():
        if not name.startswith(("model.", "lm_head.")):
            continue
        parts = name.split(".")
        if name.startswith("model.layers."):
            layer = int(parts[2])
            prefix = ".".join(parts[:3])
            rest = ".".join(parts[3:])
            if rest == "self_attn.qkv_proj.weight" and fused:
                swa = pattern[layer] == 1
                heads = cfg["num_attention_heads"]
                kv = cfg["swa_num_key_value_heads" if swa else "num_key_value_heads"]
                hd, vhd = cfg["head_dim"], cfg["v_head_dim"]
                sizes = [heads * hd // blocks, kv * hd // blocks, kv * vhd // blocks]
                qs, ks, vs = zip(*(b.split(sizes) for b in tensor.chunk(blocks)))
                for proj, chunks in zip("qkv", (qs, ks, vs)):
                    state[f"{prefix}.self_attn.{proj}_proj.weight"] = torch.cat(chunks)
                continue
            if rest == "self_attn.attention_sink_bias":
                state[f"{prefix}.self_attn.sinks"] = tensor
                continue
            if rest.startswith("mlp.experts."):
                expert, proj = int(parts[5]), parts[6]
                state.setdefault(f"{prefix}.mlp.experts", {})[(expert, proj)] = tensor
                continue
        state[name] = tensor
    for key in [k for k in state if k.endswith(".mlp.experts")]:
        per = state.pop(key)
        n = cfg["n_routed_experts"]
        state[key + ".gate_up_proj"] = torch.stack(
            [torch.cat([per[(e, "gate_proj")], per[(e, "up_proj")]]) for e in range(n)]
        )
        state[key + ".down_proj"] = torch.stack(
            [per[(e, "down_proj")] for e in range(n)]
        )
    for i, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        name = f"model.layers.{i}.self_attn.sinks"
        if attn.sinks is not None and name not in state:
            attn.sinks = None  # this layer has no sinks in the checkpoint
    # the router's e_score_correction_bias is a buffer there
    params = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    params = {k: v for k, v in params.items() if not k.endswith("inv_freq")}
    missing = sorted(set(params) - set(state))
    unknown = sorted(set(state) - set(params))
    if missing or unknown:
        raise KeyError(f"weights not mapped: missing {missing}, unknown {unknown}")
    with torch.no_grad():
        for name, tensor in state.items():
            if params[name].shape != tensor.shape:
                raise ValueError(f"{name}: {tuple(tensor.shape)} vs {params[name].shape}")
            params[name].copy_(tensor.to(params[name].dtype))
    return model.to(dtype)


def text_logprobs(model, input_ids):
    """Log-softmax of the next-token logits at every position of ``input_ids`` (one
    sequence, positions 0..n-1), in float64."""
    with torch.no_grad():
        ids = torch.tensor([list(input_ids)])
        logits = model(input_ids=ids).logits[0]
    return torch.log_softmax(logits.double(), dim=-1)
