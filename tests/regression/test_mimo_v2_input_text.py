"""Patch 0003: the MiMo processors accept the prompt shapes the server hands them.

``TokenizerManager._tokenize_one_request`` passes ``input_text or input_ids`` to
the multimodal processor, so an audio-only request with empty text (every
``/v1/audio/transcriptions`` request) reaches it as ``[]``. On v0.5.23 both MiMo
processors run ``regex.search`` on it and raise ``TypeError`` (an HTTP 500).
"""

import asyncio

import pytest
from mimo_helpers import (
    ASR_AUDIO_PLACEHOLDER,
    AUDIO_PLACEHOLDER,
    make_asr_processor,
    make_mimo_processor,
    make_stand_in_tokenizer_manager,
    make_tokenizer,
    speechlike_wave,
    token_id,
    wav_bytes,
)
from sglang.srt.managers.io_struct import GenerateReqInput
from sglang.test.test_utils import published_topology

PATCH = "0003-mimo-v2-coerce-list-input-text.patch"
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


# -- what the server hands the processor (holds before and after the patch) --


@pytest.mark.parametrize(
    "architecture, processor_factory",
    [
        ("MiMoV2ForCausalLM", make_mimo_processor),
        ("MiMoV2ASRForCausalLM", make_asr_processor),
    ],
)
def test_tokenizer_manager_hands_the_processor_a_list(
    runtime, tok, architecture, processor_factory
):
    """The real TokenizerManager code decides the processor input: for the
    transcription request (text "", audio) it is the empty list of token ids,
    for the omni and the ASR architecture alike."""
    seen = []

    class Recorded(Exception):
        pass

    proc = processor_factory(tok)

    async def record(*, input_text, **kwargs):
        seen.append(input_text)
        raise Recorded

    proc.process_mm_data_async = record
    tm = make_stand_in_tokenizer_manager(proc, [architecture])
    obj = GenerateReqInput(
        text="",  # as OpenAIServingTranscription._convert_to_internal_request
        audio_data=WAV,
        sampling_params={"temperature": 0.0},
        modalities=["audio"],
    )
    with pytest.raises(Recorded):
        asyncio.run(tm.generate_request(obj).__anext__())
    assert seen == [[]] and isinstance(seen[0], list)


# -- MiMoV2Processor (MiMo-V2.5 omni) ------------------------------------------


def test_str_prompt_is_unchanged(runtime, tok, mimo):
    prompt = f"Transcribe the audio. {AUDIO_PLACEHOLDER}"
    out = _run_async(mimo, prompt)
    assert _text_ids_before_audio(out, tok) == tok.encode("Transcribe the audio. ")
    _, n_audio = _audio_span(out.input_ids, *_mimo_ids(tok))
    assert n_audio == 13  # 2.0 s at 25 Hz codes / group 4 = 12.5, rounded up


@pytest.mark.fixes(PATCH)
@pytest.mark.parametrize("empty", [[], None], ids=["empty-list", "none"])
def test_empty_prompt_gets_the_audio_placeholder(runtime, tok, mimo, empty):
    out = _run_async(mimo, empty)
    start, n_audio = _audio_span(out.input_ids, *_mimo_ids(tok))
    assert start == 0 and n_audio == 13  # ceil(2.0 s * 6.25 tokens/s)
    assert len(out.mm_items) == 1 and out.mm_items[0].offsets == [(1, n_audio)]


@pytest.mark.fixes(PATCH)
def test_list_of_str_is_joined(runtime, tok, mimo):
    out = _run_async(mimo, ["Transcribe ", "the audio. ", AUDIO_PLACEHOLDER])
    assert _text_ids_before_audio(out, tok) == tok.encode("Transcribe the audio. ")


@pytest.mark.fixes(PATCH)
def test_list_of_token_ids_is_decoded_with_the_tokenizer(runtime, tok, mimo):
    ids = tok.encode(f"Transcribe the audio. {AUDIO_PLACEHOLDER}")
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    out = _run_async(mimo, ids)
    # The placeholder given as ids is found (not a second one prepended).
    assert _text_ids_before_audio(out, tok) == tok.encode("Transcribe the audio. ")


@pytest.mark.fixes(PATCH)
@pytest.mark.parametrize(
    "bad",
    [{"text": "hi"}, 3.5, ["text", 7], [[1, 2]], [True, False]],
    ids=["dict", "float", "mixed-list", "nested-list", "bools"],
)
def test_other_shapes_raise_a_clear_value_error(runtime, mimo, bad):
    with pytest.raises(ValueError, match="str, a list of str or a list of token ids"):
        _run_async(mimo, bad)


@pytest.mark.fixes(PATCH)
def test_sync_process_mm_data_accepts_token_ids(runtime, tok, mimo):
    audio = speechlike_wave(1.0, 24000)
    for prompt in ([], None, tok.encode("hello world")):
        ret = mimo.process_mm_data(input_text=prompt, audios=[audio])
        ids = ret["input_ids"].tolist()
        start, n_audio = _audio_span(ids, *_mimo_ids(tok))
        assert n_audio == 7  # ceil(1.0 s * 6.25)
    assert ids[start + n_audio + 2 :] == tok.encode("hello world")


# -- MiMoV2ASRProcessor: the same list reaches it on its transcription path ----


@pytest.mark.fixes(PATCH)
def test_asr_processor_accepts_the_empty_token_list(runtime, tok, asr):
    out = _run_async(asr, [])
    start_id, pad_id, end_id = (
        token_id(tok, "<|sosp|>"),
        token_id(tok, "<|empty|>"),
        token_id(tok, "<|eosp|>"),
    )
    start, n_audio = _audio_span(out.input_ids, start_id, pad_id, end_id)
    assert start == 0 and n_audio == 13


@pytest.mark.fixes(PATCH)
def test_asr_processor_decodes_token_ids(runtime, tok, asr):
    ids = tok.encode(f"{ASR_AUDIO_PLACEHOLDER}hello world")
    out = _run_async(asr, ids)
    assert out.input_ids[-len(tok.encode("hello world")) :] == tok.encode("hello world")
    assert out.input_ids.count(token_id(tok, "<|sosp|>")) == 1


def test_asr_processor_str_prompt_is_unchanged(runtime, tok, asr):
    out = _run_async(asr, f"{ASR_AUDIO_PLACEHOLDER}hello world")
    assert out.input_ids[-len(tok.encode("hello world")) :] == tok.encode("hello world")
