"""MiMo-V2.5 audio under attention data parallelism, through the real server (0006).

TP 4 with attention DP 2 (attention TP 2) and the multimodal encoder data-parallel, the
shape of the MiMo-V2.5 8 x H200 recipe at a quarter of the size, on the CPU: four ranks,
collectives over gloo. On v0.5.23 the audio encoder's output projection all-reduces over
the full TP group (4 ranks) while only the two ranks of one DP group run it, so the
first request with audio takes the server down (gloo: size mismatch; NCCL hangs on GPUs,
sglang#37059). With 0006 it reduces over the attention-TP group.
"""

import base64

import media
import pytest

P0006 = "0006-mimo-audio-reduce-over-attn-tp-group.patch"
WAV = media.wav(3.0)


def audio_chat(server, dp_rank):
    url = "data:audio/wav;base64," + base64.b64encode(WAV).decode()
    return server.post_json(
        "/v1/chat/completions",
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": [
                {"type": "audio_url", "audio_url": {"url": url}},
                {"type": "text", "text": "What do you hear?"},
            ]}],
            "max_tokens": 4,
            "temperature": 0,
            "routed_dp_rank": dp_rank,
        },
        timeout=150,
    )  # fmt: skip


def text_chat(server, dp_rank):
    return server.post_json(
        "/v1/chat/completions",
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": "hello world"}],
            "max_tokens": 4,
            "routed_dp_rank": dp_rank,
        },
        timeout=150,
    )


def test_text_on_both_dp_ranks(omni_dp):
    for rank in (0, 1):
        status, body = text_chat(omni_dp, rank)
        assert status == 200, body


@pytest.mark.fixes(P0006, unpatched="no response to POST /v1/chat/completions")
@pytest.mark.parametrize("dp_rank", [0, 1])
def test_audio_on_one_dp_rank_then_healthy(omni_dp, dp_rank):
    status, body = audio_chat(omni_dp, dp_rank)
    assert status == 200, body
    assert body["usage"]["prompt_tokens_details"]["audio_tokens"] > 0
    assert omni_dp.healthy()
    for rank in (0, 1):
        status, body = text_chat(omni_dp, rank)
        assert status == 200, body
