"""Real media files for the engine tests: WAV (stdlib) and MP4 (PyAV: H.264 + AAC)."""

import io
import math
import struct
import wave


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


def mp4(seconds, audio_seconds=None, fps=8, size=64, rate=16000):
    """An MP4 with a moving bar (H.264, or MPEG-4 Part 2 where libx264 is missing) and,
    when ``audio_seconds`` is given, an AAC tone track of that length."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = size, size, "yuv420p"
        a = None
        if audio_seconds:
            a = c.add_stream("aac", rate=rate)
            a.layout = "mono"
        n = int(seconds * fps)
        for i in range(n):
            img = np.zeros((size, size, 3), np.uint8)
            img[:, :, 2] = 60
            row = (i * size) // n
            img[row : row + max(1, size // n), :, 1] = 255
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            t = np.arange(int(audio_seconds * rate)) / rate
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = rate
            for p in a.encode(frame):
                c.mux(p)
            for p in a.encode():
                c.mux(p)
    return buf.getvalue()
