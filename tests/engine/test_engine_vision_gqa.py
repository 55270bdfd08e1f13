"""MiMo-V2.5's vision tower with the released grouped-query heads, through the real server.

One server (``omni_gqa`` fixture): the tiny MiMo-V2.5 checkpoint with the vision tower's
released ratio of query to key-value heads (tiny_mimo.py ``VISION_GQA``: 8 over 2, as
released 32 over 8) beside the rest of its released layout (full blocks at the ends,
windowed blocks with sinks in row then column order, a token window the inputs cross).
Images of two shapes and a video go through it; what the server's vision tower computes
(saved by the observer in shims/) is compared with the independent reference on the same
pixels and the checkpoint's own weights (vision_parity.py). The main omni checkpoint
keeps as many key-value heads as query heads so that the other patches' video proofs
run on the unpatched tree; this file is where the released ratio is served.
"""

import media
import pytest
import vision_parity
from media import data_url

P0009 = "0009-mimo-vision-sinks-as-key0-bias.patch"

PROMPT = {"type": "text", "text": "Describe it."}
CASES = {
    # 150 x 100 -> 10 x 6 patches; 100 x 220 -> 6 x 14: windows of 8 tokens cross rows
    # in the row-ordered blocks and columns in the column-ordered ones.
    "image 150x100": ("image", "image_url", "image/png", lambda: media.png(150, 100)),
    "image 100x220": ("image", "image_url", "image/png", lambda: media.png(100, 220)),
    # H.264 without audio (the same on both trees' audio paths), 2 s at 4 fps.
    "video 96x64 2s": (
        "video",
        "video_url",
        "video/mp4",
        lambda: media.video(2.0, size=(96, 64), fps=4),
    ),
}


# v0.5.23's sdpa vision backend cannot run grouped-query heads: the request fails with
# "The size of tensor a (8) must match the size of tensor b (2)" in the server's log.
@pytest.mark.fixes(P0009, unpatched="must match the size of tensor b")
@pytest.mark.parametrize("case", list(CASES))
def test_vision_embeddings_match_the_reference(omni_gqa, case):
    kind, part, mime, make = CASES[case]
    vision_parity.check(
        omni_gqa,
        [{"type": part, part: {"url": data_url(mime, make())}}, PROMPT],
        kind,
    )
