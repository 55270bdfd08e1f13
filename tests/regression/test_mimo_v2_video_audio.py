"""Patch 0005: a video whose audio track ends before the picture (upstream #24602).

``MiMoProcessor._build_video_audio_units`` gives every video grid the audio
tokens from its timestamp to the next one. On v0.5.23 the grids that start after
the audio has ended get a length <= 0 and trip ``assert segment_audio_token_len > 0``.
"""

import io

import numpy as np
import pytest
import torch
from mimo_helpers import make_mimo_processor, make_tokenizer, mp4_bytes
from mimo_helpers import mp4_stream_durations as durations
from mimo_helpers import token_id
from sglang.srt.multimodal.processors.mimo_v2 import (
    MiMoV2Processor,
    _decode_frames_and_timestamps,
)

PATCH = "0005-mimo-v2-audio-shorter-than-video.patch"
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


@pytest.mark.fixes(PATCH)
def test_mp4_with_audio_shorter_than_video(tok, mimo):
    data = mp4_bytes(video_s=4.0, audio_s=1.5)
    d = durations(data)
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


@pytest.mark.fixes(PATCH)
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


@pytest.mark.fixes(PATCH)
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


def test_mp4_with_audio_as_long_as_video_is_unchanged(tok, mimo):
    data = mp4_bytes(video_s=4.0, audio_s=4.5)
    content = _video_audio_content(mimo, data)
    _, audio_token_len = mimo.mimo_processor.audio_pipeline.preprocess_audio(data)
    runs = _audio_runs(tok, mimo.mimo_processor.process([content]).input_ids.tolist())
    # Grid i holds the audio tokens from its first sampled frame to the next
    # grid's (the last one to one frame interval past its last frame).
    ts = content.content.video[1].tolist()
    step = ts[1] - ts[0]
    edges = ts[::2] + [ts[-1] + step]
    bounds = [int(TOKENS_PER_SECOND * t) for t in edges]
    assert audio_token_len >= bounds[-1]
    assert runs == [b - a for a, b in zip(bounds, bounds[1:])]
    assert all(r > 0 for r in runs)
