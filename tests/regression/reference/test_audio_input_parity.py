"""SGLang's MiMo-V2.5 audio input stack against the independent reference.

The stack that turns the audio tokenizer's RVQ codes into text-model embeddings
(``speech_embeddings``, ``input_local_transformer``, ``projection``), built by SGLang's
own ``AudioEncoderMixin.build_audio_encoder`` from the released ``audio_config`` with
sizes shrunk (20 channels, group of 4 frames, full attention within the group, post
norm, two projection layers, rope theta 640000 as released), and run as
``get_audio_feature`` runs it after tokenizing: ``pad_audio_codes``,
``apply_speech_embeddings``, ``apply_input_local_transformer``, ``projection``. The same
weights (released names, bf16 values) go into ``mimo_v2_reference.audio_input_stack``.
No patch of the series changes this stack, so it must match on both trees.

Stand-ins, for what cannot run here: ``torch.cuda.current_device`` (the builder asks
for the GPU the audio tokenizer goes to), the audio tokenizer's loader (the tokenizer is
not part of this comparison) and the model path it reads (a local folder, so that
nothing is downloaded).

Tolerance: float32, max abs error <= 1e-4 of the output's max abs value.
"""

from types import SimpleNamespace

import pytest
import torch

from mimo_v2_reference import audio_input_stack, audio_input_weights
from sglang.srt.runtime_context import reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.parallel_groups import publish

RELEASED = {
    "add_post_norm": True,
    "audio_channels": 20,
    "audio_segment_size": 6000,
    "group_size": 4,
    "input_full_attention": True,
    "input_local_hidden_dropout": 0.0,
    "partial_rotary_factor": 1.0,
    "projection_layers": 2,
    "rope_theta": 640000,
}
# The released audio_config (above) with sizes shrunk: dim 1024 -> 32, 16 -> 4 heads
# of 8, 6 -> 2 layers, MLP 4096 -> 64, speech vocab 1280 -> 33, out 4096 -> 24.
TINY_AUDIO = {
    **RELEASED,
    "input_local_attn_heads": 4,
    "input_local_dim": 32,
    "input_local_head_dim": 8,
    "input_local_intermediate_size": 64,
    "input_local_layers": 2,
    "out_hidden_size": 24,
    "speech_vocab_size": "33",
    "speech_zeroemb_idx": "32",
}


@pytest.fixture
def stack(tmp_path, monkeypatch):
    from sglang.srt.models import mimo_audio

    reset_context()
    publish(ServerArgs(model_path="dummy", mm_attention_backend="sdpa"), role="t")

    class Holder(torch.nn.Module, mimo_audio.AudioEncoderMixin):
        pass

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    # a local checkpoint folder (else the builder downloads the tokenizer)
    monkeypatch.setattr(
        mimo_audio, "get_model", lambda: SimpleNamespace(model_path=str(tmp_path))
    )
    monkeypatch.setattr(
        Holder, "_load_mimo_audio_tokenizer", staticmethod(lambda path, device: None)
    )
    holder = Holder()
    holder.build_audio_encoder(mimo_audio.MiMoV2AudioConfig(**TINY_AUDIO))
    weights = audio_input_weights(TINY_AUDIO, seed=3)
    params = dict(holder.named_parameters())
    for name, tensor in weights.items():
        name = holder.remap_audio_weight_name(name.removeprefix("audio_encoder."))
        params[name].data.copy_(tensor)
    yield holder.eval(), weights
    reset_context()


@pytest.mark.parametrize("frames", [4, 7, 50])
def test_audio_input_stack_float32(stack, frames):
    holder, weights = stack
    gen = torch.Generator().manual_seed(frames)
    codes = torch.randint(0, 33, (frames, 20), generator=gen, dtype=torch.int32)
    with torch.no_grad():
        embeds = holder.apply_input_local_transformer(
            holder.apply_speech_embeddings(holder.pad_audio_codes(codes))
        )
        out = holder.projection(embeds.reshape(embeds.shape[0], -1)).double()
    ref = audio_input_stack(weights, TINY_AUDIO, codes).double()
    assert out.shape == ref.shape
    err = (out - ref).abs().max().item() / ref.abs().max().item()
    print(f"audio input stack fp32 [{frames} frames]: max abs err {err:.2e} (rel)")
    assert err <= 1e-4, err
