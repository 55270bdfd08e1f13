"""What the served text model computes, against the reference.

``check(server)`` sends one prompt of token ids (longer than the sliding window, so the
windowed layers drop keys) to ``/generate`` and asks for the log-probability of every
vocabulary token at every prompt position (``token_ids_logprob``), and for a few greedy tokens decoded after it (the decode
path, with the window's keys in the KV cache). The same ids go
through the reference (``tests/regression/reference/mimo_v2_reference.py``
``text_model``: transformers' own ``MiMoV2FlashForCausalLM``, eager attention) loaded
with the checkpoint the server loaded, in float32 and in bf16.

Tolerance: the server runs in bf16, so its distance from the float32 reference (per
position the absolute difference of log-probabilities averaged over the vocabulary with
the reference's probabilities as weights, the largest over positions) may be at most
three times the reference's own bf16 distance. Measured on the CPU engine tier: flash
0.77x, omni 1.84x that distance, spread evenly over the positions (a wrong operation
shows at the positions it touches: past the window, in decode); a one-key window error
and a missing value scale are 20-40x away. The observable must also see a one-token error in the
sliding window and a missing ``attention_value_scale``: the float32 reference with
either change must be farther away than the tolerance, else the comparison could not
fail where it matters.
"""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# greedy tokens decoded after the prompt (the servers cap requests at 16)
NEW_TOKENS = 4


def reference_logprobs(model_dir, ids, **changes):
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(REPO / "tests" / "regression" / "reference"))
    from mimo_v2_reference import text_logprobs, text_model

    cfg = {**json.loads((model_dir / "config.json").read_text()), **changes}
    weights = load_file(model_dir / "model.safetensors")
    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        out[dtype] = text_logprobs(text_model(weights, cfg, dtype), ids)
    return out[torch.float32], out[torch.bfloat16]


def served_logprobs(server, ids, vocab, new_tokens):
    """The server's log-probabilities of every vocabulary token after each prompt
    position but the last (prefill) and for each of ``new_tokens`` greedy tokens
    (the last prompt position, then decode steps). Returns (rows, generated ids)."""
    import torch

    status, body = server.post_json(
        "/generate",
        {
            "input_ids": ids,
            "sampling_params": {"max_new_tokens": new_tokens, "temperature": 0},
            "return_logprob": True,
            "logprob_start_len": 0,
            "token_ids_logprob": list(range(vocab)),
        },
    )
    assert status == 200, body
    meta = body["meta_info"]
    # Row i of the prompt's holds the distribution of the token at position i,
    # computed from the logits at position i - 1; row 0 has none.
    prompt = meta["input_token_ids_logprobs"]
    assert len(prompt) == len(ids) and not prompt[0], [len(prompt), prompt[0]]
    rows = prompt[1:] + meta["output_token_ids_logprobs"]
    assert len(rows) == len(ids) - 1 + new_tokens, len(rows)
    out = torch.full((len(rows), vocab), float("nan"), dtype=torch.float64)
    for i, row in enumerate(rows):
        for logprob, token, *_ in row:
            out[i, token] = logprob
    assert not out.isnan().any(), "the server left out tokens"
    return out, body["output_ids"]


def distance(rows, ref):
    """Per position, the mean absolute log-probability difference weighted by the
    reference's probabilities (the tokens that matter; a token at 1e-9 may differ
    by more in bf16 without changing anything); the largest over positions."""
    return ((rows - ref).abs() * ref.exp()).sum(dim=1).max().item()


def check(server, label):
    cfg = json.loads((server.model / "config.json").read_text())
    window = cfg["sliding_window"]
    vocab = cfg["vocab_size"]
    # 5 windows' worth of token ids (no special tokens), a fixed pseudo-random walk
    ids = [(7 + 37 * i * i + 11 * i) % 390 + 3 for i in range(5 * window)]
    # decode steps: the tokens the server generated extend the sequence; the
    # reference reads them as prompt (one forward pass over the whole sequence)
    got, generated = served_logprobs(server, ids, vocab, NEW_TOKENS)
    full = ids + generated[:-1]
    ref, ref16 = reference_logprobs(server.model, full)
    err = distance(got, ref)
    floor = distance(ref16, ref)
    tol = 3 * floor
    # what the observable must be able to tell apart
    wrong = {
        f"window {window + 1}": dict(sliding_window=window + 1),
        "no attention_value_scale": dict(attention_value_scale=1.0),
    }
    distances = {}
    for name, change in wrong.items():
        other, _ = reference_logprobs(server.model, full, **change)
        distances[name] = distance(other, ref)
    print(
        f"[text {label}] {len(ids)} prompt tokens + {NEW_TOKENS} decoded, window "
        f"{window}: logprob error "
        f"{err:.3e} (tolerance {tol:.3e} = 3 x the reference's bf16 error); "
        + ", ".join(f"{k}: {v:.3e}" for k, v in distances.items())
    )
    for name, away in distances.items():
        assert away > tol, (
            f"the comparison cannot see '{name}' ({away:.3e} <= {tol:.3e})"
        )
    assert err <= tol, (
        f"{label}: served log-probabilities differ from the reference by {err:.3e} "
        f"(tolerance {tol:.3e}, the reference's own bf16 error {floor:.3e})"
    )
    return err, floor, distances
