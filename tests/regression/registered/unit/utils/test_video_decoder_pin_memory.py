"""VideoDecoderWrapper: pin_memory() is best-effort.

On unified-memory machines (GB10 "DGX Spark") the CUDA host allocator cannot pin
the decoded frames once the GPU memory pool is reserved; the frames must still
arrive, unpinned, with one warning per process. Only allocation failures are
absorbed.

Real decord2 and real torchcodec decode a real MP4 written by the test. The only
stand-in is for the CUDA host allocator, which does not exist on a CPU machine:
``torch.Tensor.pin_memory`` is replaced by a function that either "pins" (returns
a new tensor, as the real one does) or fails the way a real allocation failure
does (recorded on an H200, torch 2.11: ``torch.AcceleratorError``, a
``RuntimeError`` whose message starts "CUDA error: out of memory"), and
``torch.accelerator.is_available`` says True.
"""

import logging
import sys

import av
import decord
import numpy as np
import pytest
import torch

from sglang.srt.utils import video_decoder
from sglang.srt.utils.common import is_cpu
from sglang.srt.utils.video_decoder import VideoDecoderWrapper
from sglang.test.ci.ci_register import register_cpu_ci

register_cpu_ci(est_time=30, suite="base-a-test-cpu")

N_FRAMES, H, W = 24, 48, 64
INDICES = [0, 5, 11, 23]
REAL_PIN_OOM = (
    "CUDA error: out of memory\nSearch for `cudaErrorMemoryAllocation' in "
    "https://docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__TYPES.html "
    "for more information."
)


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
def torchcodec_backend(monkeypatch):
    pytest.importorskip("torchcodec")
    monkeypatch.setattr(video_decoder, "_BACKEND", "torchcodec")


@pytest.fixture
def gpu_engine(monkeypatch):
    """The wrapper pins unless SGLANG_USE_CPU_ENGINE=1: behave as on a GPU server."""
    monkeypatch.delenv("SGLANG_USE_CPU_ENGINE", raising=False)
    is_cpu.cache_clear()  # sglang caches the answer
    yield
    is_cpu.cache_clear()


BACKENDS = ["decord", "torchcodec", "torchcodec-parallel"]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    name = request.param
    if name == "decord":
        request.getfixturevalue("decord_backend")
    else:
        request.getfixturevalue("torchcodec_backend")
    return name


class HostAllocatorStandIn:
    """Stand-in for the CUDA host allocator behind ``Tensor.pin_memory()``."""

    def __init__(self, monkeypatch, fail_with=None):
        self.calls = 0
        self.pinned = []
        self.fail_with = fail_with

        def pin_memory(tensor, *args, **kwargs):
            self.calls += 1
            if self.fail_with is not None:
                raise self.fail_with
            out = tensor.clone()  # the real call returns a page-locked copy
            self.pinned.append(out)
            return out

        monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
        monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)


def allocation_failure():
    return torch.AcceleratorError(REAL_PIN_OOM)


def native_frames(path, indices):
    """Frames exactly as decord's default (native) bridge gives them."""
    decord.bridge.set_bridge("native")
    return decord.VideoReader(path, ctx=decord.cpu(0)).get_batch(indices).asnumpy()


def expected_frames(backend, video_path):
    """What the backend's own decoder gives (decoders may convert YUV differently)."""
    if backend == "decord":
        return native_frames(video_path, INDICES)
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(video_path, dimension_order="NHWC")
    return decoder.get_frames_at(INDICES).data.numpy()


def decode_as_tensor(backend, video_path):
    if backend == "decord":
        return VideoDecoderWrapper(video_path).get_frames_as_tensor(INDICES)
    if backend == "torchcodec":
        w = VideoDecoderWrapper(video_path, num_decode_threads=1)
        return w.get_frames_as_tensor(INDICES)
    # torchcodec split over two decoder threads (_parallel_decode)
    w = VideoDecoderWrapper(video_path, num_decode_threads=2)
    return w.get_frames_as_tensor(INDICES)


def test_pin_allocation_failure_returns_unpinned(
    video_path, backend, gpu_engine, monkeypatch, caplog
):
    """GB10 unified memory: the host allocator cannot pin; frames still arrive."""
    expected = expected_frames(backend, video_path)
    HostAllocatorStandIn(monkeypatch, fail_with=allocation_failure())
    with caplog.at_level(logging.WARNING, logger=video_decoder.logger.name):
        got = decode_as_tensor(backend, video_path)
        got_again = decode_as_tensor(backend, video_path)
    np.testing.assert_array_equal(got.numpy(), expected)
    np.testing.assert_array_equal(got_again.numpy(), expected)
    warnings = [r for r in caplog.records if "pin_memory" in r.getMessage()]
    assert len(warnings) <= 1, "the fallback must be logged once, not per request"


def test_pin_failure_is_logged_once_per_process(
    video_path, decord_backend, gpu_engine, monkeypatch, caplog
):
    HostAllocatorStandIn(monkeypatch, fail_with=allocation_failure())
    monkeypatch.setattr(
        video_decoder, "_pin_memory_failure_logged", False, raising=False
    )
    with caplog.at_level(logging.WARNING, logger=video_decoder.logger.name):
        for _ in range(3):
            decode_as_tensor("decord", video_path)
    warnings = [r for r in caplog.records if "pin_memory" in r.getMessage()]
    assert len(warnings) == 1
    assert "out of memory" in warnings[0].getMessage()


def test_no_accelerator_returns_unpinned(video_path, backend, gpu_engine, monkeypatch):
    """A build with no usable accelerator (and is_cpu() false): this machine's
    real torch, no stand-in; pin_memory() cannot work, the frames still arrive.
    (On a GPU machine, is_available() is made to say False instead.)"""
    if torch.accelerator.is_available():
        monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    else:
        # what pinning runs into here ("Found no NVIDIA driver on your system")
        with pytest.raises(RuntimeError):
            torch.zeros(1).pin_memory()
    got = decode_as_tensor(backend, video_path)
    assert not got.is_pinned()
    np.testing.assert_array_equal(got.numpy(), expected_frames(backend, video_path))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
