"""MiMo's audio path on an install without torchcodec.

sglang requires torchcodec only off aarch64 (on aarch64 it installs PyAV and decord
instead), and without it ``MiMoAudioPipeline.preprocess_audio`` (the decode behind a
video's audio track and audio given as bytes or a path) and
``MiMoProcessor.has_audio_track`` (asked for every video) raised "torchcodec is
required". They decode and probe through PyAV / soundfile there instead.

The install without torchcodec is a child interpreter in which ``import torchcodec``
fails (``sys.modules["torchcodec"] = None``, set before anything is imported); the rest
of it is this one's. The media are written here by real encoders: WAVs by libsndfile
(soundfile), MP4s with and without an AAC track by FFmpeg's libraries (PyAV). Each
result is compared with the same call in this process, where torchcodec decodes.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sglang.srt.multimodal.processors import mimo_audio
from sglang.srt.multimodal.processors.mimo_audio import MiMoAudioPipeline
from sglang.srt.multimodal.processors.mimo_v2 import MiMoProcessor
from sglang.test.ci.ci_register import register_cpu_ci

register_cpu_ci(est_time=40, suite="base-a-test-cpu")


TONE_HZ = 440

# (sample rate, channels, libsndfile subtype) of each WAV
WAVS = {
    "mono-16k-pcm16.wav": (16000, 1, "PCM_16"),
    "stereo-24k-float.wav": (24000, 2, "FLOAT"),  # the model's own rate: no resampling
    "stereo-44k1-pcm16.wav": (44100, 2, "PCM_16"),
}

# Runs in the child: decode every file with torchcodec unimportable, save the results.
CHILD = textwrap.dedent("""
    import json, sys, traceback
    sys.modules["torchcodec"] = None  # an install without torchcodec
    import torch
    from sglang.srt.multimodal.processors import mimo_audio
    from sglang.srt.multimodal.processors.mimo_v2 import MiMoProcessor

    cases = json.loads(sys.argv[1])
    out = {"audio_decoder": repr(mimo_audio.AudioDecoder), "decode": {}, "track": {}}
    out["module"] = mimo_audio.__file__
    pipe = mimo_audio.MiMoAudioPipeline(
        audio_token_id=1, audio_start_token_id=2, audio_end_token_id=3
    )
    for key, (kind, path) in cases.items():
        source = path if kind == "path" else open(path, "rb").read()
        bucket = "track" if key.startswith("track:") else "decode"
        try:
            if bucket == "track":
                out[bucket][key] = MiMoProcessor.has_audio_track(source)
            else:
                out[bucket][key] = pipe.preprocess_audio(source)
        except Exception:
            out[bucket][key] = traceback.format_exc()
    torch.save(out, sys.argv[2])
    """)


def tone(seconds, sr, channels):
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
    return x if channels == 1 else np.stack([x, 0.5 * x], axis=1)


def mp4(path, seconds=2.0, audio=True, fps=8, size=64, sr=16000):
    """An MP4 written by PyAV: MPEG-4 video, and a mono AAC tone as long as the
    picture when ``audio``."""
    import av

    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = size, size, "yuv420p"
        if audio:
            a = c.add_stream("aac", rate=sr)
            a.layout = "mono"
        for i in range(int(seconds * fps)):
            img = np.full((size, size, 3), (i * 20) % 256, np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if audio:
            frame = av.AudioFrame.from_ndarray(
                tone(seconds, sr, 1)[None, :], format="fltp", layout="mono"
            )
            frame.sample_rate = sr
            for p in a.encode(frame):
                c.mux(p)
            for p in a.encode():
                c.mux(p)
    with av.open(str(path)) as c:  # what FFmpeg sees in it: the test's premise
        assert len(c.streams.audio) == int(audio) and len(c.streams.video) == 1


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    import soundfile

    d = tmp_path_factory.mktemp("media")
    for name, (sr, channels, subtype) in WAVS.items():
        soundfile.write(d / name, tone(1.5, sr, channels), sr, subtype=subtype)
    mp4(d / "aac.mp4")
    mp4(d / "video-only.mp4", audio=False)
    (d / "not-media.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(200))
    return d


@pytest.fixture(scope="module")
def cases(media):
    out = {name: ("bytes", str(media / name)) for name in [*WAVS, "aac.mp4"]}
    out["path:mono-16k-pcm16.wav"] = ("path", str(media / "mono-16k-pcm16.wav"))
    for name in ("aac.mp4", "video-only.mp4", "not-media.mp4"):
        out[f"track:{name}"] = ("bytes", str(media / name))
    out["track:path:aac.mp4"] = ("path", str(media / "aac.mp4"))
    return out


@pytest.fixture(scope="module")
def without_torchcodec(cases, tmp_path_factory):
    """The child's results: {"decode": {key: (mel, token_len) or traceback},
    "track": {key: bool or traceback}}."""
    result = tmp_path_factory.mktemp("child") / "result.pt"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases), str(result)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = torch.load(result, weights_only=False)
    assert out["audio_decoder"] == "None", out["audio_decoder"]
    assert out["module"] == mimo_audio.__file__  # the same sglang as this process
    return out


@pytest.fixture(scope="module")
def pipe():
    return MiMoAudioPipeline(
        audio_token_id=1, audio_start_token_id=2, audio_end_token_id=3
    )


def tone_band(pipe):
    """The mel band of MiMo's own filterbank that weighs the tone the most."""
    import torchaudio

    kw = pipe.mel_spectrogram_kwargs
    fb = torchaudio.functional.melscale_fbanks(
        n_freqs=kw["n_fft"] // 2 + 1,
        f_min=float(kw["f_min"]),
        f_max=float(kw["f_max"] or kw["sample_rate"] / 2),
        n_mels=kw["n_mels"],
        sample_rate=kw["sample_rate"],
    )
    return int(fb[round(TONE_HZ * kw["n_fft"] / kw["sample_rate"])].argmax())


