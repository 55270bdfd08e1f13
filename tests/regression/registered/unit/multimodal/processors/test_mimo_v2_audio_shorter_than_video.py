"""MiMo-V2.5 processor: a video whose audio track ends before the picture.

``MiMoProcessor._build_video_audio_units`` gives every video grid the audio
tokens from its timestamp to the next one. The grids that start after the audio
has ended got a length <= 0 and tripped ``assert segment_audio_token_len > 0``
(an HTTP 500 for any clip with an audio-less tail); they keep their video tokens
and get no audio.

Real MP4 files (MPEG-4 video + AAC audio) are written with PyAV; the processor is
the real MiMoV2Processor built without a checkpoint (a tiny byte-level BPE
tokenizer trained on the spot, nothing downloaded).
"""

import fractions
import io
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from sglang.srt.multimodal.processors.mimo_v2 import (
    MiMoV2Processor,
    _decode_frames_and_timestamps,
)
from sglang.test.ci.ci_register import register_cpu_ci

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
    "<|sosp|>",
    "<|empty|>",
    "<|eosp|>",
]


AUDIO_PLACEHOLDER = "<|mimo_audio_start|><|audio_pad|><|mimo_audio_end|>"


_CORPUS = [
    "Transcribe the audio. The quick brown fox jumps over the lazy dog.",
    "hello world 00:00 00:01 00:02 00:03 12:34 audio video image text",
    "MiMo speech recognition in one request, then the transcript.",
]


_TOKENIZER = None


def make_tokenizer():
    """A small real fast tokenizer (byte-level BPE) with MiMo's special tokens."""
    global _TOKENIZER
    if _TOKENIZER is not None:
        return _TOKENIZER
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=MIMO_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    _TOKENIZER = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=MIMO_SPECIAL_TOKENS[1:],
    )
    return _TOKENIZER


def token_id(tokenizer, token: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    assert tid is not None and tid != tokenizer.unk_token_id, token
    return tid


def make_mimo_processor(tokenizer=None):
    """The real ``MiMoV2Processor`` (MiMo-V2.5 omni), as ``__init__`` would set it
    up for a checkpoint whose processor_config names the tokens above."""
    from sglang.srt.multimodal.processors.base_processor import (
        MultimodalSpecialTokens,
    )
    from sglang.srt.multimodal.processors.mimo_v2 import (
        MiMoProcessor,
        MiMoV2Processor,
    )

    tokenizer = tokenizer or make_tokenizer()
    ids = {t: token_id(tokenizer, t) for t in MIMO_SPECIAL_TOKENS}
    unit = 14 * 2  # patch_size * spatial_merge_size
    proc = object.__new__(MiMoV2Processor)
    proc._tokenizer = tokenizer
    proc.skip_tokenizer_init = False
    proc.io_executor = ThreadPoolExecutor(max_workers=2)
    proc.audio_sample_rate = 24000
    proc.IM_START_TOKEN_ID = ids["<|vision_start|>"]
    proc.IM_END_TOKEN_ID = ids["<|vision_end|>"]
    proc.AUDIO_START_TOKEN_ID = ids["<|mimo_audio_start|>"]
    proc.AUDIO_END_TOKEN_ID = ids["<|mimo_audio_end|>"]
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
        min_frames=4,
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
    proc._processor = proc.mimo_processor
    proc.AUDIO_TOKEN_REGEX = re.compile(
        r"<\|mimo_audio_start\|>(?:<\|audio_pad\|>)+<\|mimo_audio_end\|>"
    )
    proc.mm_tokens = MultimodalSpecialTokens(
        image_token="<|vision_start|><|image_pad|><|vision_end|>",
        image_token_id=ids["<|image_pad|>"],
        image_token_regex=re.compile(
            r"<\|vision_start\|>(?:<\|image_pad\|>)+<\|vision_end\|>"
        ),
        video_token="<|vision_start|><|video_pad|><|vision_end|>",
        video_token_regex=re.compile(
            r"<\|vision_start\|>(?:<\|video_pad\|>)+<\|vision_end\|>"
        ),
        video_token_id=ids["<|video_pad|>"],
        audio_token=AUDIO_PLACEHOLDER,
        audio_token_id=ids["<|audio_pad|>"],
        audio_token_regex=proc.AUDIO_TOKEN_REGEX,
    ).build(proc._processor)
    return proc


def speechlike_wave(seconds: float, sr: int = 16000) -> np.ndarray:
    """A deterministic tone with a syllable-rate envelope, float32 in [-1, 1]."""
    t = np.arange(int(seconds * sr)) / sr
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t))
    carrier = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)
    return (0.3 * envelope * carrier).astype(np.float32)


def mp4_bytes(video_s: float, audio_s: float, fps: int = 10, size: int = 56):
    """A real MP4 (MPEG-4 video + AAC audio) whose audio track lasts audio_s."""
    import av

    sr = 24000
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        vstream = container.add_stream("mpeg4", rate=fps)
        vstream.width = vstream.height = size
        vstream.pix_fmt = "yuv420p"
        astream = container.add_stream("aac", rate=sr)
        astream.layout = "mono"
        for i in range(int(round(video_s * fps))):
            img = np.full((size, size, 3), (i * 7) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        pcm = speechlike_wave(audio_s, sr)[None, :]
        step = 1024
        for start in range(0, pcm.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, start : start + step]),
                format="fltp",
                layout="mono",
            )
            frame.sample_rate = sr
            frame.pts = start
            frame.time_base = fractions.Fraction(1, sr)
            for packet in astream.encode(frame):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    return buf.getvalue()


