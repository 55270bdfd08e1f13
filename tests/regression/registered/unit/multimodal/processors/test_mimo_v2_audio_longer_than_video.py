"""MiMo-V2.5 processor: a video whose audio track runs past the picture.

``MiMoProcessor._build_video_audio_units`` gives every video grid the audio
tokens from its timestamp to the next grid's, and the last grid those up to the
end of the picture (``segment_end_time``): audio after the picture gets no
placeholder. On the mel-spectrogram path ``_process_video_audio_content`` still
handed the model the whole track, and the model's audio path makes one embedding
per audio token of what it gets. So a track running past the grid timeline (a
longer soundtrack, or, when the grids end with the picture, no more than AAC
padding: a 3.0 s track is 19 tokens, 3.0 s of grids 18) gave the audio item more
embeddings than placeholders, the scheduler's split of them (mm_schedule.py,
``_batch_encode_per_image_misses``) raised "split_with_sizes expects split_sizes
to sum exactly to N" and the server exited. The processor now hands the encoder
only the mel frames its placeholders cover.

Real MP4 files (H.264 video + AAC audio) are written with PyAV. The processor is
the real MiMoV2Processor built without a checkpoint (a tiny byte-level BPE
tokenizer trained on the spot, frame sampling at MiMoV2Processor's defaults:
2 fps, at least 8 frames). The embeddings are what the model's own audio path
makes of the audio the processor hands it: the real
``AudioEncoderMixin.get_audio_feature`` (mel -> audio tokenizer encoder codes ->
groups of 4 codes -> local transformer -> projection, one row per group) on a
tiny, randomly initialised audio tokenizer and local transformer, on CPU with
the sdpa backend; how many rows it returns does not depend on the weights.
"""

import fractions
import io
import sys

import numpy as np
import pytest
import torch
from torch import nn

from sglang.srt.managers.schedule_batch import Modality, MultimodalDataItem
from sglang.srt.multimodal.processors.mimo_v2 import (
    MiMoV2Processor,
    _decode_frames_and_timestamps,
)
from sglang.srt.runtime_context import reset_context
from sglang.srt.server_args import ServerArgs
from sglang.test.ci.ci_register import register_cpu_ci
from sglang.test.parallel_groups import publish  # also writes the 1-rank TP groups

register_cpu_ci(est_time=30, suite="base-a-test-cpu")


MIMO_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|video_start|>",
    "<|video_end|>",
    "<|mimo_audio_start|>",
    "<|audio_pad|>",
    "<|mimo_audio_end|>",
]

TOKENS_PER_SECOND = 6.25  # MiMo audio tokens: 25 Hz codes in groups of 4
MEL_FRAMES_PER_TOKEN = 16  # 100 Hz mel, conv stride 2, avg pooler 2, group 4


