"""Stand-in for a running SGLang server (no GPU or model here): real HTTP on 127.0.0.1.

It answers /health, /v1/models, /v1/chat/completions and /v1/audio/transcriptions in the
shapes SGLang v0.5.23's OpenAI endpoints use, after checking the request the way the real
server would need it (the audio part is a decodable WAV, the video part a decodable MP4,
the transcription upload a multipart form with a WAV). A ``faults`` set makes individual
endpoints fail the way a broken deployment does.
"""

import base64
import io
import json
import threading
import time
import wave
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "XiaomiMiMo/MiMo-V2.5"

# Fault names: what a broken server does for that check.
FAULTS = {
    "health_503",  # /health answers 503 (engine not ready / dead scheduler)
    "text_empty",  # chat answers 200 with an empty message
    "text_not_json",  # chat answers 200 with HTML
    "audio_500",  # chat with audio -> 500 (audio encoder crash)
    "transcription_typeerror",  # the v0.5.23 bug: 500 TypeError from the processor
    "transcription_no_text",  # 200 without a 'text' field
    "video_400",  # chat with video -> 400 error object
    "video_abort",  # 200 with finish_reason abort
    "video_hang",  # never answers in time
}


def _completion(text, finish_reason="stop"):
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "reasoning_content": None,
                    "tool_calls": None,
                },
                "logprobs": None,
                "finish_reason": finish_reason,
                "matched_stop": None,
            }
        ],
        "usage": {"prompt_tokens": 12, "total_tokens": 20, "completion_tokens": 8},
    }


def _error(message, status, etype="BadRequestError"):
    # SGLang's ErrorResponse shape.
    return status, {"object": "error", "message": message, "type": etype, "param": None,
                    "code": status}  # fmt: skip


def _decode_data_url(url, prefix):
    if not url.startswith(prefix):
        raise ValueError(f"expected a {prefix}... data URL")
    return base64.b64decode(url[len(prefix) :], validate=True)


def _check_wav(data):
    with wave.open(io.BytesIO(data)) as w:
        if w.getnframes() == 0:
            raise ValueError("empty WAV")
        return w.getnframes() / w.getframerate()


def _check_mp4(data):
    import av

    with av.open(io.BytesIO(data)) as c:
        kinds = {s.type for s in c.streams}
        frames = sum(1 for _ in c.decode(video=0))
    if "video" not in kinds or frames == 0:
        raise ValueError("no decodable video stream")
    return frames


class StandInServer:
    def __init__(self, faults=(), hang_seconds=5.0):
        unknown = set(faults) - FAULTS
        assert not unknown, unknown
        self.faults = set(faults)
        self.hang_seconds = hang_seconds
        self.requests = []  # (method, path)
        self.media = {}  # what the checks sent, decoded
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self):
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    # ----------------------------------------------------------------- routes
    def route(self, method, path, headers, body):
        self.requests.append((method, path))
        if method == "GET" and path == "/health":
            if "health_503" in self.faults:
                return 503, b""
            return 200, b""
        if method == "GET" and path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": MODEL, "object": "model",
                                                     "owned_by": "sglang"}]}  # fmt: skip
        if method == "POST" and path == "/v1/chat/completions":
            return self.chat(json.loads(body))
        if method == "POST" and path == "/v1/audio/transcriptions":
            return self.transcription(headers, body)
        return _error(f"no route {method} {path}", 404, "NotFoundError")

    def chat(self, req):
        if req.get("model") != MODEL:
            return _error(f"model {req.get('model')!r} not served", 400)
        content = req["messages"][-1]["content"]
        parts = (
            content
            if isinstance(content, list)
            else [{"type": "text", "text": content}]
        )
        kinds = {p["type"] for p in parts}
        try:
            if "audio_url" in kinds:
                (p,) = [p for p in parts if p["type"] == "audio_url"]
                self.media["chat_audio_s"] = _check_wav(
                    _decode_data_url(p["audio_url"]["url"], "data:audio/wav;base64,")
                )
                if "audio_500" in self.faults:
                    return _error(
                        "RuntimeError: audio encoder failed", 500, "InternalServerError"
                    )
                return 200, _completion("A steady beeping tone.")
            if "video_url" in kinds:
                (p,) = [p for p in parts if p["type"] == "video_url"]
                self.media["chat_video_frames"] = _check_mp4(
                    _decode_data_url(p["video_url"]["url"], "data:video/mp4;base64,")
                )
                if "video_hang" in self.faults:
                    time.sleep(self.hang_seconds)
                if "video_400" in self.faults:
                    return _error("Failed to load video", 400)
                if "video_abort" in self.faults:
                    return 200, _completion("", finish_reason="abort")
                return 200, _completion("A green bar moves down a blue square.")
        except (ValueError, KeyError, EOFError, wave.Error) as e:
            return _error(f"bad media: {e}", 400)
        if "text_empty" in self.faults:
            return 200, _completion("")
        if "text_not_json" in self.faults:
            return 200, b"<html>proxy error</html>"
        return 200, _completion("2 + 3 = 5.")

    def transcription(self, headers, body):
        ctype = headers.get("Content-Type", "")
        msg = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body
        )
        if not msg.is_multipart():
            return _error("expected multipart/form-data", 400)
        fields = {}
        for part in msg.iter_parts():
            fields[part.get_param("name", header="content-disposition")] = (
                part.get_payload(decode=True)
            )
        if "file" not in fields:
            return _error("field 'file' is required", 422)
        try:
            self.media["transcription_s"] = _check_wav(fields["file"])
        except (wave.Error, EOFError) as e:
            return _error(f"bad audio: {e}", 400)
        if "transcription_typeerror" in self.faults:
            return _error("TypeError: expected string or bytes-like object, got 'list'", 500,
                          "InternalServerError")  # fmt: skip
        if "transcription_no_text" in self.faults:
            return 200, {"usage": {"type": "duration", "seconds": 2}}
        return 200, {"text": "", "usage": {"type": "duration", "seconds": 2}}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, payload = server.route(method, self.path, self.headers, body)
                data = (
                    payload
                    if isinstance(payload, bytes)
                    else json.dumps(payload).encode()
                )
                self.send_response(status)
                ctype = (
                    "application/json"
                    if not isinstance(payload, bytes)
                    else "text/html"
                )
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def log_message(self, *a):
                pass

        return Handler