def mp4_stream_durations(data: bytes) -> dict:
    import av

    with av.open(io.BytesIO(data)) as container:
        return {
            s.type: float(s.duration * s.time_base)
            for s in container.streams
            if s.duration is not None
        }


TOKENS_PER_SECOND = 6.25  # MiMo audio codes: 25 Hz in groups of 4


class PyAVFrames:
    """Stand-in for SGLang's VideoDecoderWrapper (whose CPU path needs patch
    0001 here): the MP4's frames decoded with PyAV, with the three members the
    real frame sampler ``_decode_frames_and_timestamps`` reads."""

    def __init__(self, data: bytes):
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


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def mimo(tok):
    return make_mimo_processor(tok)


def _video_audio_content(proc, data):
    video = _decode_frames_and_timestamps(
        PyAVFrames(data), proc.mimo_processor.default_video_processor_kwargs
    )
    assert proc.mimo_processor.has_audio_track(data)  # real torchcodec probe
    content = MiMoV2Processor._make_video_content(video, True, data, {})
    assert content.type == "video_audio"
    return content


def _audio_runs(tok, input_ids):
    """Number of audio tokens between each <audio_start> ... <audio_end> pair."""
    start = token_id(tok, "<|mimo_audio_start|>")
    end = token_id(tok, "<|mimo_audio_end|>")
    pad = token_id(tok, "<|audio_pad|>")
    runs, i = [], 0
    while start in input_ids[i:]:
        s = input_ids.index(start, i)
        e = input_ids.index(end, s)
        assert set(input_ids[s + 1 : e]) <= {pad}
        runs.append(e - s - 1)
        i = e + 1
    return runs


def test_mp4_with_audio_shorter_than_video(tok, mimo):
    data = mp4_bytes(video_s=4.0, audio_s=1.5)
    d = mp4_stream_durations(data)
    assert d["video"] == pytest.approx(4.0) and d["audio"] < 2.0

    content = _video_audio_content(mimo, data)
    # The audio length the model will encode, from the MP4's own audio track.
    _, audio_token_len = mimo.mimo_processor.audio_pipeline.preprocess_audio(data)
    assert 9 <= audio_token_len <= 12  # about 1.5 s at 6.25 tokens/s

    sample = mimo.mimo_processor.process([content])
    ids = sample.input_ids.tolist()
    runs = _audio_runs(tok, ids)
    grid_t = int(sample.video_thw_grids[0][0])
    assert len(runs) == grid_t == 4  # one unit per grid of two sampled frames
    # Grids start at 0, 1.1, 2.2, 3.3 s and the audio ends at about 1.5 s:
    # the last two grids carry no audio...
    assert runs[0] > 0 and runs[1] > 0 and runs[2:] == [0, 0]
    # ...and the placeholders add up to exactly the audio the encoder yields.
    assert sum(runs) == audio_token_len
    # Every grid keeps its video tokens.
    assert ids.count(token_id(tok, "<|vision_start|>")) == grid_t
    # Mel spectrogram, not codes: one audio input for the whole track.
    assert len(sample.audio_inputs) == 1


def test_units_past_the_end_of_tokenized_audio_carry_no_audio(mimo):
    proc = mimo.mimo_processor
    timestamps = torch.arange(8, dtype=torch.float32) * 0.5  # 4 grids, 1 s each
    codes = torch.arange(9 * 4 * 8).reshape(9, 4, 8)  # 9 tokens = 1.44 s
    units = proc._build_video_audio_units(
        (4, 2, 2), timestamps, {"segment_end_time": 4.0}, codes, True, 9
    )
    lens = [u["segment_audio_token_len"] for u in units]
    assert lens == [6, 3, 0, 0]  # 0-1 s: 6 tokens, 1-2 s: the last 3
    assert sum(lens) == 9
    assert torch.equal(units[0]["segment_audio"], codes[0:6])
    assert torch.equal(units[1]["segment_audio"], codes[6:9])
    assert units[2]["segment_audio"] is None and units[3]["segment_audio"] is None
    assert [u["num_video_tokens"] for u in units] == [1, 1, 1, 1]


def test_grids_closer_than_one_audio_token_inside_the_audio(mimo):
    """Grid spacing under 0.16 s (sampled fps above 12.5 with temporal patch
    2): two grid timestamps round to the same audio token, and a grid inside
    the audio gets no audio. v0.5.23 (and #24602's first fix here) asserted."""
    proc = mimo.mimo_processor
    assert proc.temporal_patch_size == 2
    timestamps = (
        torch.arange(8, dtype=torch.float32) * 0.05
    )  # 20 fps: grids 0.1 s apart
    codes = torch.arange(2 * 4 * 8).reshape(2, 4, 8)  # 2 tokens = 0.32 s
    units = proc._build_video_audio_units(
        (4, 2, 2), timestamps, {"segment_end_time": 0.4}, codes, True, 2
    )
    # Grids at 0, 0.1, 0.2, 0.3 s start at tokens int(6.25 t) = 0, 0, 1, 1.
    lens = [u["segment_audio_token_len"] for u in units]
    assert lens == [0, 1, 0, 1]
    assert sum(lens) == 2  # contiguous: every audio token lands in one grid
    assert units[0]["segment_audio"] is None and units[2]["segment_audio"] is None
    assert torch.equal(units[1]["segment_audio"], codes[0:1])
    assert torch.equal(units[3]["segment_audio"], codes[1:2])
    assert [u["num_video_tokens"] for u in units] == [1, 1, 1, 1]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
