"""sglang-mimo status and audit on real trees from the pinned wheel.

status: every patch is "needs" on the pinned base, "contains" on the patched
tree, and "conflicts" (exit 1, file and hunk named) where its context is gone.
audit: no gap on the pinned base; each kind of gap, planted in a copy of the
pinned tree, is reported with its file and line (the audit can fail).
"""

import json
import os
import re

import pytest
from cli_helpers import run_cli
from sglang_mimo import paths, series

DECODER = "sglang/srt/utils/video_decoder.py"


def test_status_of_the_pinned_base():
    proc = run_cli("status", "--json", check_rc=0)
    data = json.loads(proc.stdout)
    assert data["version"] == paths.load_pin()["version"]
    patches = series.load_series()
    assert [r["patch"] for r in data["patches"]] == [p.name for p in patches]
    for row, p in zip(data["patches"], patches):
        assert row["tree"] == "needs", row
        assert row["title"] == p.subject
        assert row["upstream_prs"] == p.upstream_prs
        assert row["upstream_status"] == p.trailer("Upstream-Status")


def test_status_table_on_the_patched_tree(trees):
    proc = run_cli("status", trees["patched"], check_rc=0)
    rows = [l for l in proc.stdout.splitlines() if l.startswith("| 0")]
    assert len(rows) == len(series.read_series())
    for row, p in zip(rows, series.load_series()):
        assert row.endswith("| contains |"), row
        assert p.subject in row and p.trailer("Upstream-Status") in row
        for n in p.upstream_prs:
            assert f"#{n}" in row


def test_status_names_the_conflict(series_tree):
    first = series.load_series()[0]
    # Change the first context line of the first patch's first hunk in the tree.
    start = int(re.search(r"^@@ -(\d+)", first.path.read_text(), re.M).group(1))
    lines = (series_tree / DECODER).read_text().splitlines(keepends=True)
    lines[start - 1] = lines[start - 1].rstrip("\n") + "  # changed here\n"
    (series_tree / DECODER).write_text("".join(lines))
    proc = run_cli("status", "--json", series_tree, check_rc=1)
    rows = {r["patch"]: r for r in json.loads(proc.stdout)["patches"]}
    assert rows[first.name]["tree"] == "conflicts"
    assert "python/" + DECODER in rows[first.name]["detail"]
    assert "hunk #1" in rows[first.name]["detail"]


def test_audit_passes_on_the_pinned_base():
    proc = run_cli("audit", check_rc=0)
    out = proc.stdout
    assert "audit: 0 gap(s)" in out
    # the multimodal-only lists are listed, by file and line
    for where in (
        "sglang/srt/configs/model_config.py",
        "sglang/srt/arg_groups/pd_disaggregation_hook.py",
        "sglang/srt/multimodal/processors/mimo_v2.py",
    ):
        assert re.search(rf"^{re.escape(where)}:\d+: arch-names: exempt", out, re.M)
    m = re.search(r"(\d+) places name both", out)
    assert m and int(m.group(1)) >= 8  # model_config, hooks, overrides, registry...


def symlink_tree(src, dest):
    """A copy of an sglang tree made of symlinks; ``own`` replaces one with a real file."""
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        os.makedirs(os.path.join(dest, rel), exist_ok=True)
        for f in files:
            if f.endswith(".py"):
                os.symlink(os.path.join(root, f), os.path.join(dest, rel, f))
    return dest


def own(tree, rel):
    path = tree / rel
    text = path.read_text()
    path.unlink()
    path.write_text(text)
    return path, text


def line_of(text, needle):
    return text[: text.index(needle)].count("\n") + 1


def list_start(text, needle):
    """The line of the bracket that opens the list holding ``needle``."""
    before = text[: text.index(needle)]
    at = max(before.rfind(c) for c in "[({")
    return before[:at].count("\n") + 1


def drop_flash_from_speculative_hook(tree):
    path, text = own(tree, "sglang/srt/arg_groups/speculative_hook.py")
    new = re.sub(r'\n\s*"MiMoV2FlashForCausalLM",', "", text, count=1)
    path.write_text(new)
    return path, list_start(new, '"MiMoV2ForCausalLM"'), "arch-names"


def drop_flash_from_npu_tuple(tree):
    path, text = own(
        tree, "sglang/srt/hardware_backend/npu/graph_runner/npu_graph_runner.py"
    )
    new = text.replace('"MiMoV2FlashForCausalLM", ', "", 1)
    path.write_text(new)
    return path, list_start(new, '"MiMoV2ForCausalLM"'), "arch-names"


def rename_the_alias_class(tree):
    path, text = own(tree, "sglang/srt/models/mimo_v2.py")
    new = text.replace("class MiMoV2FlashForCausalLM(", "class MiMoV2FlashOld(", 1)
    path.write_text(new)
    return path, 1, "alias"


def mtp_only_for_the_multimodal_name(tree):
    path, text = own(tree, "sglang/srt/configs/model_config.py")
    needle = 'architectures[0] in MIMO_V2_MODEL_ARCHS:\n            self.hf_config.architectures[0] = "MiMoV2MTP"'
    assert needle in text
    path.write_text(
        text.replace(needle, needle.replace("MODEL_ARCHS", "MULTIMODAL_ARCHS"))
    )
    return path, 1, "mtp"


def fa3_import_in_mimo_audio(tree):
    path, text = own(tree, "sglang/srt/models/mimo_audio.py")
    new = text.replace(
        "import torch\n",
        "import torch\nfrom sgl_kernel.flash_attn import flash_attn_varlen_func\n",
        1,
    )
    path.write_text(new)
    return path, line_of(new, "from sgl_kernel.flash_attn"), "audio-kernel"


@pytest.mark.parametrize(
    "plant",
    [
        drop_flash_from_speculative_hook,
        drop_flash_from_npu_tuple,
        rename_the_alias_class,
        mtp_only_for_the_multimodal_name,
        fa3_import_in_mimo_audio,
    ],
)
def test_audit_reports_a_planted_gap_with_file_and_line(plant, pristine_tree, tmp_path):
    tree = symlink_tree(pristine_tree, tmp_path / "tree")
    path, line, check = plant(tree)
    proc = run_cli("audit", tree, check_rc=1)
    rel = path.relative_to(tree).as_posix()
    gaps = [
        l for l in proc.stdout.splitlines() if f": {check}: " in l and "exempt" not in l
    ]
    assert gaps, proc.stdout
    if line > 1:
        assert any(l.startswith(f"{rel}:") for l in gaps), proc.stdout
        assert any(l.startswith(f"{rel}:{line}: {check}: ") for l in gaps), (
            line,
            proc.stdout,
        )
    else:
        assert any(rel in l for l in gaps), proc.stdout


def test_a_conditional_kernel_import_is_no_gap(pristine_tree, tmp_path):
    tree = symlink_tree(pristine_tree, tmp_path / "tree")
    path, text = own(tree, "sglang/srt/models/mimo_audio.py")
    path.write_text(
        text.replace(
            "import torch\n",
            "import torch\n\nif torch.cuda.is_available():\n"
            "    from sgl_kernel.flash_attn import flash_attn_varlen_func\n",
            1,
        )
    )
    run_cli("audit", tree, check_rc=0)


def test_audit_passes_on_the_patched_tree(trees):
    run_cli("audit", trees["patched"], check_rc=0)