def check_decode(pipe, got, source, seconds, rel):
    """``got`` (decoded without torchcodec) against ``source`` decoded with it here:
    the same frames and token count, the tone's band, magnitudes within ``rel`` of
    the loudest (log-mel is compared as magnitude: its near-silent bins are noise)."""
    assert isinstance(got, tuple), got
    spec, token_len = got
    ref, ref_len = pipe.preprocess_audio(source)
    assert spec.dtype == torch.float32 and spec.shape == ref.shape, (
        spec.shape,
        ref.shape,
    )
    assert token_len == ref_len == pipe.compute_audio_token_len(spec.shape[0])
    hop = pipe.audio_sampling_rate / pipe.audio_hop_length
    assert spec.shape[0] >= int(seconds * hop) + 1 and spec.shape[1] == 128
    assert int(spec.mean(dim=0).argmax()) == tone_band(pipe)
    err = (spec.exp() - ref.exp()).abs().max() / ref.exp().max()
    assert err < rel, float(err)


@pytest.mark.parametrize("name", list(WAVS))
def test_wav_bytes_decode_without_torchcodec(without_torchcodec, pipe, media, name):
    got = without_torchcodec["decode"][name]
    check_decode(pipe, got, (media / name).read_bytes(), 1.5, 1e-4)


def test_wav_path_decodes_without_torchcodec(without_torchcodec, pipe, media):
    got = without_torchcodec["decode"]["path:mono-16k-pcm16.wav"]
    check_decode(pipe, got, str(media / "mono-16k-pcm16.wav"), 1.5, 1e-4)


def test_video_audio_track_decodes_without_torchcodec(without_torchcodec, pipe, media):
    # PyAV resamples the AAC track to 24 kHz where torchaudio does it after
    # torchcodec: the two resamplers differ slightly.
    got = without_torchcodec["decode"]["aac.mp4"]
    check_decode(pipe, got, (media / "aac.mp4").read_bytes(), 2.0, 1e-2)


@pytest.mark.parametrize(
    "key", ["aac.mp4", "video-only.mp4", "not-media.mp4", "path:aac.mp4"]
)
def test_has_audio_track_without_torchcodec(without_torchcodec, media, key):
    got = without_torchcodec["track"][f"track:{key}"]
    name = key.rsplit(":", 1)[-1]
    source = (
        str(media / name) if key.startswith("path:") else (media / name).read_bytes()
    )
    assert got is MiMoProcessor.has_audio_track(source), got
    assert got is (name == "aac.mp4")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
