"""Patch 0004 (with 0003): /v1/audio/transcriptions for MiMo-V2.5 (MiMoV2ForCausalLM).

On v0.5.23 the model falls back to WhisperAdapter, whose sampling params carry
Whisper-only keys that SamplingParams rejects, and the MiMo processor is handed
``[]`` (patch 0003). The end-to-end tests run SGLang's own FastAPI app (the real
route and OpenAIServingTranscription) under uvicorn on 127.0.0.1, the real MiMo
processor, the real TokenizerManager request path and the real SamplingParams;
only the engine behind the tokenizer manager is a stand-in that returns a canned
transcript.
"""

import json
import math
import socket
import threading
import time

import httpx
import pytest
from mimo_helpers import (
    CANNED_TRANSCRIPT,
    make_asr_processor,
    make_mimo_processor,
    make_stand_in_tokenizer_manager,
    make_tokenizer,
    token_id,
    wav_bytes,
)
from sglang.srt.entrypoints.openai.protocol import TranscriptionRequest
from sglang.srt.entrypoints.openai.transcription_adapters import resolve_adapter
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.test.test_utils import published_topology

PATCH = "0004-transcription-mimo-v2-adapter.patch"
PATCH_0003 = "0003-mimo-v2-coerce-list-input-text.patch"
MIMO = "MiMoV2ForCausalLM"


def _request(duration_s=3.0, language=None, response_format="json"):
    return TranscriptionRequest(
        language=language,
        response_format=response_format,
        temperature=0.0,
        audio_duration_s=duration_s,
    )


def _engine_params(adapter, request):
    """The params OpenAIServingTranscription sends for this request."""
    if request.language is None and adapter.supports_language_detection:
        return adapter.build_fused_autodetect_params(request)
    return adapter.build_sampling_params(request)


# -- adapter resolution (substring matching over the architectures) ----------


@pytest.mark.fixes(PATCH)
def test_mimo_v2_resolves_to_its_own_adapter():
    adapter = resolve_adapter([MIMO])
    assert type(adapter).__module__.endswith("transcription_adapters.mimo_v2")


@pytest.mark.fixes(PATCH)
def test_omni_adapter_is_the_asr_adapter_with_its_own_audio_length():
    """The omni model takes requests as MiMo-V2-ASR does: the adapter inherits
    MiMoV2ASRAdapter and overrides only the token budget."""
    from sglang.srt.entrypoints.openai.transcription_adapters import MiMoV2ASRAdapter

    omni, asr = resolve_adapter([MIMO]), resolve_adapter(["MiMoV2ASRForCausalLM"])
    assert isinstance(omni, MiMoV2ASRAdapter) and type(omni) is not type(asr)
    assert type(omni).build_verbose_response is MiMoV2ASRAdapter.build_verbose_response
    request = _request(75.0, "en")
    want = dict(asr.build_sampling_params(request), max_new_tokens=448 * 3)
    assert omni.build_sampling_params(request) == want
    assert omni.max_audio_clip_s is None  # the whole clip in one request


@pytest.mark.parametrize(
    "architecture, module",
    [
        ("MiMoV2ASRForCausalLM", "mimo_v2_asr"),
        ("WhisperForConditionalGeneration", "whisper"),
        ("Qwen3ASRForConditionalGeneration", "qwen3_asr"),
        ("MiMoV2FlashForCausalLM", "whisper"),  # text-only alias: unchanged
        ("LlamaForCausalLM", "whisper"),
    ],
)
def test_other_architectures_keep_their_adapter(architecture, module):
    adapter = resolve_adapter([architecture])
    assert type(adapter).__module__.endswith(f"transcription_adapters.{module}")


@pytest.mark.fixes(PATCH)
def test_resolution_does_not_depend_on_registration_order(monkeypatch):
    from sglang.srt.entrypoints.openai.transcription_adapters import base

    forward = resolve_adapter([MIMO]), resolve_adapter(["MiMoV2ASRForCausalLM"])
    reordered = dict(reversed(list(base._ADAPTER_REGISTRY.items())))
    monkeypatch.setattr(base, "_ADAPTER_REGISTRY", reordered)
    backward = resolve_adapter([MIMO]), resolve_adapter(["MiMoV2ASRForCausalLM"])
    assert [type(a) for a in forward] == [type(a) for a in backward]
    assert type(forward[0]) is not type(forward[1])
    assert type(forward[0]).__module__.endswith("transcription_adapters.mimo_v2")


# -- what the adapter sends to the engine -------------------------------------


@pytest.mark.fixes(PATCH)
@pytest.mark.parametrize("language", [None, "en", "zh", "not-a-language"])
@pytest.mark.parametrize("duration_s", [3.0, 60.0])
def test_sampling_params_are_accepted_by_mimo_sampling_params(language, duration_s):
    adapter = resolve_adapter([MIMO])
    params = _engine_params(adapter, _request(duration_s, language))
    sp = SamplingParams(**params)  # TypeError on any unknown key
    sp.normalize(None)
    sp.verify(vocab_size=152064)
    assert sp.regex is None and sp.skip_special_tokens is True
    assert sp.max_new_tokens >= 448 * math.ceil(duration_s / 30)


@pytest.mark.fixes(PATCH)
def test_no_whisper_chunking_or_timestamp_parsing():
    adapter = resolve_adapter([MIMO])
    assert adapter.max_audio_clip_s is None
    assert adapter.supports_language_detection is False
    assert adapter.supports_chunked_streaming is False
    # Ids past Whisper's timestamp base are ordinary text ids for MiMo: the
    # verbose answer is the text as decoded, with no invented segments.
    request = _request(12.5, "de", "verbose_json")
    verbose = adapter.build_verbose_response(
        request, "hallo welt", {"output_ids": [50365, 50400, 70000]}, None, None
    )
    assert verbose.text == "hallo welt" and verbose.segments == []
    assert verbose.language == "de" and verbose.duration == 12.5


