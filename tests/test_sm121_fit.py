"""Every Triton kernel the GB10 recipe launches fits an sm_121 (GB10) block.

``scripts/sm121_fit.py`` runs the patched tree's own launchers as SGLang runs them on a
GB10 (capability (12, 1), device name "NVIDIA GB10"), at MiMo-V2.5's shapes from
recipes/configs/MiMo-V2.5/config.json and the recipe's settings (TP 4, FP8 block
quantization [128, 128], FP8 KV cache, ``--attention-backend triton``,
``--mm-attention-backend triton_attn``), and compiles each distinct launch for
``sm_121a`` with the venv's Triton and its bundled ptxas, on this GPU-less machine:

- the multimodal prefill kernel of patches 0008 and 0014 (vision windows with key-0 sinks
  and full blocks, head dim 64; audio causal/windowed/full, head dim 64);
- the text model's Triton attention backend: extend/prefill and EAGLE-verify extend,
  decode stage 1 and 2, for the sliding-window layers (window 127, sinks) and the full
  layers (head dim 192, v head dim 128);
- fused MoE at E=256, N=512 (moe_intermediate_size 2048 / TP 4), K=4096, top-8, FP8
  w8a8 [128, 128], with the config SGLang picks on a device named "NVIDIA GB10" (no
  file of that name ships: ``get_default_config``) at each token-count bucket, plus
  the MoE align and sum kernels the path launches;
- the block-FP8 linears that fall back from cutlass to Triton on sm_12x (N or K not a
  multiple of 128: the full-attention layers' fused qkv_proj, N = 3392).

The limits asserted (``sm121_fit.GB10_LIMITS``): shared memory per block <= 101,376 B
(the opt-in maximum), registers per thread <= 255, registers x threads <= 65,536,
threads <= 1,024. ``test_limits_are_nvidias`` checks them against NVIDIA's CCCL
``cuda/__device/arch_traits.h`` (``arch_traits<arch_id::sm_121>``: sm_120's 100 KiB per
SM less 1 KiB reserved per block), installed in the venv by the nvidia-cuda-cccl wheel.
Spills are reported, not failed: the run's table (``-s`` shows it) carries them.
``test_a_moe_config_that_does_not_fit_is_caught`` shows the check fails where it should.
"""

import json
import subprocess
import sys

import pytest
import triton
from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import sm121_fit  # noqa: E402  (stdlib-only at import; sglang is imported by collect())

SCRIPT = REPO / "scripts" / "sm121_fit.py"
pytestmark = pytest.mark.xdist_group("sm121_fit")


def run_fit(tree, out, *args):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--sglang", str(tree), "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    data = json.loads(out.read_text()) if out.exists() else None
    return proc, data


@pytest.fixture(scope="module")
def fit(trees, tmp_path_factory):
    out = tmp_path_factory.mktemp("sm121-fit") / "rows.json"
    proc, data = run_fit(trees["patched"], out)
    print(proc.stdout)
    assert data is not None, f"sm121_fit.py wrote no rows\n{proc.stdout}\n{proc.stderr}"
    return proc, data


def test_limits_are_nvidias():
    """The limits the fit is judged by are sm_121's as NVIDIA's CCCL states them."""
    header = sm121_fit.cccl_arch_traits_path()
    assert (
        header is not None and header.is_file()
    ), "nvidia-cuda-cccl's cuda/__device/arch_traits.h is not installed"
    assert sm121_fit.cccl_limits(header) == sm121_fit.GB10_LIMITS


def test_every_kernel_the_recipe_launches_fits_sm121(fit):
    proc, data = fit
    bad = [r for r in data["rows"] if not r["fits"]]
    assert not bad and proc.returncode == 0, (
        "kernels that do not fit GB10:\n"
        + sm121_fit.table(bad)
        + f"\n\n{proc.stdout}\n{proc.stderr[-3000:]}"
    )


def test_the_fit_covers_each_path_compiled_for_sm121a(fit):
    """Each path of the recipe is there, compiled for sm_121a, with GB10's MoE lookup."""
    _, data = fit
    rows = data["rows"]
    assert {r["ptx_target"] for r in rows} == {"sm_121a"}
    have = {(r["group"], r["kernel"]) for r in rows}
    want = {
        ("mm prefill (0008, 0014)", "_fwd_kernel"),
        ("text extend/prefill", "_fwd_kernel"),
        ("text extend (EAGLE verify, custom mask)", "_fwd_kernel"),
        ("text decode", "_fwd_grouped_kernel_stage1"),
        ("text decode", "_fwd_kernel_stage2"),
        ("fused MoE", "fused_moe_kernel"),
        ("fused MoE", "_moe_align_small_numel_kernel"),
        ("fused MoE", "_moe_sum_reduce_kernel"),
        ("dense FP8 linear (Triton fallback)", "_w8a8_block_fp8_matmul"),
    }
    assert want <= have, want - have
    cases = {c for r in rows for c in r["cases"]}
    for m in sm121_fit.MOE_M:
        assert f"M={m} up (w13)" in cases and f"M={m} down (w2)" in cases, m
    assert any("sinks True" in c and "window 127" in c for c in cases)
    assert any(c.startswith("vision windowed") and "key-0 sinks" in c for c in cases)
    # the lookup SGLang does on a GB10: its own naming, the device's name
    assert data["notes"]["moe_config_files"] == [
        "E=256,N=512,device_name=NVIDIA_GB10,dtype=fp8_w8a8,block_shape=[128, 128].json"
    ]


def test_a_moe_config_that_does_not_fit_is_caught(fit, trees, tmp_path):
    """A GB10 config file that asks for too much shared memory fails the fit.

    The file reaches SGLang's own lookup through SGLANG_MOE_CONFIG_DIR (v0.5.23's
    override of its config folder), named as SGLang names it for a GB10. Its one
    entry is SGLang's per-tensor FP8 default for devices with more shared memory
    (BLOCK 128 x 256 x 128, 4 stages, fused_moe_triton_config.get_default_config):
    3 stages in flight x (128 x 128 + 256 x 128) B, the 147,456 B GB10 owners report.
    """
    (name,) = fit[1]["notes"]["moe_config_files"]
    folder = tmp_path / "configs" / f"triton_{triton.__version__.replace('.', '_')}"
    folder.mkdir(parents=True)
    big = {
        "BLOCK_SIZE_M": 128,
        "BLOCK_SIZE_N": 256,
        "BLOCK_SIZE_K": 128,
        "GROUP_SIZE_M": 32,
        "num_warps": 8,
        "num_stages": 4,
    }
    (folder / name).write_text(json.dumps({"1024": big}))
    proc, data = run_fit(
        trees["patched"],
        tmp_path / "rows.json",
        "--only",
        "moe",
        "--moe-m",
        "1024",
        "--moe-config-dir",
        str(tmp_path),
    )
    assert data is not None, proc.stderr[-3000:]
    moe = [r for r in data["rows"] if r["kernel"] == "fused_moe_kernel"]
    assert moe and all(r["constexprs"]["BLOCK_SIZE_N"] == 256 for r in moe), moe
    assert all(
        not r["fits"] and r["smem"] > sm121_fit.GB10_LIMITS["smem_per_block_optin"]
        for r in moe
    ), sm121_fit.table(moe)
    assert proc.returncode == 1
