"""/v1/audio/transcriptions for MiMo-V2.5 (MiMoV2ForCausalLM): its own adapter.

Without it the model falls back to WhisperAdapter, whose sampling params carry
Whisper-only keys that SamplingParams rejects (an HTTP 500), and long audio is cut
into Whisper's 30 s windows. The MiMo-V2.5 adapter is the MiMo-V2-ASR one with its
own token budget (448 per started 30 s), the whole clip in one request.

The end-to-end tests run SGLang's own FastAPI app (the real route and
OpenAIServingTranscription) under uvicorn on 127.0.0.1, the real MiMo processor
(built without a checkpoint: a tiny byte-level BPE tokenizer trained on the spot,
nothing downloaded), the real TokenizerManager request path and the real
SamplingParams; only the engine behind the tokenizer manager is a stand-in that
returns a canned transcript.
"""

import io
import json
import math
import re
import socket
import sys
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from sglang.srt.entrypoints.openai.protocol import TranscriptionRequest
from sglang.srt.entrypoints.openai.transcription_adapters import resolve_adapter
from sglang.srt.sampling.sampling_params import SamplingParams
from sglang.test.ci.ci_register import register_cpu_ci
from sglang.test.test_utils import published_topology

register_cpu_ci(est_time=30, suite="base-a-test-cpu")


MIMO_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|video_start|>",
    "<|video_end|>",
    "<|mimo_audio_start|>",
    "<|audio_pad|>",
    "<|mimo_audio_end|>",
    "<|sosp|>",
    "<|empty|>",
    "<|eosp|>",
]


AUDIO_PLACEHOLDER = "<|mimo_audio_start|><|audio_pad|><|mimo_audio_end|>"


_CORPUS = [
    "Transcribe the audio. The quick brown fox jumps over the lazy dog.",
    "hello world 00:00 00:01 00:02 00:03 12:34 audio video image text",
    "MiMo speech recognition in one request, then the transcript.",
]


_TOKENIZER = None


def make_tokenizer():
    """A small real fast tokenizer (byte-level BPE) with MiMo's special tokens."""
    global _TOKENIZER
    if _TOKENIZER is not None:
        return _TOKENIZER
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=MIMO_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    _TOKENIZER = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=MIMO_SPECIAL_TOKENS[1:],
    )
    return _TOKENIZER


def token_id(tokenizer, token: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    assert tid is not None and tid != tokenizer.unk_token_id, token
    return tid


def make_mimo_processor(tokenizer=None):
    """The real ``MiMoV2Processor`` (MiMo-V2.5 omni), as ``__init__`` would set it
    up for a checkpoint whose processor_config names the tokens above."""
    from sglang.srt.multimodal.processors.base_processor import (
        MultimodalSpecialTokens,
    )
    from sglang.srt.multimodal.processors.mimo_v2 import (
        MiMoProcessor,
        MiMoV2Processor,
    )

    tokenizer = tokenizer or make_tokenizer()
    ids = {t: token_id(tokenizer, t) for t in MIMO_SPECIAL_TOKENS}
    unit = 14 * 2  # patch_size * spatial_merge_size
    proc = object.__new__(MiMoV2Processor)
    proc._tokenizer = tokenizer
    proc.skip_tokenizer_init = False
    proc.io_executor = ThreadPoolExecutor(max_workers=2)
    proc.audio_sample_rate = 24000
    proc.IM_START_TOKEN_ID = ids["<|vision_start|>"]
    proc.IM_END_TOKEN_ID = ids["<|vision_end|>"]
    proc.AUDIO_START_TOKEN_ID = ids["<|mimo_audio_start|>"]
    proc.AUDIO_END_TOKEN_ID = ids["<|mimo_audio_end|>"]
    proc.mimo_processor = MiMoProcessor(
        tokenizer=tokenizer,
        patch_size=14,
        image_min_pixels=4 * unit * unit,
        image_max_pixels=64 * unit * unit,
        video_min_pixels=4 * unit * unit,
        video_max_pixels=16 * unit * unit,
        video_total_max_pixels=256 * unit * unit,
        fps=2,
        max_frames=256,
        min_frames=4,
        video_audio_interleave_length=0,
        audio_sampling_rate=24000,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        audio_token_id=ids["<|audio_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        audio_start_token_id=ids["<|mimo_audio_start|>"],
        audio_end_token_id=ids["<|mimo_audio_end|>"],
        video_start_token_id=ids["<|video_start|>"],
        video_end_token_id=ids["<|video_end|>"],
        pad_token_id=tokenizer.pad_token_id,
        rope_type="rope",
        use_video_timestamps=True,
        video_process_num_threads=1,
    )
    proc._processor = proc.mimo_processor
    proc.AUDIO_TOKEN_REGEX = re.compile(
        r"<\|mimo_audio_start\|>(?:<\|audio_pad\|>)+<\|mimo_audio_end\|>"
    )
    proc.mm_tokens = MultimodalSpecialTokens(
        image_token="<|vision_start|><|image_pad|><|vision_end|>",
        image_token_id=ids["<|image_pad|>"],
        image_token_regex=re.compile(
            r"<\|vision_start\|>(?:<\|image_pad\|>)+<\|vision_end\|>"
        ),
        video_token="<|vision_start|><|video_pad|><|vision_end|>",
        video_token_regex=re.compile(
            r"<\|vision_start\|>(?:<\|video_pad\|>)+<\|vision_end\|>"
        ),
        video_token_id=ids["<|video_pad|>"],
        audio_token=AUDIO_PLACEHOLDER,
        audio_token_id=ids["<|audio_pad|>"],
        audio_token_regex=proc.AUDIO_TOKEN_REGEX,
    ).build(proc._processor)
    return proc


def speechlike_wave(seconds: float, sr: int = 16000) -> np.ndarray:
    """A deterministic tone with a syllable-rate envelope, float32 in [-1, 1]."""
    t = np.arange(int(seconds * sr)) / sr
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t))
    carrier = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)
    return (0.3 * envelope * carrier).astype(np.float32)


