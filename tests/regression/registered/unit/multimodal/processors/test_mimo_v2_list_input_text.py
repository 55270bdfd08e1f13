"""MiMo processors: the prompt shapes the server hands them.

``TokenizerManager._tokenize_one_request`` passes ``input_text or input_ids`` to
the multimodal processor, so an audio-only request with empty text (every
``/v1/audio/transcriptions`` request) reaches the MiMo-V2.5 (MiMoV2Processor) and
MiMo-V2-ASR (MiMoV2ASRProcessor) processors as ``[]``; they ran ``regex.search``
on it and raised ``TypeError`` (an HTTP 500). A list of str is joined, a list of
token ids decoded with the tokenizer, anything else is a clear ``ValueError``.

Everything is real SGLang code built without a checkpoint: a tiny byte-level BPE
tokenizer trained on the spot (nothing is downloaded), the real processors built
with ``object.__new__`` and only the attributes their request path reads, real WAV
files. The HTTP tests run SGLang's own FastAPI app under uvicorn on 127.0.0.1 with
the real TokenizerManager request path; only the engine behind it is a stand-in
that returns a canned transcript.
"""

import asyncio
import io
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

from sglang.srt.managers.io_struct import GenerateReqInput
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


ASR_AUDIO_PLACEHOLDER = "<|sosp|><|empty|><|eosp|>"


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


def make_asr_processor(tokenizer=None):
    """The real ``MiMoV2ASRProcessor``, set up as its ``__init__`` does."""
    from sglang.srt.multimodal.processors.base_processor import (
        MultimodalSpecialTokens,
    )
    from sglang.srt.multimodal.processors.mimo_audio import MiMoAudioPipeline
    from sglang.srt.multimodal.processors.mimo_v2_asr import MiMoV2ASRProcessor

    tokenizer = tokenizer or make_tokenizer()
    proc = object.__new__(MiMoV2ASRProcessor)
    proc._processor = tokenizer
    proc._tokenizer = tokenizer
    proc.tokenizer = tokenizer
    proc.skip_tokenizer_init = False
    proc.io_executor = ThreadPoolExecutor(max_workers=2)
    proc.audio_pipeline = MiMoAudioPipeline(
        audio_token_id=proc._resolve_special_token_id(proc.AUDIO_PAD_TOKEN),
        audio_start_token_id=proc._resolve_special_token_id(proc.AUDIO_START_TOKEN),
        audio_end_token_id=proc._resolve_special_token_id(proc.AUDIO_END_TOKEN),
        audio_sampling_rate=24000,
    )
    proc.mm_tokens = MultimodalSpecialTokens(
        audio_token=ASR_AUDIO_PLACEHOLDER,
        audio_token_id=proc.audio_token_id,
        audio_token_regex=proc.AUDIO_REGEX,
    ).build(tokenizer)
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


WAV = wav_bytes(2.0)


@pytest.fixture(scope="module")
def runtime():
    with published_topology("test"):
        yield


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def mimo(tok):
    return make_mimo_processor(tok)


@pytest.fixture(scope="module")
def asr(tok):
    return make_asr_processor(tok)


def _run_async(proc, input_text, audio=WAV):
    request = GenerateReqInput(text="", audio_data=[audio], modalities=["audio"])
    return asyncio.run(
        proc.process_mm_data_async(
            image_data=None,
            audio_data=[audio],
            input_text=input_text,
            request_obj=request,
        )
    )


def _audio_span(input_ids, start_id, pad_id, end_id):
    """(index of the start token, number of pad tokens) of the one audio span."""
    assert input_ids.count(start_id) == 1 and input_ids.count(end_id) == 1
    start = input_ids.index(start_id)
    end = input_ids.index(end_id)
    assert set(input_ids[start + 1 : end]) == {pad_id}
    return start, end - start - 1


def _mimo_ids(tok):
    return (
        token_id(tok, "<|mimo_audio_start|>"),
        token_id(tok, "<|audio_pad|>"),
        token_id(tok, "<|mimo_audio_end|>"),
    )


def _text_ids_before_audio(out, tok):
    start, _ = _audio_span(out.input_ids, *_mimo_ids(tok))
    return out.input_ids[:start]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def asr_server(runtime, tok):
    """SGLang's HTTP app serving MiMo-V2-ASR (MiMoV2ASRForCausalLM), whose
    transcription adapter v0.5.23 already has, on 127.0.0.1."""
    import uvicorn

    from sglang.srt.entrypoints.http_server import app
    from sglang.srt.entrypoints.openai.serving_transcription import (
        OpenAIServingTranscription,
    )

    tm = make_stand_in_tokenizer_manager(
        make_asr_processor(tok), ["MiMoV2ASRForCausalLM"]
    )
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
        yield client, tm
    srv.should_exit = True
    thread.join(timeout=10)


