"""Engine tier: the real SGLang server of one tree, on the CPU, with tiny MiMo checkpoints.

Like ``tests/regression/``, each file here runs under ``tests/test_both_ways.py`` once
against the unpatched and once against the patched tree (SGLANG_MIMO_TREE), in a
subprocess; the same ``fixes`` semantics apply, with the reporting hooks of
``tests/regression/conftest.py``. A file starts its servers once (module fixtures) and
stops them, process group and all, when it ends or fails.
"""

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import tiny_mimo  # noqa: E402
from server import Server, progress  # noqa: E402

# The both-ways reporting hooks, shared with tests/regression/.
_spec = importlib.util.spec_from_file_location(
    "_both_ways_report", HERE.parent / "regression" / "conftest.py"
)
_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_report)
pytest_configure = _report.pytest_configure
pytest_collection_modifyitems = _report.pytest_collection_modifyitems
pytest_runtest_makereport = _report.pytest_runtest_makereport
pytest_sessionfinish = _report.pytest_sessionfinish

TREE = Path(os.environ.get("SGLANG_MIMO_TREE", "."))
CACHE = Path(os.environ.get("SGLANG_MIMO_ENGINE_CACHE", REPO / "build" / "engine"))
LOGS = Path(os.environ.get("SGLANG_MIMO_ENGINE_LOGS", CACHE / "logs"))


def checkpoint(kind):
    """The tiny checkpoint of ``kind`` (a kind of tiny_mimo.py), written once per version of
    tiny_mimo.py and reused by every file and tree. It is written by the pinned sglang of
    the test environment (not the tree under test), so both trees load the same files.
    """
    out = CACHE / f"tiny-mimo-{kind}-{tiny_mimo.fingerprint()}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "config.json").exists():
            progress(f"writing the tiny {kind} checkpoint to {out}")
            tmp = out.with_name(out.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            subprocess.run(
                [sys.executable, str(HERE / "tiny_mimo.py"), str(tmp), kind],
                check=True,
                env=env,
                capture_output=True,
            )
            tmp.rename(out)
    return out


def start_server(request, name, kind, extra_args=(), env=None):
    server = Server(
        TREE,
        checkpoint(kind),
        name=f"{name}-{TREE.name}",
        log_dir=LOGS,
        extra_args=extra_args,
        env=env,
    )
    request.addfinalizer(server.stop)
    return server.start()


def observed_server(request, kind):
    """A MiMo-V2.5 server of ``kind`` whose vision tower's inputs and outputs are saved
    to ``server.env["SGLANG_MIMO_VISION_DUMP"]`` (an observer in shims/)."""
    dump = LOGS / f"vision-{kind}-{TREE.name}"
    shutil.rmtree(dump, ignore_errors=True)
    dump.mkdir(parents=True)
    return start_server(
        request, kind, kind, env={"SGLANG_MIMO_VISION_DUMP": str(dump)}
    )


@pytest.fixture(scope="module")
def omni(request):
    """MiMo-V2.5 omni on the tree under test, video decoded by torchcodec (the pinned
    release's x86_64 backend), its vision tower observed."""
    return observed_server(request, "omni")


@pytest.fixture(scope="module")
def omni_gqa(request):
    """The same with the vision tower's released grouped-query heads (tiny_mimo.py
    VISION_GQA)."""
    return observed_server(request, "omni-gqa")


@pytest.fixture(scope="module")
def flash(request):
    """MiMo-V2-Flash (text) on the tree under test."""
    return start_server(request, "flash", "flash")


@pytest.fixture(scope="module")
def omni_dp(request):
    """MiMo-V2.5 omni at TP 4 with attention DP 2 (attention TP 2, the interleave of the
    tiny checkpoint's fused qkv_proj) and the multimodal encoders data-parallel: the
    shape of the 8 x H200 recipe, four ranks over gloo."""
    return start_server(
        request,
        "omni-tp4-attndp2",
        "omni",
        extra_args=[
            "--tp-size", "4",
            "--attn-dp-size", "2",
            "--mm-enable-dp-encoder",
            "--disable-custom-all-reduce",
        ],
        env={
            # Two cores for four ranks: one OpenMP thread each.
            "SGLANG_CPU_OMP_THREADS_BIND": "0|1|0|1",
            "OMP_NUM_THREADS": "1",
            # The CUDA torch wheel ships libnccl.so.2, so SGLang would try NCCL on the
            # CPU; a library path that does not exist switches its NCCL wrapper off,
            # as on a CPU-only torch build (distributed/device_communicators/
            # pynccl_wrapper.py reads SGLANG_NCCL_SO_PATH). Collectives go through gloo.
            "SGLANG_NCCL_SO_PATH": "/nonexistent/libnccl.so.2",
        },
    )  # fmt: skip
