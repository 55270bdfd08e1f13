"""MiMo processors: what 0003 must not change (str prompts, what the server hands them).

Helpers and fixtures come from 0003's registered test file.
"""

import asyncio

import pytest
from test_mimo_v2_list_input_text import (  # noqa: F401  (fixtures)
    ASR_AUDIO_PLACEHOLDER,
    AUDIO_PLACEHOLDER,
    WAV,
    _audio_span,
    _mimo_ids,
    _run_async,
    _text_ids_before_audio,
    asr,
    make_asr_processor,
    make_mimo_processor,
    make_stand_in_tokenizer_manager,
    mimo,
    runtime,
    tok,
)

from sglang.srt.managers.io_struct import GenerateReqInput


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


def test_str_prompt_is_unchanged(runtime, tok, mimo):
    prompt = f"Transcribe the audio. {AUDIO_PLACEHOLDER}"
    out = _run_async(mimo, prompt)
    assert _text_ids_before_audio(out, tok) == tok.encode("Transcribe the audio. ")
    _, n_audio = _audio_span(out.input_ids, *_mimo_ids(tok))
    assert n_audio == 13  # 2.0 s at 25 Hz codes / group 4 = 12.5, rounded up


def test_asr_processor_str_prompt_is_unchanged(runtime, tok, asr):
    out = _run_async(asr, f"{ASR_AUDIO_PLACEHOLDER}hello world")
    assert out.input_ids[-len(tok.encode("hello world")) :] == tok.encode("hello world")