def _post(client, audio, **form):
    return client.post(
        "/v1/audio/transcriptions",
        files={"file": ("clip.wav", audio, "audio/wav")},
        data={"model": "mimo-v2.5", **form},
    )


@pytest.mark.parametrize("empty", [[], None], ids=["empty-list", "none"])
def test_empty_prompt_gets_the_audio_placeholder(runtime, tok, mimo, empty):
    out = _run_async(mimo, empty)
    start, n_audio = _audio_span(out.input_ids, *_mimo_ids(tok))
    assert start == 0 and n_audio == 13  # ceil(2.0 s * 6.25 tokens/s)
    assert len(out.mm_items) == 1 and out.mm_items[0].offsets == [(1, n_audio)]


def test_list_of_str_is_joined(runtime, tok, mimo):
    out = _run_async(mimo, ["Transcribe ", "the audio. ", AUDIO_PLACEHOLDER])
    assert _text_ids_before_audio(out, tok) == tok.encode("Transcribe the audio. ")


def test_list_of_token_ids_is_decoded_with_the_tokenizer(runtime, tok, mimo):
    ids = tok.encode(f"Transcribe the audio. {AUDIO_PLACEHOLDER}")
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    out = _run_async(mimo, ids)
    # The placeholder given as ids is found (not a second one prepended).
    assert _text_ids_before_audio(out, tok) == tok.encode("Transcribe the audio. ")


@pytest.mark.parametrize(
    "bad",
    [{"text": "hi"}, 3.5, ["text", 7], [[1, 2]], [True, False]],
    ids=["dict", "float", "mixed-list", "nested-list", "bools"],
)
def test_other_shapes_raise_a_clear_value_error(runtime, mimo, bad):
    with pytest.raises(ValueError, match="str, a list of str or a list of token ids"):
        _run_async(mimo, bad)


def test_sync_process_mm_data_accepts_token_ids(runtime, tok, mimo):
    audio = speechlike_wave(1.0, 24000)
    for prompt in ([], None, tok.encode("hello world")):
        ret = mimo.process_mm_data(input_text=prompt, audios=[audio])
        ids = ret["input_ids"].tolist()
        start, n_audio = _audio_span(ids, *_mimo_ids(tok))
        assert n_audio == 7  # ceil(1.0 s * 6.25)
    assert ids[start + n_audio + 2 :] == tok.encode("hello world")


def test_asr_processor_accepts_the_empty_token_list(runtime, tok, asr):
    out = _run_async(asr, [])
    start_id, pad_id, end_id = (
        token_id(tok, "<|sosp|>"),
        token_id(tok, "<|empty|>"),
        token_id(tok, "<|eosp|>"),
    )
    start, n_audio = _audio_span(out.input_ids, start_id, pad_id, end_id)
    assert start == 0 and n_audio == 13


def test_asr_processor_decodes_token_ids(runtime, tok, asr):
    ids = tok.encode(f"{ASR_AUDIO_PLACEHOLDER}hello world")
    out = _run_async(asr, ids)
    assert out.input_ids[-len(tok.encode("hello world")) :] == tok.encode("hello world")
    assert out.input_ids.count(token_id(tok, "<|sosp|>")) == 1


@pytest.mark.parametrize(
    "payload",
    [b"", b"this is a text file, not audio\n" * 64],
    ids=["empty-file", "not-audio"],
)
def test_bad_audio_is_a_client_error(asr_server, payload):
    client, _ = asr_server
    resp = _post(client, payload)
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    assert "audio" in resp.json()["message"].lower()


def test_mimo_v2_asr_transcription_over_http(asr_server, tok):
    """MiMo-V2-ASR has its transcription adapter but hits the same list in its
    processor."""
    client, tm = asr_server
    before = len(tm.requests)
    resp = _post(client, WAV, response_format="text")
    assert resp.status_code == 200, resp.text
    assert resp.text == CANNED_TRANSCRIPT
    (engine_request,) = tm.requests[before:]
    # 2 s = 201 mel frames (hop 240 at 24 kHz) -> 13 audio tokens
    assert engine_request.input_ids.count(token_id(tok, "<|empty|>")) == 13


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
