"""MiMo-V2-Flash (text) through the real SGLang server of the tree under test.

Chat and greedy decoding must work on both trees (unmarked). What the model computes is
compared with the reference; 0012 (the sliding-window layers' keys) makes it match. MTP
(multi-layer EAGLE) is not started here: SGLang's speculative-decoding path on the CPU
calls sgl-kernel CPU ops no wheel ships (tests/engine/README.md names them).
"""

import pytest

P0012 = "0012-mimo-v2-sliding-window-keys.patch"


def test_text_chat(flash):
    status, body = flash.post_json(
        "/v1/chat/completions",
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 8,
            "temperature": 0,
        },
    )
    assert status == 200, body
    assert body["usage"]["completion_tokens"] > 0


def test_generate_is_deterministic_with_prompt_logprobs(flash):
    """Greedy decoding over the hybrid sliding-window layers (window 8) with a prompt
    longer than the window: two identical requests give identical tokens."""
    payload = {
        "text": "The quick brown fox jumps over the lazy dog. " * 3,
        "sampling_params": {"max_new_tokens": 8, "temperature": 0},
        "return_logprob": True,
        "logprob_start_len": 0,
    }
    outs = []
    for _ in range(2):
        flash.request("POST", "/flush_cache", b"")
        status, out = flash.post_json("/generate", payload)
        assert status == 200, out
        outs.append(out)
    assert outs[0]["meta_info"]["prompt_tokens"] > 16
    assert outs[0]["output_ids"] == outs[1]["output_ids"]
    assert len(outs[0]["meta_info"]["input_token_logprobs"]) == (
        outs[0]["meta_info"]["prompt_tokens"]
    )


@pytest.mark.fixes(P0012, unpatched="differ from the reference")
def test_text_logprobs_match_the_reference(flash):
    """The served text model's log-probabilities over the whole vocabulary at every
    prompt position against transformers' MiMoV2FlashForCausalLM on the checkpoint's
    own weights (tests/engine/text_parity.py says how, and the tolerance): the hybrid
    full / sliding-window layers with the released grouped-query ratios, partial
    rotary, the value scale, the sigmoid router with its correction bias."""
    import text_parity

    text_parity.check(flash, "flash")
