"""Tiny MiMo checkpoints for the engine tests, written offline.

``write_checkpoint(out, kind)`` writes a complete checkpoint directory that the pinned
SGLang server loads with its real weight loader (``--load-format auto``):

- ``omni``: MiMo-V2.5 (``MiMoV2ForCausalLM``): MoE text model with the hybrid
  sliding-window layer pattern, fused ``qkv_proj`` (``attention_projection_layout:
  fused_qkv``, interleaved per key-value head as the released checkpoints are), the
  vision tower, the audio input stack, and ``audio_tokenizer/`` (its own config and
  safetensors with the released tokenizer's parameter names: ``q_proj``/``k_proj``/
  ``v_proj``/``out_proj``).
- ``omni-gqa``: ``omni`` with the vision tower's released grouped-query heads (below).
- ``flash``: MiMo-V2-Flash (``MiMoV2FlashForCausalLM``), text only, split q/k/v.

The configs are the released ones (``recipes/configs/``, verbatim) with only sizes
shrunk: the same keys with the same encodings, the same architecture. What that keeps:
- text: the hybrid layer pattern (full, sliding-window ..., full), the released head
  counts (64 query heads over 4 key-value heads in the full layers, over 8 in the
  sliding-window ones), partial rotary, ``attention_value_scale``, the MoE router with a
  nonzero correction bias, norms that are not all ones, the fused ``qkv_proj`` layout
  (what ``text_parity.py`` compares with transformers' model);
- vision tower: 10 blocks at the released period of 9 (full blocks 0 and 9, four
  row-ordered then four column-ordered windowed blocks between them,
  ``vit_window_attn_types``), learned sinks (``use_sink``, ``attn.sinks`` in bf16 on
  exactly the windowed blocks), a visual token window of 8 that the test videos' frames
  (6 x 6 patches) cross, patch 16, hidden size != heads x head dim (32 vs 4 x 16), the
  merger without biases, channels read from the released ``in_chans``;
- audio input stack: 20 audio channels with the single-value ``speech_vocab_size`` /
  ``speech_zeroemb_idx`` encoding, the post-norm, the 2-layer projection, under the
  released names (``audio_encoder.input_local_transformer.*``,
  ``audio_encoder.projection.mlp.{0,2}``, ``speech_embeddings.0-19``), and an audio
  tokenizer with 20 codebooks.

Differences that matter, and why:
- no ``quantization_config``: the released FP8 block quantization needs GPU kernels;
- text attention-sink biases are off (``add_*_attention_sink_bias: false``; released:
  true on the sliding-window layers): SGLang's CPU attention backend (``torch_native``)
  takes no sinks, and the engine stand-ins (``shims/``) raise on real ones;
- the vision tower of ``omni`` has as many key-value heads as query heads (released: 32
  over 8, a 4:1 grouped-query ratio). v0.5.23's ``sdpa`` vision backend, the one a CPU
  engine runs, cannot run grouped-query heads (RuntimeError "The size of tensor a (8)
  must match the size of tensor b (2)", as patch 0009 records it): on the unpatched tree
  every image and video request would fail, which would take the both-ways proofs of the
  other patches that send video with it. ``omni-gqa`` is the same checkpoint with the
  released ratio (8 over 2, ``num_query_groups`` 4); ``test_engine_vision_gqa.py`` serves
  it on its own and compares its vision embeddings with the reference;
- not written: ``audio_encoder.input_local_transformer.embed_tokens`` (a Qwen2 embedding
  the audio stack never uses; SGLang leaves it uninitialised);
- a small byte-level BPE tokenizer with MiMo's special tokens and a small chat template,
  built here (nothing is downloaded).

Weights are random (seeded, so a checkpoint is the same every time it is written).
"""

