"""Smoke-check a running SGLang MiMo server through its OpenAI-compatible endpoints.

    smoke --url http://HOST:PORT [--model NAME] [--recipe NAME] [--skip CHECK,...]

Checks, in order: health (GET /health), text (a chat completion), audio (a chat with a
WAV clip as audio_url), transcription (POST /v1/audio/transcriptions with a WAV),
video (a chat with a short MP4 as video_url). The WAV is written with the standard
library; the MP4 is encoded with PyAV when it is installed, else a bundled 1-second clip
is used. --recipe skips the checks for modalities the recipe does not serve.
Requests go to the given URL only. Progress goes to stderr, a pass/fail and latency table
to stdout. Exit 0 when every check that ran passed, 1 when any failed, 2 on bad input.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import re
import struct
import sys
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from sglang_mimo import tables

CHECKS = ("health", "text", "audio", "transcription", "video")
NEEDS_MODALITY = {"audio": "audio", "transcription": "transcription", "video": "video"}
BUNDLED_MP4 = Path(__file__).resolve().parent / "data" / "smoke.mp4"
# (check, PASS|FAIL, seconds, detail)
Row = tuple[str, str, float, str]


# ------------------------------------------------------------------------- media


def make_wav(seconds: float = 1.5, rate: int = 16000) -> bytes:
    """16-bit mono PCM WAV: a 440 Hz tone in three bursts (stdlib only)."""
    n = int(seconds * rate)
    frames = bytearray()
    for i in range(n):
        t = i / rate
        on = int(t * 4) % 2 == 0
        v = 0.3 * math.sin(2 * math.pi * 440 * t) if on else 0.0
        frames += struct.pack("<h", int(v * 32767))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return buf.getvalue()


def make_mp4(
    seconds: float = 2.0,
    fps: int = 8,
    size: int = 64,
    audio_seconds: float | None = None,
    rate: int = 16000,
) -> bytes:
    """H.264 (or MPEG-4) MP4 with a moving bar and an AAC tone: by default an ordinary
    clip, the tone as long as the picture, so that AAC's priming (~64 ms) runs past it,
    as in most MP4s a phone or FFmpeg writes. On v0.5.23 audio past the picture can make
    the scheduler fail the whole server (token count != audio embedding count; patch
    0010), and audio that ends before the last 1-second grid trips an assertion
    (sglang#24602, patch 0005)."""
    if audio_seconds is None:
        audio_seconds = seconds
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = size, size, "yuv420p"
        a = c.add_stream("aac", rate=rate)
        a.layout = "mono"
        frames = int(seconds * fps)
        for i in range(frames):
            img = np.zeros((size, size, 3), np.uint8)
            img[:, :, 2] = 60
            row = (i * size) // frames
            img[row : row + size // frames, :, 1] = 255
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        t = np.arange(int(audio_seconds * rate)) / rate
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        for p in a.encode(frame):
            c.mux(p)
        for p in a.encode():
            c.mux(p)
    return buf.getvalue()


def video_clip() -> tuple[bytes, str]:
    try:
        return make_mp4(), "generated"
    except ImportError:
        return BUNDLED_MP4.read_bytes(), "bundled"


# -------------------------------------------------------------------------- http


class CheckFailed(Exception):
    pass


def _request(method: str, url: str, timeout: float, **kwargs: Any) -> tuple[int, bytes]:
    """(status, body bytes) of one HTTP request with httpx; CheckFailed without an answer.

    ``trust_env=False``: no proxy or netrc from the environment, the request goes to
    ``url`` itself.
    """
    import httpx

    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            r = client.request(method, url, **kwargs)
            return r.status_code, r.content
    except httpx.HTTPError as e:
        raise CheckFailed(f"no response: {e or type(e).__name__}") from e


def _error_text(status: int, body: bytes) -> str:
    try:
        obj = json.loads(body)
        msg = obj.get("message") or (obj.get("error") or {}).get("message") or obj
    except (ValueError, AttributeError):
        msg = body[:200].decode("utf-8", "replace")
    return f"HTTP {status}: {str(msg)[:160]}"


def _post_json(url: str, payload: dict[str, Any], timeout: float) -> Any:
    status, body = _request("POST", url, timeout, json=payload)
    if status != 200:
        raise CheckFailed(_error_text(status, body))
    try:
        return json.loads(body)
    except ValueError as e:
        raise CheckFailed(f"HTTP 200 but not JSON: {body[:80]!r}") from e


def _chat_reply(obj: Any) -> str:
    """The assistant text of a chat.completion; CheckFailed when the shape is wrong."""
    try:
        choice = obj["choices"][0]
        msg = choice["message"]
    except (KeyError, IndexError, TypeError) as e:
        raise CheckFailed(f"not a chat.completion: {str(obj)[:120]}") from e
    if choice.get("finish_reason") == "abort":
        raise CheckFailed(f"finish_reason abort: {str(choice)[:120]}")
    text = msg.get("content") or msg.get("reasoning_content") or ""
    if not isinstance(text, str) or not text.strip():
        raise CheckFailed("empty assistant message")
    return text


# ------------------------------------------------------------------------ checks


class Smoke:
    def __init__(
        self,
        url: str,
        model: str | None = None,
        timeout: float = 120.0,
        max_tokens: int = 64,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.max_tokens = max_tokens
        self._wav: bytes | None = None

    @property
    def wav(self) -> bytes:
        if self._wav is None:
            self._wav = make_wav()
        return self._wav

    def model_name(self) -> str:
        if self.model is None:
            self.model = "default"
            try:
                status, body = _request("GET", f"{self.url}/v1/models", self.timeout)
                if status == 200:
                    self.model = json.loads(body)["data"][0]["id"]
            except (CheckFailed, ValueError, KeyError, IndexError, TypeError):
                pass
        return self.model

    def _chat(self, content: str | list[dict[str, Any]]) -> str:
        payload = {
            "model": self.model_name(),
            "messages": [{"role": "user", "content": content}],
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        return _chat_reply(
            _post_json(f"{self.url}/v1/chat/completions", payload, self.timeout)
        )

    def check_health(self) -> str:
        status, body = _request("GET", f"{self.url}/health", self.timeout)
        if status != 200:
            raise CheckFailed(_error_text(status, body))
        return "HTTP 200"

    def check_text(self) -> str:
        return self._chat("Reply with one short sentence: what is 2 + 3?")

    def check_audio(self) -> str:
        url = "data:audio/wav;base64," + base64.b64encode(self.wav).decode()
        return self._chat([
            {"type": "audio_url", "audio_url": {"url": url}},
            {"type": "text", "text": "Describe this sound in one short sentence."},
        ])  # fmt: skip

    def check_transcription(self) -> str:
        status, raw = _request(
            "POST",
            f"{self.url}/v1/audio/transcriptions",
            self.timeout,
            data={"model": self.model_name(), "response_format": "json"},
            files={"file": ("smoke.wav", self.wav, "audio/wav")},
        )
        if status != 200:
            raise CheckFailed(_error_text(status, raw))
        try:
            text = json.loads(raw)["text"]
        except (ValueError, KeyError, TypeError) as e:
            raise CheckFailed(f"HTTP 200 but no 'text' field: {raw[:80]!r}") from e
        if not isinstance(text, str):
            raise CheckFailed(f"'text' is {type(text).__name__}, not a string")
        return f"text {text!r}" if text else "text '' (a tone has no words)"

    def check_video(self) -> str:
        data, _ = video_clip()
        url = "data:video/mp4;base64," + base64.b64encode(data).decode()
        return self._chat([
            {"type": "video_url", "video_url": {"url": url}},
            {"type": "text", "text": "Describe this video in one short sentence."},
        ])  # fmt: skip


def run_checks(
    smoke: Smoke, checks: Sequence[str], progress: TextIO = sys.stderr
) -> list[Row]:
    """Run the checks in order; return rows (name, status, seconds, detail)."""
    rows: list[Row] = []
    for i, name in enumerate(checks, 1):
        print(f"[{i}/{len(checks)}] {name} ...", file=progress, flush=True)
        t0 = time.monotonic()
        try:
            detail = getattr(smoke, f"check_{name}")()
            status = "PASS"
        except CheckFailed as e:
            detail, status = str(e), "FAIL"
        dt = time.monotonic() - t0
        detail = " ".join(str(detail).split())
        print(f"[{i}/{len(checks)}] {name}: {status} in {dt * 1000:.0f} ms", file=progress,
              flush=True)  # fmt: skip
        rows.append((name, status, dt, detail))
    return rows


def format_table(rows: Sequence[Row], skipped: Sequence[tuple[str, str]] = ()) -> str:
    body = [
        (name, status, f"{dt * 1000:.0f} ms",
         detail if len(detail) <= 60 else detail[:57] + "...")
        for name, status, dt, detail in rows
    ] + [(name, "SKIP", "-", why) for name, why in skipped]  # fmt: skip
    table = tables.render(
        ["check", "result", "latency", "detail"], body, markdown=False, align="llrl"
    )
    failed = sum(1 for r in rows if r[1] != "PASS")
    rule = "-" * max(len(line) for line in table.splitlines())
    summary = f"{len(rows) - failed} passed, {failed} failed, {len(skipped)} skipped"
    return "\n".join([table, rule, summary])


_URL_RE = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?/?$")


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "smoke",
        help="smoke-check a running server (health, text, audio, transcription, video)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--url", required=True, help="server base URL, e.g. http://10.0.0.1:30000"
    )
    p.add_argument("--model", help="model name for requests (default: from /v1/models)")
    p.add_argument(
        "--recipe", help="skip checks for modalities this recipe does not serve"
    )
    p.add_argument(
        "--skip", default="", help="comma list of checks to skip: " + ",".join(CHECKS)
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--max-tokens", type=int, default=64)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if not _URL_RE.match(args.url):
        print(
            f"smoke: error: --url {args.url!r} is not http(s)://HOST[:PORT]",
            file=sys.stderr,
        )
        return 2
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    bad = skip - set(CHECKS)
    if bad:
        print(f"smoke: error: unknown check(s) {sorted(bad)}; checks: {', '.join(CHECKS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    skipped = [(c, "--skip") for c in CHECKS if c in skip]
    if args.recipe:
        from sglang_mimo import recipes

        try:
            modalities = set(recipes.load_recipe(args.recipe).model.modalities)
        except recipes.RecipeError as e:
            print(f"smoke: error: {e}", file=sys.stderr)
            return 2
        for c, m in NEEDS_MODALITY.items():
            if c not in skip and m not in modalities:
                skip.add(c)
                skipped.append((c, f"recipe {args.recipe} does not serve {m}"))
    checks = [c for c in CHECKS if c not in skip]
    smoke = Smoke(args.url, args.model, args.timeout, args.max_tokens)
    print(f"smoke: {args.url}: {len(checks)} checks", file=sys.stderr, flush=True)
    rows = run_checks(smoke, checks)
    print(format_table(rows, skipped))
    return 0 if all(r[1] == "PASS" for r in rows) else 1