# -- end to end through SGLang's HTTP layer -----------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    import uvicorn
    from sglang.srt.entrypoints.http_server import app
    from sglang.srt.entrypoints.openai.serving_transcription import (
        OpenAIServingTranscription,
    )

    with published_topology("test"):
        tok = make_tokenizer()
        tm = make_stand_in_tokenizer_manager(make_mimo_processor(tok), [MIMO])
        app.state.openai_serving_transcription = OpenAIServingTranscription(tm)
        port = _free_port()
        srv = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, lifespan="off", log_level="error"
            )
        )
        thread = threading.Thread(target=srv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not srv.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=120, trust_env=False
        ) as client:
            yield client, tm, tok, app
        srv.should_exit = True
        thread.join(timeout=10)


WAV_3S = wav_bytes(3.0)


def _post(client, audio, **form):
    return client.post(
        "/v1/audio/transcriptions",
        files={"file": ("clip.wav", audio, "audio/wav")},
        data={"model": "mimo-v2.5", **form},
    )


def _audio_tokens(tok, input_ids):
    return input_ids.count(token_id(tok, "<|audio_pad|>"))


@pytest.mark.fixes(PATCH)
@pytest.mark.parametrize("language", [None, "zh"])
@pytest.mark.parametrize("response_format", ["json", "text", "verbose_json"])
def test_transcription_over_http(server, response_format, language):
    client, tm, tok, _ = server
    before = len(tm.requests)
    form = {"response_format": response_format}
    if language:
        form["language"] = language
    resp = _post(client, WAV_3S, **form)
    assert resp.status_code == 200, resp.text
    if response_format == "text":
        assert resp.headers["content-type"].startswith("text/plain")
        assert resp.text == CANNED_TRANSCRIPT
    elif response_format == "json":
        assert resp.json() == {
            "text": CANNED_TRANSCRIPT,
            "usage": {"type": "duration", "seconds": 3},
        }
    else:
        from openai.types.audio import TranscriptionVerbose

        body = resp.json()
        verbose = TranscriptionVerbose.model_validate(body)  # OpenAI SDK's shape
        assert verbose.text == CANNED_TRANSCRIPT
        assert verbose.duration == pytest.approx(3.0)
        # A requested language is reported back unchanged; none means "auto".
        assert verbose.language == (language or "auto")
        assert verbose.segments == []  # MiMo emits no timestamp tokens
    # One engine request holding the whole clip, with MiMo's own params.
    (engine_request,) = tm.requests[before:]
    # 3 s = 301 mel frames (hop 240 at 24 kHz) -> 19 audio tokens
    assert _audio_tokens(tok, engine_request.input_ids) == 19
    assert engine_request.sampling_params.max_new_tokens == 448


@pytest.mark.fixes(PATCH)
@pytest.mark.parametrize("language", [None, "en"])
def test_sixty_second_clip_is_one_request(server, language):
    client, tm, tok, _ = server
    before = len(tm.requests)
    form = {"response_format": "verbose_json"}
    if language:
        form["language"] = language
    resp = _post(client, wav_bytes(60.0), **form)
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"] == CANNED_TRANSCRIPT
    assert resp.json()["duration"] == pytest.approx(60.0)
    (engine_request,) = tm.requests[before:]  # no 30 s Whisper chunks
    # 60 s = 6001 mel frames (hop 240 at 24 kHz) -> 376 audio tokens
    assert _audio_tokens(tok, engine_request.input_ids) == 376
    assert engine_request.sampling_params.max_new_tokens == 2 * 448


@pytest.mark.fixes(PATCH)
def test_streaming_transcription_over_http(server):
    client, tm, tok, _ = server
    resp = _post(client, WAV_3S, stream="true")
    assert resp.status_code == 200, resp.text
    events = [
        line[len("data: ") :]
        for line in resp.text.splitlines()
        if line.startswith("data: ")
    ]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == CANNED_TRANSCRIPT
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.fixes(PATCH_0003)
@pytest.mark.parametrize(
    "payload",
    [b"", b"this is a text file, not audio\n" * 64],
    ids=["empty-file", "not-audio"],
)
def test_bad_audio_is_a_client_error(server, payload):
    client, _, _, _ = server
    resp = _post(client, payload)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert "audio" in resp.json()["message"].lower()


def test_unknown_response_format_is_a_client_error(server):
    client, _, _, _ = server
    resp = _post(client, WAV_3S, response_format="srt")
    assert resp.status_code == 400
    assert "verbose_json" in resp.json()["error"]["message"]


@pytest.mark.fixes(PATCH_0003)
def test_mimo_v2_asr_transcription_over_http(server, monkeypatch):
    """MiMo-V2-ASR already has its adapter (#26278) but hits the same list in
    its processor: on v0.5.23 its transcriptions fail too."""
    from sglang.srt.entrypoints.openai.serving_transcription import (
        OpenAIServingTranscription,
    )

    client, _, tok, app = server
    tm = make_stand_in_tokenizer_manager(
        make_asr_processor(tok), ["MiMoV2ASRForCausalLM"]
    )
    monkeypatch.setattr(
        app.state, "openai_serving_transcription", OpenAIServingTranscription(tm)
    )
    resp = _post(client, WAV_3S, response_format="text")
    assert resp.status_code == 200, resp.text
    assert resp.text == CANNED_TRANSCRIPT
    (engine_request,) = tm.requests
    assert engine_request.input_ids.count(token_id(tok, "<|empty|>")) == 19