import hashlib
import json
import os
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|video_start|>",
    "<|video_end|>",
    "<|mimo_audio_start|>",
    "<|audio_pad|>",
    "<|mimo_audio_end|>",
    "<|sosp|>",
    "<|empty|>",
    "<|eosp|>",
]
CORPUS = [
    "Transcribe the audio. The quick brown fox jumps over the lazy dog.",
    "hello world 00:00 00:01 00:02 00:03 12:34 audio video image text",
    "MiMo speech recognition in one request, then the transcript.",
    "system user assistant You are a helpful assistant. What is the capital of France?",
]
# The released chat template's shape, reduced to what the tests send.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'text' %}{{ c['text'] }}"
    "{% elif c['type'] in ['audio', 'audio_url', 'input_audio'] %}"
    "<|mimo_audio_start|><|audio_pad|><|mimo_audio_end|>"
    "{% elif c['type'] in ['image', 'image_url'] %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] in ['video', 'video_url'] %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# The checkpoint's remote-code config class (``--trust-remote-code``), a plain
# PretrainedConfig under the released model_type. For MiMo-V2-Flash it also keeps SGLang
# off transformers 5.19's own MiMoV2FlashConfig, whose rope_parameters SGLang v0.5.23
# cannot use (get_rope: "unhashable type: 'dict'", found with this tier).
CONFIGURATION_PY = '''from transformers import PretrainedConfig


class {name}(PretrainedConfig):
    model_type = "{model_type}"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
'''
CONFIG_CLASS = {
    "mimo_v2": ("configuration_mimo_v2", "MiMoV2Config"),
    "mimo_v2_flash": ("configuration_mimo_v2_flash", "MiMoV2FlashConfig"),
}
PROCESSING_PY = '''from transformers.processing_utils import ProcessorMixin


class MiMoV2Processor(ProcessorMixin):
    attributes = ["tokenizer"]
    tokenizer_class = "AutoTokenizer"

    def __init__(self, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(tokenizer, chat_template=chat_template)
'''

HIDDEN = 64
VOCAB = 512
AUDIO_TOKENIZER = {
    "d_model": 32,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "n_mels": 128,
    "kernel_size": 3,
    "stride_size": 2,
    "avg_pooler": 2,
    "hop_length": 240,
    "window_size": 960,
    "nfft": 960,
    "sampling_rate": 24000,
    # One codebook per audio channel (audio_config.audio_channels 20, as released); 64
    # codes each, so speech_vocab_size 65 holds them and speech_zeroemb_idx 64.
    "num_quantizers": 20,
    "codebook_size": [64] * 20,
    "encoder_causal": True,
    "encoder_attn_window_size": [16, 0],
    "hybrid_attention": True,
    "swa_per_block": 2,
    "max_audio_seconds": 120,
    "decoder_layers": 1,
    "vocoder_num_layers": 1,
    "position_embedding_type": "rope",
    "ln_type": "LayerNorm",
    "activation_function": "gelu",
}


