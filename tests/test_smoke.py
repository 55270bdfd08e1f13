"""scripts/launch smoke against a stand-in SGLang server on 127.0.0.1 (real HTTP).

The stand-in (tests/standin_openai_server.py) answers in SGLang's OpenAI shapes and decodes
what the smoke check sends (WAV, MP4, multipart upload); each fault makes one check fail.
"""

import io
import subprocess
import sys
import wave

import av
import pytest
from recipe_helpers import LAUNCH, clean_env
from sglang_mimo import cli, smoke
from standin_openai_server import StandInServer


def run_smoke(url, *args):
    return subprocess.run(
        [sys.executable, str(LAUNCH), "smoke", "--url", url, *args],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip


def table(stdout):
    """check name -> (result, latency text) from the printed table."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in smoke.CHECKS and len(parts) >= 2:
            rows[parts[0]] = parts[1]
    return rows


def test_all_checks_pass_against_a_healthy_server():
    with StandInServer() as server:
        r = run_smoke(server.url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert table(r.stdout) == {c: "PASS" for c in smoke.CHECKS}
    assert "5 passed, 0 failed, 0 skipped" in r.stdout
    assert " ms " in r.stdout  # latency column
    # Progress while running, on stderr, in order.
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
    assert progress[0] == "[1/5] health ..." and progress[-1].startswith(
        "[5/5] video: PASS"
    )
    # What reached the server: every endpoint, real media, and nothing else.
    assert set(server.requests) == {
        ("GET", "/health"), ("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
        ("POST", "/v1/audio/transcriptions"),
    }  # fmt: skip
    assert server.media["chat_audio_s"] == pytest.approx(1.5)
    assert server.media["transcription_s"] == pytest.approx(1.5)
    assert server.media["chat_video_frames"] == 16


FAULTS = [
    ("health_503", "health", "HTTP 503"),
    ("text_empty", "text", "empty assistant message"),
    ("text_not_json", "text", "not JSON"),
    ("audio_500", "audio", "HTTP 500: RuntimeError: audio encoder failed"),
    ("transcription_typeerror", "transcription", "TypeError: expected string"),
    ("transcription_no_text", "transcription", "no 'text' field"),
    ("video_400", "video", "HTTP 400: Failed to load video"),
    ("video_abort", "video", "finish_reason abort"),
    ("video_hang", "video", "timed out"),
]


@pytest.mark.parametrize("fault,check,message", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_failing_check_fails_the_run(fault, check, message, capsys):
    with StandInServer({fault}, hang_seconds=3) as server:
        rc = cli.main(["smoke", "--url", server.url, "--timeout", "1.5"])
    out = capsys.readouterr().out
    assert rc == 1
    rows = table(out)
    assert rows[check] == "FAIL"
    assert all(v == "PASS" for k, v in rows.items() if k != check), out
    line = next(ln for ln in out.splitlines() if ln.startswith(check))
    assert message in line, line


def test_recipe_skips_modalities_it_does_not_serve():
    with StandInServer({"audio_500", "video_400", "transcription_typeerror"}) as server:
        r = run_smoke(server.url, "--recipe", "mimo-v2-flash-h200x8")
    assert r.returncode == 0, r.stdout
    rows = table(r.stdout)
    assert rows == {"health": "PASS", "text": "PASS", "audio": "SKIP",
                    "transcription": "SKIP", "video": "SKIP"}  # fmt: skip
    assert "does not serve audio" in r.stdout


def test_no_server_listening_fails_every_check():
    with StandInServer() as server:
        url = server.url
    r = run_smoke(url, "--timeout", "2")
    assert r.returncode == 1
    assert set(table(r.stdout).values()) == {"FAIL"}
    assert "no response" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--url", "localhost:30000"], "is not http(s)://HOST[:PORT]"),
    (["--url", "http://h:1/v1/chat"], "is not http(s)://HOST[:PORT]"),
    (["--url", "http://127.0.0.1:1", "--skip", "audio,image"], "unknown check(s) ['image']"),
    (["--url", "http://127.0.0.1:1", "--recipe", "nope"], "unknown recipe 'nope'"),
])  # fmt: skip
def test_bad_smoke_input(args, message, capsys):
    assert cli.main(["smoke", *args]) == 2
    assert message in capsys.readouterr().err


BUNDLED = smoke.BUNDLED_MP4.read_bytes()


def test_generated_media_are_real_files():
    with wave.open(io.BytesIO(smoke.make_wav())) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.getnframes() == 24000
    for data, kind in ((smoke.make_mp4(), "generated"), (BUNDLED, "bundled")):
        with av.open(io.BytesIO(data)) as c:
            video = c.streams.video[0]
            audio = c.streams.audio[0]
            frames = sum(1 for _ in c.decode(video=0))
            v_s = float(video.duration * video.time_base)
            a_s = float(audio.duration * audio.time_base)
        assert frames == 16
        if kind == "generated":
            # An ordinary clip: AAC as long as the picture, its priming past it
            # (v0.5.23 fails the whole server on it; patch 0010).
            assert v_s <= a_s < v_s + 0.2, (v_s, a_s)
        else:
            # The bundled clip (no PyAV) stays inside the last 1-second grid.
            assert v_s - 1.0 < a_s < v_s, (v_s, a_s)


def test_video_check_falls_back_to_the_bundled_clip_without_pyav(monkeypatch):
    def no_pyav():
        raise ImportError("No module named 'av'")

    monkeypatch.setattr(smoke, "make_mp4", no_pyav)
    data, source = smoke.video_clip()
    assert source == "bundled" and data == smoke.BUNDLED_MP4.read_bytes()
    with StandInServer() as server:
        detail = smoke.Smoke(server.url, timeout=10).check_video()
    assert detail and server.media["chat_video_frames"] == 16
