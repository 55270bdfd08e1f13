"""Real media files for the engine tests: WAV (stdlib), PNG (Pillow) and MP4 (PyAV,
through smoke)."""

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