def build_tokenizer(out_dir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return {t: fast.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}


RELEASED = Path(__file__).resolve().parents[2] / "recipes" / "configs"
# The miniature's sizes. Every other key of the released config is kept, with its value
# and encoding; see recipes/configs/SOURCES.md for where those come from.
TINY_TEXT = {
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "intermediate_size": 128,
    "moe_intermediate_size": 32,
    "num_hidden_layers": 4,
    # The released head counts (64 query heads over 4 key-value heads in the full
    # layers, over 8 in the sliding-window ones: grouped-query ratios 16 and 8), only the
    # head dims shrunk. 4 key-value heads: the fused qkv_proj interleave, divisible by
    # the attention TP of the attention-DP test.
    "num_attention_heads": 64,
    "num_key_value_heads": 4,
    "swa_num_attention_heads": 64,
    "swa_num_key_value_heads": 8,
    "head_dim": 24,
    "v_head_dim": 16,
    "swa_head_dim": 24,
    "swa_v_head_dim": 16,
    "sliding_window": 8,
    "sliding_window_size": 8,
    "attention_chunk_size": 8,
    "hybrid_layer_pattern": [0, 1, 1, 0],
    "moe_layer_freq": [0, 1, 1, 1],
    "n_routed_experts": 8,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 4096,
    "num_nextn_predict_layers": 0,
    # SGLang's CPU attention backend (torch_native) has no attention sinks.
    "add_swa_attention_sink_bias": False,
    "add_full_attention_sink_bias": False,
}
# The released vision_config's pattern at depth 10 instead of 28: the period of 9 (a full
# block, four row-ordered windowed blocks, four column-ordered windowed blocks) and the
# closing full block. use_sink, patch_size 16, spatial_merge_size 2 are inherited.
TINY_VISION = {
    "depth": 10,
    "fullatt_block_indexes": [0, 9],
    "vit_window_attn_types": [-1, 0, 0, 0, 0, 1, 1, 1, 1, -1],
    # Released 64 over frames of thousands of patches; 8 here, so the test videos'
    # frames (96 x 96 pixels after the processor's min_pixels: 6 x 6 = 36 patches per
    # sequence) cross the window in both token orders.
    "visual_token_window_size": 8,
    # Stored, not read by the forward pass (released: twice the token window).
    "window_size": 16,
    # hidden != num_heads * qk_channels, as released (1280 vs 32 x 64).
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_heads": 4,
    # No grouped-query heads in "omni" (released: 8, num_query_groups 4): v0.5.23's
    # sdpa vision backend cannot run them; "omni-gqa" has them (VISION_GQA).
    "num_key_value_heads": 4,
    "num_query_groups": 1,
    "qk_channels": 16,
    "kv_channels": 16,
    "out_hidden_size": HIDDEN,
}
# The "omni-gqa" checkpoint: the omni one with the vision tower's released grouped-query
# ratio (32 query heads over 8 key-value heads, num_query_groups 4), at 8 over 2. Served
# by tests/engine/test_engine_vision_gqa.py on its own, so that the tree without 0009
# (whose sdpa vision backend cannot run grouped-query heads) fails there and nowhere else.
VISION_GQA = {"num_heads": 8, "num_key_value_heads": 2, "num_query_groups": 4}
# Single values, as released ("1280" / "1024"): SGLang applies one value to every one of
# the 20 channels (models/mimo_audio.py _parse_maybe_list).
SPEECH_VOCAB = 65
SPEECH_EMPTY = 64
TINY_AUDIO = {
    "speech_vocab_size": str(SPEECH_VOCAB),
    "speech_zeroemb_idx": str(SPEECH_EMPTY),
    "input_local_layers": 1,
    "input_local_dim": 32,
    "input_local_attn_heads": 2,
    "input_local_head_dim": 16,
    "input_local_intermediate_size": 64,
    "out_hidden_size": HIDDEN,
}


def model(kind):
    """The model a checkpoint kind is a miniature of ("omni-gqa" is an "omni")."""
    return "omni" if kind == "omni-gqa" else kind


def released(kind):
    name = {"omni": "MiMo-V2.5", "flash": "MiMo-V2-Flash"}[model(kind)]
    return json.loads((RELEASED / name / "config.json").read_text())


def text_config(kind, ids):
    """The released config with the miniature's sizes. Weights are bf16: the released
    FP8 block quantization (``quantization_config``) needs GPU kernels."""
    cfg = released(kind)
    cfg.pop("quantization_config", None)
    cfg.update(TINY_TEXT)
    cfg.update(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        torch_dtype="bfloat16",
    )
    module, name = CONFIG_CLASS[cfg["model_type"]]
    cfg["auto_map"] = {"AutoConfig": f"{module}.{name}"}
    return cfg


def multimodal_config(cfg, ids):
    """vision_config / audio_config / processor_config: the released sections with the
    miniature's sizes, and the special-token ids of the tiny tokenizer."""
    vision = {**cfg.get("vision_config", {}), **TINY_VISION}
    audio = {**cfg.get("audio_config", {}), **TINY_AUDIO}
    processor = {
        **cfg.get("processor_config", {}),
        # Per channel, as released (SGLang does not read it; kept consistent).
        "audio_zeroemb_idx": [SPEECH_EMPTY] * audio["audio_channels"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "audio_token_id": ids["<|audio_pad|>"],
        "audio_start_token_id": ids["<|mimo_audio_start|>"],
        "audio_end_token_id": ids["<|mimo_audio_end|>"],
        "video_start_token_id": ids["<|video_start|>"],
        "video_end_token_id": ids["<|video_end|>"],
    }
    return {
        "vision_config": vision,
        "audio_config": audio,
        "processor_config": processor,
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "audio_token_id": ids["<|audio_pad|>"],
    }


def fingerprint():
    """Changes whenever this file or a released config changes: the cache key of
    written checkpoints."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    for kind in ("omni", "flash"):
        h.update(json.dumps(released(kind), sort_keys=True).encode())
    return h.hexdigest()[:12]


def write_checkpoint(out, kind):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = build_tokenizer(out)
    cfg = text_config(kind, ids)
    module, name = CONFIG_CLASS[cfg["model_type"]]
    (out / f"{module}.py").write_text(
        CONFIGURATION_PY.format(name=name, model_type=cfg["model_type"])
    )
    if model(kind) == "omni":
        cfg.update(multimodal_config(cfg, ids))
        if kind == "omni-gqa":
            cfg["vision_config"].update(VISION_GQA)
        cfg["auto_map"]["AutoProcessor"] = "processing_mimo_v2.MiMoV2Processor"
        (out / "processing_mimo_v2.py").write_text(PROCESSING_PY)
        (out / "processor_config.json").write_text(
            json.dumps(
                {
                    "processor_class": "MiMoV2Processor",
                    "auto_map": {
                        "AutoProcessor": "processing_mimo_v2.MiMoV2Processor"
                    },
                },
                indent=1,
            )
        )
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    write_weights(out, cfg)
    if model(kind) == "omni":
        write_audio_tokenizer(out / "audio_tokenizer")
    return out


# ----------------------------------------------------------------------------- weights


def _attention_shapes(cfg, layer):
    swa = cfg["hybrid_layer_pattern"][layer] == 1
    p = "swa_" if swa else ""
    nh = cfg[f"{p}num_attention_heads"]
    nkv = cfg[f"{p}num_key_value_heads"]
    hd = cfg[f"{p}head_dim"]
    vhd = cfg[f"{p}v_head_dim"]
    return nh, nkv, hd, vhd


def text_weights(cfg, gen):
    import torch

    H, V = cfg["hidden_size"], cfg["vocab_size"]

    def w(*shape, scale=0.05):
        return (torch.randn(*shape, generator=gen) * scale).to(torch.bfloat16)

    def norm(n):
        # not all ones, so that the text parity test sees which weight goes where
        return (1 + torch.randn(n, generator=gen) * 0.2).to(torch.bfloat16)

    sd = {"model.embed_tokens.weight": w(V, H, scale=0.5)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        nh, nkv, hd, vhd = _attention_shapes(cfg, i)
        q, k, v = w(nh * hd, H), w(nkv * hd, H), w(nkv * vhd, H)
        if cfg.get("attention_projection_layout") == "fused_qkv":
            # One [q_r; k_r; v_r] block per key-value head r: the checkpoint is
            # TP=num_key_value_heads interleaved (configs/model_config.py
            # get_mimo_v2_fused_qkv_expected_tp_size).
            n = cfg["num_key_value_heads"]
            sd[p + "self_attn.qkv_proj.weight"] = torch.cat(
                [
                    torch.cat([qs, ks, vs])
                    for qs, ks, vs in zip(q.chunk(n), k.chunk(n), v.chunk(n))
                ]
            )
        else:
            sd[p + "self_attn.q_proj.weight"] = q
            sd[p + "self_attn.k_proj.weight"] = k
            sd[p + "self_attn.v_proj.weight"] = v
        sd[p + "self_attn.o_proj.weight"] = w(H, nh * vhd)
        sd[p + "input_layernorm.weight"] = norm(H)
        sd[p + "post_attention_layernorm.weight"] = norm(H)
        if cfg["moe_layer_freq"][i]:
            E, I = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
            sd[p + "mlp.gate.weight"] = w(E, H, scale=0.2)
            # float32 (SGLang keeps it so); nonzero, so that routing depends on it
            sd[p + "mlp.gate.e_score_correction_bias"] = (
                torch.randn(E, generator=gen) * 0.05
            )
            for e in range(E):
                sd[p + f"mlp.experts.{e}.gate_proj.weight"] = w(I, H)
                sd[p + f"mlp.experts.{e}.up_proj.weight"] = w(I, H)
                sd[p + f"mlp.experts.{e}.down_proj.weight"] = w(H, I)
        else:
            I = cfg["intermediate_size"]
            sd[p + "mlp.gate_proj.weight"] = w(I, H)
            sd[p + "mlp.up_proj.weight"] = w(I, H)
            sd[p + "mlp.down_proj.weight"] = w(H, I)
    sd["model.norm.weight"] = norm(H)
    sd["lm_head.weight"] = w(V, H, scale=0.5)
    return sd


def multimodal_weights(cfg, gen):
    """The vision tower (``visual.*``) and the audio input stack
    (``audio_encoder.*``, ``speech_embeddings.*``) under the names, shapes and dtypes
    the released MiMo-V2.5 checkpoint lists, which MiMoV2ForCausalLM.load_weights maps:
    the vision attention as one ``qkv`` with bias, ``attn.sinks`` [num_heads] on exactly
    the windowed blocks, the merger without biases (SGLang zeroes the biases it has);
    the audio local transformer with q/k/v biases and a final norm, a 2-layer
    projection, one speech embedding per channel."""
    import torch

    def w(*shape, scale=0.05):
        return (torch.randn(*shape, generator=gen) * scale).to(torch.bfloat16)

    def ones(n):
        return torch.ones(n, dtype=torch.bfloat16)

    vc, ac = cfg["vision_config"], cfg["audio_config"]
    D, I = vc["hidden_size"], vc["intermediate_size"]
    heads, kv_heads = vc["num_heads"], vc["num_key_value_heads"]
    qkv = (heads + 2 * kv_heads) * vc["qk_channels"]
    # The released vision_config names the channels in_chans (SGLang reads in_channels,
    # default 3: the same value).
    t, p, c = vc["temporal_patch_size"], vc["patch_size"], vc["in_chans"]
    sd = {"visual.patch_embed.proj.weight": w(D, c, t, p, p)}
    for i in range(vc["depth"]):
        b = f"visual.blocks.{i}."
        sd[b + "norm1.weight"] = ones(D)
        sd[b + "norm2.weight"] = ones(D)
        sd[b + "attn.qkv.weight"] = w(qkv, D)
        sd[b + "attn.qkv.bias"] = w(qkv)
        sd[b + "attn.proj.weight"] = w(D, heads * vc["kv_channels"])
        sd[b + "attn.proj.bias"] = w(D)
        if vc["use_sink"] and i not in vc["fullatt_block_indexes"]:
            sd[b + "attn.sinks"] = w(heads, scale=1.0)
        for name, shape in (("gate_proj", (I, D)), ("up_proj", (I, D))):
            sd[b + f"mlp.{name}.weight"] = w(*shape)
            sd[b + f"mlp.{name}.bias"] = w(shape[0])
        sd[b + "mlp.down_proj.weight"] = w(D, I)
        sd[b + "mlp.down_proj.bias"] = w(D)
    merged = D * vc["spatial_merge_size"] ** 2
    sd["visual.merger.ln_q.weight"] = ones(D)
    sd["visual.merger.mlp.0.weight"] = w(merged, merged)
    sd["visual.merger.mlp.2.weight"] = w(vc["out_hidden_size"], merged)

    L, LI = ac["input_local_dim"], ac["input_local_intermediate_size"]
    G = ac["group_size"]
    for i in range(ac["audio_channels"]):
        sd[f"speech_embeddings.{i}.weight"] = w(SPEECH_VOCAB, L, scale=0.5)
    heads = ac["input_local_attn_heads"] * ac["input_local_head_dim"]
    for i in range(ac["input_local_layers"]):
        b = f"audio_encoder.input_local_transformer.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj"):
            sd[b + f"self_attn.{name}.weight"] = w(heads, L)
            sd[b + f"self_attn.{name}.bias"] = w(heads)
        sd[b + "self_attn.o_proj.weight"] = w(L, heads)
        sd[b + "mlp.gate_proj.weight"] = w(LI, L)
        sd[b + "mlp.up_proj.weight"] = w(LI, L)
        sd[b + "mlp.down_proj.weight"] = w(L, LI)
        sd[b + "input_layernorm.weight"] = ones(L)
        sd[b + "post_attention_layernorm.weight"] = ones(L)
    if ac["add_post_norm"]:
        sd["audio_encoder.input_local_transformer.norm.weight"] = ones(L)
    assert ac["projection_layers"] == 2, ac["projection_layers"]
    # G * L -> 4 * G * L -> hidden, as released (4096 -> 16384 -> 4096) and as SGLang
    # builds it (models/mimo_audio.py AudioProjection).
    sd["audio_encoder.projection.mlp.0.weight"] = w(4 * G * L, G * L, scale=0.2)
    sd["audio_encoder.projection.mlp.2.weight"] = w(
        cfg["hidden_size"], 4 * G * L, scale=0.2
    )
    return sd


def write_weights(out, cfg):
    """model.safetensors (one shard, as SGLang's loader reads any *.safetensors)."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    sd = text_weights(cfg, gen)
    if "vision_config" in cfg:
        sd.update(multimodal_weights(cfg, gen))
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})


def write_audio_tokenizer(out):
    """``audio_tokenizer/``: config.json and model.safetensors under the released
    tokenizer's parameter names (attention as q_proj/k_proj/v_proj/out_proj, which
    models/mimo_audio.py _remap_audio_tokenizer_state_dict fuses on load)."""
    import torch
    from safetensors.torch import save_file

    import sglang.srt.models.mimo_audio as mimo_audio

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(AUDIO_TOKENIZER, indent=1))

    class NamesOnly(torch.nn.Module):
        # Takes VisionAttention's place while the module tree is built, for names and
        # shapes only: the released checkpoint stores separate q/k/v/out projections.
        def __init__(self, embed_dim, projection_size, **kwargs):
            super().__init__()
            self.q_proj = torch.nn.Linear(embed_dim, projection_size)
            self.k_proj = torch.nn.Linear(embed_dim, projection_size, bias=False)
            self.v_proj = torch.nn.Linear(embed_dim, projection_size)
            self.out_proj = torch.nn.Linear(projection_size, embed_dim)

    saved = mimo_audio.VisionAttention
    mimo_audio.VisionAttention = NamesOnly
    try:
        model = mimo_audio.MiMoAudioTokenizer(
            mimo_audio.MiMoAudioTokenizerConfig(**AUDIO_TOKENIZER)
        )
    finally:
        mimo_audio.VisionAttention = saved
    gen = torch.Generator().manual_seed(1)
    sd = {}
    for name, t in model.state_dict().items():
        name = name.replace(".self_attn.attn.", ".self_attn.")
        if t.is_floating_point():
            scale = 1.0 if "codebook" in name or "embed" in name else 0.1
            if name.endswith("norm.weight") or name.endswith("layer_norm.weight"):
                t = torch.ones_like(t)
            else:
                t = torch.randn(t.shape, generator=gen) * scale
        sd[name] = t.contiguous()
    save_file(sd, str(out / "model.safetensors"))


if __name__ == "__main__":
    import sys

    write_checkpoint(sys.argv[1], sys.argv[2])
