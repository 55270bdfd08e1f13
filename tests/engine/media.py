"""Real media files for the engine tests: WAV (stdlib), PNG (Pillow) and MP4 (PyAV,
through smoke); the media corpus (below): libsndfile, Pillow and FFmpeg's libraries."""

import base64
import io
import math
import struct
import wave

import numpy as np


def wav(seconds, rate=16000, f0=300.0, sweep=100.0):
    """16-bit mono PCM WAV bytes: a rising tone (different at every instant)."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        t = i / rate
        v = 0.3 * math.sin(2 * math.pi * (f0 + sweep * t) * t)
        frames += struct.pack("<h", int(v * 32767))
    return pcm_to_wav(bytes(frames), rate)


def pcm_to_wav(frames, rate=16000):
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def wav_frames(data):
    with wave.open(io.BytesIO(data)) as w:
        return w.readframes(w.getnframes()), w.getframerate()


def concat_wav(*clips):
    """One WAV holding the clips one after the other (same rate)."""
    frames, rates = zip(*(wav_frames(c) for c in clips))
    assert len(set(rates)) == 1
    return pcm_to_wav(b"".join(frames), rates[0])


def mp4(seconds, audio_seconds, fps=8, size=64, rate=16000):
    """An MP4 with a moving bar (H.264, or MPEG-4 Part 2 where libx264 is missing) and
    an AAC tone track of ``audio_seconds``: the smoke check's own clip writer."""
    from sglang_mimo import smoke

    return smoke.make_mp4(seconds, fps, size, audio_seconds, rate)


def png(width, height):
    """PNG bytes (Pillow's encoder) of a smooth colour pattern, different everywhere."""
    from PIL import Image

    img = Image.new("RGB", (width, height))
    img.putdata(
        [
            (
                int(127 + 120 * math.sin(x / 7.0)),
                int(127 + 120 * math.cos(y / 5.0)),
                (3 * x + 5 * y) % 256,
            )
            for y in range(height)
            for x in range(width)
        ]
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------- the media corpus (numpy)
# Written by real encoders: libsndfile (soundfile: WAV, FLAC, OGG Vorbis/Opus) and
# FFmpeg's libraries (PyAV: MP3, AAC, H.264, VP9, Opus in MP4/M4A/WebM/MKV/MOV).


def tone(seconds, rate=16000, channels=1, silent=False):
    """float32 samples (frames, channels): a rising tone per channel, each channel at
    its own pitch (or zeros)."""
    n = max(1, int(round(seconds * rate)))
    t = np.arange(n, dtype=np.float64) / rate
    cols = [
        0.3 * np.sin(2 * np.pi * (300.0 + 110.0 * c + 50.0 * t) * t)
        for c in range(channels)
    ]
    out = np.stack(cols, axis=1).astype(np.float32)
    return np.zeros_like(out) if silent else out


def sound(seconds, rate=16000, channels=1, fmt="WAV", subtype="PCM_16", silent=False):
    """Audio file bytes written by libsndfile (``soundfile``): WAV (PCM_16, FLOAT,
    PCM_U8, ...), FLAC, OGG (VORBIS, OPUS), MP3 (MPEG_LAYER_III)."""
    import soundfile

    buf = io.BytesIO()
    soundfile.write(
        buf, tone(seconds, rate, channels, silent), rate, format=fmt, subtype=subtype
    )
    return buf.getvalue()


def av_audio(seconds, container, codec, rate=16000, channels=1):
    """Audio file bytes written by FFmpeg's muxer and encoder (PyAV): e.g. ("mp3",
    "libmp3lame"), ("ipod", "aac") for M4A, ("ogg", "libopus")."""
    import av

    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as c:
        a = c.add_stream(codec, rate=rate, layout=layout)
        _encode_audio(c, a, tone(seconds, rate, channels), rate, layout)
    return buf.getvalue()


def _encode_audio(container, stream, samples, rate, layout):
    import av

    frame_size = stream.codec_context.frame_size or 1024
    planar = np.ascontiguousarray(samples.T)
    for start in range(0, planar.shape[1], frame_size):
        chunk = np.ascontiguousarray(planar[:, start : start + frame_size])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        for p in stream.encode(frame):
            container.mux(p)
    for p in stream.encode():
        container.mux(p)


def picture(width, height, i=0):
    """An RGB frame (height, width, 3): a colour pattern that moves with ``i``."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (127 + 120 * np.sin((x + 3 * i) / 7.0)).astype(np.uint8)
    img[..., 1] = (127 + 120 * np.cos((y + 2 * i) / 5.0)).astype(np.uint8)
    img[..., 2] = ((3 * x + 5 * y + 16 * i) % 256).astype(np.uint8)
    return img


def image(width, height, fmt="PNG"):
    """Image bytes (Pillow's encoder) of ``picture``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(picture(width, height)).save(buf, format=fmt)
    return buf.getvalue()


def video(
    seconds,
    *,
    container="mp4",
    vcodec="libx264",
    size=(64, 48),
    fps=4,
    pix_fmt="yuv420p",
    audio=None,
    audio_seconds=None,
    rate=16000,
    rotation=None,
    frame_times=None,
):
    """Video file bytes written by FFmpeg's muxer and encoders (PyAV).

    ``audio``: an audio encoder ("aac", "libopus", "flac", "pcm_s16le") for a mono
    tone track of ``audio_seconds`` (default: as long as the picture), or None for no
    audio track. ``rotation``: display-matrix side data (degrees counter-clockwise).
    ``frame_times``: each frame's time in seconds (variable frame rate) instead of
    ``seconds * fps`` frames at a constant rate.
    """
    from fractions import Fraction

    import av

    width, height = size
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as c:
        v = c.add_stream(vcodec, rate=fps)
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        if frame_times is not None:
            v.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = c.add_stream(audio, rate=rate, layout="mono")
        times = (
            frame_times
            if frame_times is not None
            else [i / fps for i in range(max(1, int(round(seconds * fps))))]
        )
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(picture(width, height, i), "rgb24")
            if frame_times is not None:
                frame.pts = int(round(t * 1000))
                frame.time_base = Fraction(1, 1000)
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            length = seconds if audio_seconds is None else audio_seconds
            _encode_audio(c, a, tone(length, rate), rate, "mono")
    return buf.getvalue()


def data_url(mime, data):
    return f"data:{mime};base64," + base64.b64encode(data).decode()
