"""The vision tower of a served MiMo-V2.5 against the reference, both used by
``test_engine_omni.py`` and ``test_engine_vision_gqa.py``.

The server runs with the observer of ``shims/`` (``SGLANG_MIMO_VISION_DUMP``), which saves
what each ``get_image_feature`` / ``get_video_feature`` call received and returned. The
same pixels go through the independent reference
(``tests/regression/reference/mimo_v2_reference.py``) on the checkpoint's own weights:
in float64 (the truth), in bf16 (the reference's own bf16 error, the floor), and as
v0.5.23's sdpa function computes it (every block full attention, no sinks). The server
runs in bf16; the tolerance: at most twice the floor, and under half the distance to
v0.5.23's function (so the comparison can tell the two apart).
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from server import ServerDied, chat

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    kind: str
    grids: list
    err: float
    floor: float
    off: float

    @property
    def ok(self):
        return self.err <= 2 * self.floor and self.err < self.off / 2

    def line(self):
        tokens = sum(t * h * w for t, h, w in self.grids)
        return (
            f"{self.kind} {tokens} patches {self.grids}: max abs err {self.err:.2e} "
            f"of the output scale (bf16 floor {self.floor:.2e}); from full attention "
            f"without sinks {self.off:.2e}"
        )


class RequestFailed(AssertionError):
    pass


def served(server, content, kind):
    """Send ``content`` (one image or video part and a text part) and return what the
    server's vision tower saved for it. A server that died is started again (so the
    file's other tests still run) and the failure carries its log's tail."""
    import torch

    dump = Path(server.env["SGLANG_MIMO_VISION_DUMP"])
    before = set(dump.glob(f"{kind}-*.pt"))
    try:
        status, body = chat(server, content)
    except ServerDied as e:
        status, body = None, str(e)
    if status != 200:
        alive = server.healthy(timeout=10)
        log = server.log_tail(30)
        if not alive:
            server.stop()
            server.start()
        raise RequestFailed(
            f"the {kind} request got HTTP {status} (server "
            f"{'alive' if alive else 'died, started again'}): "
            f"{json.dumps(body)[:300]}\n{log}"
        )
    saved = sorted(set(dump.glob(f"{kind}-*.pt")) - before)
    assert len(saved) == 1, saved
    return torch.load(saved[0])


def compare(server, content, kind):
    """Result of the served tower against the reference for one request."""
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(REPO / "tests" / "regression" / "reference"))
    from mimo_v2_reference import vision_tower

    call = served(server, content, kind)
    grids = [tuple(g) for g in call["grid_thw"].tolist()]
    cfg = json.loads((server.model / "config.json").read_text())["vision_config"]
    weights = {
        k: v
        for k, v in load_file(server.model / "model.safetensors").items()
        if k.startswith("visual.")
    }
    pixels = call["pixel_values"].bfloat16()
    ref = vision_tower(weights, cfg, pixels, grids, dtype=torch.float64)
    ref16 = vision_tower(weights, cfg, pixels, grids, dtype=torch.bfloat16).double()
    # v0.5.23's sdpa function: every block full attention, no sinks
    plain = {**cfg, "fullatt_block_indexes": list(range(cfg["depth"]))}
    other = vision_tower(weights, plain, pixels, grids, dtype=torch.float64)
    scale = ref.abs().max().item()
    out = call["output"].double()
    return Result(
        kind=kind,
        grids=grids,
        err=(out - ref).abs().max().item() / scale,
        floor=(ref16 - ref).abs().max().item() / scale,
        off=(out - other).abs().max().item() / scale,
    )


def check(server, content, kind):
    result = compare(server, content, kind)
    print(f"[vision] {result.line()}")
    assert result.ok, f"vision embeddings differ from the reference: {result.line()}"
    return result
