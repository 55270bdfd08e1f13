"""/v1/audio/transcriptions: what 0004 must not change (other models' adapters, the route).

Helpers and fixtures come from 0004's registered test file.
"""

import pytest
from test_transcription_mimo_v2_adapter import WAV_3S, _post, server  # noqa: F401

from sglang.srt.entrypoints.openai.transcription_adapters import resolve_adapter


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


def test_unknown_response_format_is_a_client_error(server):
    client, _, _, _ = server
    resp = _post(client, WAV_3S, response_format="srt")
    assert resp.status_code == 400
    assert "verbose_json" in resp.json()["error"]["message"]