def make_tokenizer():
    """A small real fast tokenizer (byte-level BPE) with MiMo's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=MIMO_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["00:00 00:01 00:02 00:03 what is said?"], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=MIMO_SPECIAL_TOKENS[1:],
    )


def make_mimo_processor(tokenizer):
    """The real ``MiMoV2Processor`` (MiMo-V2.5 omni) with the one attribute this
    path reads, its ``MiMoProcessor`` as ``__init__`` builds it for a checkpoint
    whose processor_config names the tokens above; frame sampling at
    ``__init__``'s defaults (fps 2, min_frames 8, max_frames 256)."""
    from sglang.srt.multimodal.processors.mimo_v2 import MiMoProcessor

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in MIMO_SPECIAL_TOKENS}
    unit = 14 * 2  # patch_size * spatial_merge_size
    proc = object.__new__(MiMoV2Processor)
    proc.mimo_processor = MiMoProcessor(
        tokenizer=tokenizer,
        patch_size=14,
        image_min_pixels=4 * unit * unit,
        image_max_pixels=64 * unit * unit,
        video_min_pixels=4 * unit * unit,
        video_max_pixels=16 * unit * unit,
        video_total_max_pixels=256 * unit * unit,
        fps=2,
        max_frames=256,
        min_frames=8,
        video_audio_interleave_length=0,
        audio_sampling_rate=24000,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        audio_token_id=ids["<|audio_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        audio_start_token_id=ids["<|mimo_audio_start|>"],
        audio_end_token_id=ids["<|mimo_audio_end|>"],
        video_start_token_id=ids["<|video_start|>"],
        video_end_token_id=ids["<|video_end|>"],
        pad_token_id=tokenizer.pad_token_id,
        rope_type="rope",
        use_video_timestamps=True,
        video_process_num_threads=1,
    )
    return proc


def make_audio_model():
    """The model side of MiMo audio, ``AudioEncoderMixin``, as ``build_audio_encoder``
    lays it out (8 code channels in groups of 4, segments of 6000 mel frames), with
    a tiny random audio tokenizer (MiMo's conv stride 2 and avg pooler 2) and a
    tiny local transformer instead of the checkpoint's."""
    from transformers import Qwen2Config, Qwen2Model

    from sglang.srt.models import mimo_audio

    class TinyMiMoAudio(mimo_audio.AudioEncoderMixin, nn.Module):
        def __init__(self):
            nn.Module.__init__(self)
            torch.manual_seed(0)
            self.audio_channels = 8
            self.audio_group_size = 4
            self.audio_segment_size = 6000
            self.audio_input_local_dim = 16
            self.audio_input_full_attention = True
            self.audio_out_hidden_size = 8
            config = mimo_audio.MiMoAudioTokenizerConfig(
                d_model=32,
                encoder_layers=2,
                encoder_attention_heads=4,
                encoder_ffn_dim=64,
                n_mels=128,
                kernel_size=3,
                stride_size=2,
                avg_pooler=2,
                num_quantizers=8,
                codebook_size=[16],
            )
            self.audio_tokenizer = mimo_audio.MiMoAudioTokenizer(config).eval()
            local = Qwen2Config(
                hidden_size=16,
                num_hidden_layers=1,
                num_attention_heads=2,
                num_key_value_heads=2,
                intermediate_size=32,
            )
            local._attn_implementation = "sdpa"
            self.input_local_transformer = Qwen2Model(local).eval()
            self.speech_embeddings = nn.ModuleList(
                [nn.Embedding(16, 16) for _ in range(8)]
            )
            self.projection = nn.Linear(16 * 4, 8, bias=False)

    return TinyMiMoAudio().eval()


def mp4_bytes(video_s, audio_s, fps, sample_rate, layout, size=56):
    """A real MP4 (H.264 video + AAC audio) whose audio track lasts audio_s."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        vstream = container.add_stream("libx264", rate=fps)
        vstream.width = vstream.height = size
        vstream.pix_fmt = "yuv420p"
        astream = container.add_stream("aac", rate=sample_rate)
        astream.layout = layout
        for i in range(int(round(video_s * fps))):
            img = np.full((size, size, 3), (i * 17) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        t = np.arange(int(audio_s * sample_rate)) / sample_rate
        wave = (
            0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 220 * t)
        )
        channels = 2 if layout == "stereo" else 1
        pcm = np.repeat(wave.astype(np.float32)[None, :], channels, axis=0)
        for start in range(0, pcm.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, start : start + 1024]),
                format="fltp",
                layout=layout,
            )
            frame.sample_rate = sample_rate
            frame.pts = start
            frame.time_base = fractions.Fraction(1, sample_rate)
            for packet in astream.encode(frame):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    return buf.getvalue()


def mp4_stream_durations(data):
    import av

    with av.open(io.BytesIO(data)) as container:
        return {
            s.type: float(s.duration * s.time_base)
            for s in container.streams
            if s.duration is not None
        }


class PyAVFrames:
    """Stand-in for SGLang's VideoDecoderWrapper (whose CPU path needs patch
    0001 here): the MP4's frames decoded with PyAV, with the three members the
    real frame sampler ``_decode_frames_and_timestamps`` reads."""

    def __init__(self, data):
        import av

        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            self.avg_fps = float(stream.average_rate)
            self._frames = np.stack(
                [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            )

    def __len__(self):
        return len(self._frames)

    def get_frames_as_tensor(self, indices):
        return torch.from_numpy(self._frames[list(indices)])


@pytest.fixture(scope="module", autouse=True)
def runtime():
    reset_context()
    publish(
        ServerArgs(model_path="dummy", mm_attention_backend="sdpa"),
        role="test",
    )
    yield
    reset_context()


@pytest.fixture(scope="module")
def mimo():
    return make_mimo_processor(make_tokenizer())


@pytest.fixture(scope="module")
def audio_model():
    return make_audio_model()


CASES = {
    # 8 of the 12 frames sampled, the first two adjacent: the grids end with
    # the picture at 3.0 s (18 tokens); the AAC track has the picture's length
    # (3.03 s decoded, the last AAC frame padded), 19 tokens.
    "priming_only": dict(video_s=3, audio_s=3, fps=4, rate=24000, layout="mono"),
    # All 8 frames sampled: 2 s picture (12 tokens), 2 s of stereo 44.1 kHz
    # AAC (13 tokens).
    "stereo_44k": dict(video_s=2, audio_s=2, fps=4, rate=44100, layout="stereo"),
    "two_seconds_longer": dict(
        video_s=3, audio_s=5, fps=25, rate=44100, layout="stereo"
    ),
    "much_longer": dict(video_s=3, audio_s=10, fps=30, rate=48000, layout="mono"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_audio_embeddings_match_placeholders(mimo, audio_model, case):
    c = CASES[case]
    data = mp4_bytes(c["video_s"], c["audio_s"], c["fps"], c["rate"], c["layout"])
    durations = mp4_stream_durations(data)
    assert durations["video"] == pytest.approx(c["video_s"])
    assert durations["audio"] >= c["audio_s"]

    proc = mimo.mimo_processor
    video = _decode_frames_and_timestamps(
        PyAVFrames(data), proc.default_video_processor_kwargs
    )
    assert proc.has_audio_track(data)  # real torchcodec probe
    content = MiMoV2Processor._make_video_content(video, True, data, {})
    sample = proc.process([content])

    # The audio item as process_mm_data_async builds it.
    item = MultimodalDataItem(
        modality=Modality.AUDIO,
        feature=sample.audio_inputs,
        offsets=mimo.get_mm_items_offset(
            input_ids=sample.input_ids, mm_token_id=proc.audio_token_id
        ),
    )
    placeholders = sum(end - start + 1 for start, end in item.offsets)
    with torch.no_grad():
        embeddings = audio_model.get_audio_feature([item])
    # The scheduler splits them by placeholder count (mm_schedule.py,
    # _batch_encode_per_image_misses); v0.5.23 raised here, e.g.
    # "split_with_sizes expects split_sizes to sum exactly to 19 ... [18]".
    torch.split(embeddings, [placeholders], dim=0)
    assert embeddings.shape[0] == placeholders

    # The placeholders still cover the audio under the whole picture...
    segment_end = proc.process_video(content.content)[3]["segment_end_time"]
    expected = int(segment_end * TOKENS_PER_SECOND)
    track, track_tokens = proc.audio_pipeline.preprocess_audio(data)
    assert track_tokens > expected  # the soundtrack runs past the grids
    assert placeholders == expected
    # ...and the encoder gets exactly that head of the track's mel.
    (mel,) = sample.audio_inputs
    assert torch.equal(mel, track[: expected * MEL_FRAMES_PER_TOKEN])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