def wav_bytes(seconds: float, sr: int = 16000) -> bytes:
    """A real 16-bit PCM mono WAV file."""
    pcm = (speechlike_wave(seconds, sr) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


CANNED_TRANSCRIPT = "the quick brown fox jumps over the lazy dog"


def make_stand_in_tokenizer_manager(processor, architectures):
    """A TokenizerManager whose real ``_tokenize_one_request`` runs unchanged.

    It decides what the multimodal processor is handed (``input_text or
    input_ids``) and calls the real MiMo processor. Only what lies past the
    processor is stood in: context-length checks and the scheduler. The stand-in
    ``_create_tokenized_object`` builds the real ``SamplingParams`` from the
    request's dict exactly as the real one does (constructor, ``normalize``,
    ``verify``), and ``generate_request`` answers with a canned transcript.
    """
    from sglang.srt.managers.tokenizer_manager import TokenizerManager
    from sglang.srt.sampling.sampling_params import SamplingParams

    class StandInTokenizerManager(TokenizerManager):
        """Stand-in for the engine side: no scheduler, no model, no GPU."""

        def _validate_one_request(self, obj, input_ids):
            pass  # context-length checks need the model's limits

        def _create_tokenized_object(
            self, obj, input_text, input_ids, input_embeds=None, mm_inputs=None, *a
        ):
            sampling_params = SamplingParams(**dict(obj.sampling_params))
            sampling_params.normalize(self.tokenizer)
            sampling_params.verify(self.model_config.vocab_size)
            return SimpleNamespace(
                input_ids=list(input_ids),
                mm_inputs=mm_inputs,
                sampling_params=sampling_params,
            )

        async def generate_request(self, obj, request=None):
            obj.normalize_batch_and_arguments()
            tokenized = await self._tokenize_one_request(obj)
            with self._lock:
                self.requests.append(tokenized)
            output_ids = self.tokenizer.encode(CANNED_TRANSCRIPT)
            yield {
                "text": CANNED_TRANSCRIPT,
                "output_ids": output_ids,
                "meta_info": {
                    "id": obj.rid,
                    "finish_reason": {"type": "stop"},
                    "prompt_tokens": len(tokenized.input_ids),
                    "completion_tokens": len(output_ids),
                },
            }

        def create_abort_task(self, obj):
            return None

    tokenizer = processor._tokenizer
    tm = object.__new__(StandInTokenizerManager)
    tm.tokenizer = tokenizer
    tm.mm_processor = processor
    tm.max_req_input_len = 1 << 20
    tm.preferred_sampling_params = None
    tm.model_config = SimpleNamespace(
        hf_config=SimpleNamespace(architectures=list(architectures)),
        vocab_size=len(tokenizer),
    )
    tm.server_args = None
    tm.request_logger = SimpleNamespace(log_requests=False, log_requests_level=0)
    tm.rid_to_state = {}  # nothing in flight: the real abort_request is a no-op
    tm.requests = []
    tm._lock = threading.Lock()
    return tm


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


def test_mimo_v2_resolves_to_its_own_adapter():
    adapter = resolve_adapter([MIMO])
    assert type(adapter).__module__.endswith("transcription_adapters.mimo_v2")


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


def test_resolution_does_not_depend_on_registration_order(monkeypatch):
    from sglang.srt.entrypoints.openai.transcription_adapters import base

    forward = resolve_adapter([MIMO]), resolve_adapter(["MiMoV2ASRForCausalLM"])
    reordered = dict(reversed(list(base._ADAPTER_REGISTRY.items())))
    monkeypatch.setattr(base, "_ADAPTER_REGISTRY", reordered)
    backward = resolve_adapter([MIMO]), resolve_adapter(["MiMoV2ASRForCausalLM"])
    assert [type(a) for a in forward] == [type(a) for a in backward]
    assert type(forward[0]) is not type(forward[1])
    assert type(forward[0]).__module__.endswith("transcription_adapters.mimo_v2")


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


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
