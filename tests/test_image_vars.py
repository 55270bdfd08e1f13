"""sglang_mimo.image: the values the image build takes from the pin and the series.

Cheap checks that run in every ``make test``; the images themselves are built and
checked by ``make image-test`` (tests/test_images.py).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from sglang_mimo import image as img  # noqa: E402
from sglang_mimo import paths  # noqa: E402
from sglang_mimo.series import read_series  # noqa: E402


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "sglang_mimo.cli", "image", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "scripts"), **(env or {})},
    )


def test_bake_vars_are_the_pin_and_the_series():
    pin = paths.load_pin()
    out = run_cli("bake-vars")
    assert out.returncode == 0, out.stderr
    variables = {k: v["default"] for k, v in json.loads(out.stdout)["variable"].items()}
    assert variables["SGLANG_VERSION"] == pin["version"]
    assert variables["SGLANG_TAG"] == pin["tag"]
    assert variables["DISTRIBUTION"] == pin["distribution"]
    assert variables["PATCHES"].split(",") == read_series()
    assert variables["NCCL_PACKAGE"] == pin["nccl"]["package"]
    assert variables["NCCL_VERSION"] == pin["nccl"]["version"]
    assert variables["NCCL_MIN_VERSION"] == pin["nccl"]["min_version"]


def test_bake_vars_to_a_file(tmp_path):
    target = tmp_path / "sub" / "vars.json"
    assert run_cli("bake-vars", "-o", str(target)).returncode == 0
    assert json.loads(target.read_text()) == img.bake_vars()


def test_patched_modules_are_the_python_files_of_the_series(trees):
    files = img.patched_files()
    assert files and all(f.startswith("python/sglang/") for f in files)
    mods = img.patched_modules()
    expected = [
        f[len("python/") : -len(".py")].replace("/", ".").removesuffix(".__init__")
        for f in files
        if f.endswith(".py")
    ]
    assert mods == expected
    for mod in mods:  # each names a real module of the patched release
        rel = mod.replace(".", "/")
        tree = Path(trees["patched"])
        assert (tree / f"{rel}.py").is_file() or (
            tree / rel / "__init__.py"
        ).is_file(), mod


def test_check_args_accepts_the_right_values_and_names_the_wrong_ones():
    good = {k: v for k, v in img.build_args().items()}
    assert run_cli("check-args", env=good).returncode == 0
    stale = {**good, "PATCHES": "0001-other.patch", "DISTRIBUTION": "0.5.22-mimo.9"}
    out = run_cli("check-args", env=stale)
    assert out.returncode == 1
    assert "PATCHES" in out.stderr and "DISTRIBUTION" in out.stderr
    assert "SGLANG_VERSION" not in out.stderr


def test_nccl_floor_is_below_the_pinned_fix():
    nccl = paths.load_pin()["nccl"]

    def v(s):
        return tuple(int(x) for x in s.split("."))

    # 2.28.9 deadlocks in cross-node CUDA-graph replay; 2.30.4 fixed it.
    assert v(nccl["min_version"]) > (2, 28, 9)
    assert v(nccl["version"]) >= v(nccl["min_version"])
