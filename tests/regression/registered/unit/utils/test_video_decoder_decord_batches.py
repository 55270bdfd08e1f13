"""VideoDecoderWrapper on the decord backend: NDArray, torch.Tensor or numpy batches.

decord's ``get_batch()`` returns a decord NDArray by default, a ``torch.Tensor``
once ``decord.bridge.set_bridge("torch")`` is active (as other libraries in the
same process do), or numpy from a numpy bridge. The wrapper must give the same
frames for all three, without copying on the tensor path. decord is the backend
wherever torchcodec is not installed (all aarch64 builds).

Real decord2 decodes a real MP4 written by the test; the pinning test stands in
for the CUDA host allocator (``torch.Tensor.pin_memory``), which a CPU machine
does not have.
"""

import os
import subprocess
import sys

import av
import decord
import numpy as np
import pytest
import torch

from sglang.srt.utils import video_decoder
from sglang.srt.utils.common import is_cpu
from sglang.srt.utils.video_decoder import VideoDecoderWrapper
from sglang.test.ci.ci_register import register_cpu_ci, register_cuda_ci

register_cpu_ci(est_time=30, suite="base-a-test-cpu")
register_cuda_ci(est_time=30, stage="base-a", runner_config="1-gpu-small")

N_FRAMES, H, W = 24, 48, 64
INDICES = [0, 5, 11, 23]


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    """A real MP4 (mpeg4, 24 frames of distinct gradients) written with PyAV."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"qscale": "2"}
        for i in range(N_FRAMES):
            img = np.zeros((H, W, 3), np.uint8)
            img[..., 0] = (i * 10) % 256
            img[..., 1] = np.linspace(0, 255, W, dtype=np.uint8)[None, :]
            img[..., 2] = rng.integers(0, 255, (H, 1), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, "rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


@pytest.fixture
def decord_backend(monkeypatch):
    """Force the decord backend (as on aarch64) and leave decord's bridge as found."""
    monkeypatch.setattr(video_decoder, "_BACKEND", "decord")
    yield
    decord.bridge.set_bridge("native")


@pytest.fixture
def gpu_engine(monkeypatch):
    """The wrapper pins unless SGLANG_USE_CPU_ENGINE=1: behave as on a GPU server."""
    monkeypatch.delenv("SGLANG_USE_CPU_ENGINE", raising=False)
    is_cpu.cache_clear()  # sglang caches the answer
    yield
    is_cpu.cache_clear()


@pytest.fixture
def cpu_engine(monkeypatch):
    monkeypatch.setenv("SGLANG_USE_CPU_ENGINE", "1")
    is_cpu.cache_clear()
    yield
    is_cpu.cache_clear()


def native_frames(path, indices):
    """Frames exactly as decord's default (native) bridge gives them."""
    decord.bridge.set_bridge("native")
    return decord.VideoReader(path, ctx=decord.cpu(0)).get_batch(indices).asnumpy()


class HostAllocatorStandIn:
    """Stand-in for the CUDA host allocator behind ``Tensor.pin_memory()``."""

    def __init__(self, monkeypatch):
        self.pinned = []

        def pin_memory(tensor, *args, **kwargs):
            out = tensor.clone()  # the real call returns a page-locked copy
            self.pinned.append(out)
            return out

        monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
        monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)


def test_decord_torch_bridge_get_frames_at(video_path, decord_backend, cpu_engine):
    expected = native_frames(video_path, INDICES)
    decord.bridge.set_bridge("torch")
    w = VideoDecoderWrapper(video_path)
    assert isinstance(w._decoder.get_batch([0]), torch.Tensor)  # the bridge is on
    got = w.get_frames_at(INDICES)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, expected)


def test_decord_torch_bridge_get_frames_as_tensor_no_copy(
    video_path, decord_backend, cpu_engine
):
    expected = native_frames(video_path, INDICES)
    decord.bridge.set_bridge("torch")
    w = VideoDecoderWrapper(video_path)
    returned = []
    real_get_batch = w._decoder.get_batch

    def spy(indices):  # records what real decord returned, changes nothing
        returned.append(real_get_batch(indices))
        return returned[-1]

    w._decoder.get_batch = spy
    got = w.get_frames_as_tensor(INDICES)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), expected)
    assert got.data_ptr() == returned[0].data_ptr(), "the tensor path copied"


def test_decord_numpy_batch(video_path, decord_backend, cpu_engine):
    expected = native_frames(video_path, INDICES)
    w = VideoDecoderWrapper(video_path)
    real_get_batch = w._decoder.get_batch
    # A reader whose get_batch() hands back plain numpy (as a numpy bridge would).
    w._decoder.get_batch = lambda indices: real_get_batch(indices).asnumpy()
    np.testing.assert_array_equal(w.get_frames_at(INDICES), expected)
    np.testing.assert_array_equal(w.get_frames_as_tensor(INDICES).numpy(), expected)


def test_decord_torch_bridge_with_pinning(
    video_path, decord_backend, gpu_engine, monkeypatch
):
    """The GB10 configuration: decord backend, torch bridge, frames pinned."""
    expected = native_frames(video_path, INDICES)
    decord.bridge.set_bridge("torch")
    alloc = HostAllocatorStandIn(monkeypatch)
    got = VideoDecoderWrapper(video_path).get_frames_as_tensor(INDICES)
    assert got is alloc.pinned[-1]
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="requires CUDA")
def test_decord_torch_bridge_really_pinned_on_cuda(
    video_path, decord_backend, gpu_engine
):
    """The same with the real CUDA host allocator."""
    decord.bridge.set_bridge("torch")
    got = VideoDecoderWrapper(video_path).get_frames_as_tensor(INDICES)
    assert got.is_pinned()
    np.testing.assert_array_equal(got.numpy(), native_frames(video_path, INDICES))


# The aarch64 install exactly: torchcodec not importable, so decord is the backend.
WITHOUT_TORCHCODEC = r"""
import sys
sys.modules["torchcodec"] = None  # not installed on aarch64 (excluded by marker)
import decord, numpy as np, os
from sglang.srt.utils import video_decoder
assert video_decoder._BACKEND == "decord", video_decoder._BACKEND
path, bridge = sys.argv[1], sys.argv[2]
expected = decord.VideoReader(path).get_batch([0, 5, 11]).asnumpy()
decord.bridge.set_bridge(bridge)
w = video_decoder.VideoDecoderWrapper(path)
np.testing.assert_array_equal(w.get_frames_at([0, 5, 11]), expected)
np.testing.assert_array_equal(w.get_frames_as_tensor([0, 5, 11]).numpy(), expected)
print("ok")
"""


def run_without_torchcodec(video_path, bridge):
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCHCODEC, video_path, bridge],
        capture_output=True,
        text=True,
        env={**os.environ, "SGLANG_USE_CPU_ENGINE": "1"},
    )


def test_without_torchcodec_torch_bridge(video_path):
    proc = run_without_torchcodec(video_path, "torch")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
