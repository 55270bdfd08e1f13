"""MiMo-V2.5 video with audio: what 0005 must not change (audio as long as the video).

Helpers and fixtures come from 0005's registered test file.
"""

from test_mimo_v2_audio_shorter_than_video import (  # noqa: F401  (fixtures)
    TOKENS_PER_SECOND,
    _audio_runs,
    _video_audio_content,
    mimo,
    mp4_bytes,
    tok,
)


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
