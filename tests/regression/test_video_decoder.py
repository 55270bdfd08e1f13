"""Regression tests for sglang/srt/utils/video_decoder.py (patches 0001 and 0002).

Real decord2 and real torchcodec decode real MP4 files that the tests write.
The decord tests force the decord backend, the one every aarch64 (GB10) image
uses because torchcodec is not installed there.

The only stand-in is for the CUDA host allocator, which does not exist on a
CPU machine: ``torch.Tensor.pin_memory`` is replaced by a function that either
"pins" (returns a new tensor, as the real one does) or fails the way a real
allocation failure does, and ``torch.accelerator.is_available`` says True, as
on the GPU machine the allocator belongs to. Without the stand-in the tests
use this machine's real torch, which has no accelerator to pin for. The failure was recorded on an H200 (torch 2.11,
``torch.empty(200 GiB, pin_memory=True)``): ``torch.AcceleratorError`` (a
``RuntimeError``) whose message starts "CUDA error: out of memory".
"""

import logging

import av
import decord
import numpy as np
import pytest
import torch

from sglang.srt.utils import video_decoder
from sglang.srt.utils.common import is_cpu
from sglang.srt.utils.video_decoder import VideoDecoderWrapper

FIX_PIN = pytest.mark.fixes("0001-video-decoder-best-effort-pin-memory.patch")
FIX_DECORD = pytest.mark.fixes("0002-video-decoder-decord-tensor-batches.patch")

N_FRAMES, H, W = 24, 48, 64
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


INDICES = [0, 5, 11, 23]


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


def native_frames(path, indices):
    """Frames exactly as decord's default (native) bridge gives them."""
    decord.bridge.set_bridge("native")
    return decord.VideoReader(path, ctx=decord.cpu(0)).get_batch(indices).asnumpy()


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


# --- 0002: decord returns NDArray, torch.Tensor or numpy ----------------------


def test_decord_native_bridge_unchanged(video_path, decord_backend, cpu_engine):
    expected = native_frames(video_path, INDICES)
    w = VideoDecoderWrapper(video_path)
    got = w.get_frames_at(INDICES)
    assert isinstance(got, np.ndarray) and got.dtype == np.uint8
    assert got.shape == (len(INDICES), H, W, 3)
    np.testing.assert_array_equal(got, expected)
    t = w.get_frames_as_tensor(INDICES)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), expected)


@FIX_DECORD
def test_decord_torch_bridge_get_frames_at(video_path, decord_backend, cpu_engine):
    expected = native_frames(video_path, INDICES)
    decord.bridge.set_bridge("torch")
    w = VideoDecoderWrapper(video_path)
    assert isinstance(w._decoder.get_batch([0]), torch.Tensor)  # the bridge is on
    got = w.get_frames_at(INDICES)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, expected)


@FIX_DECORD
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


@FIX_DECORD
def test_decord_numpy_batch(video_path, decord_backend, cpu_engine):
    expected = native_frames(video_path, INDICES)
    w = VideoDecoderWrapper(video_path)
    real_get_batch = w._decoder.get_batch
    # A reader whose get_batch() hands back plain numpy (as a numpy bridge would).
    w._decoder.get_batch = lambda indices: real_get_batch(indices).asnumpy()
    np.testing.assert_array_equal(w.get_frames_at(INDICES), expected)
    np.testing.assert_array_equal(w.get_frames_as_tensor(INDICES).numpy(), expected)


@FIX_DECORD
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


# --- 0001: best-effort pin_memory -------------------------------------------------


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


BACKENDS = ["decord", "torchcodec", "torchcodec-parallel"]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    name = request.param
    if name == "decord":
        request.getfixturevalue("decord_backend")
    else:
        request.getfixturevalue("torchcodec_backend")
    return name


def test_pinning_still_pins_when_it_works(video_path, backend, gpu_engine, monkeypatch):
    """Discrete GPUs: the pinned tensor is what comes back (behaviour unchanged)."""
    expected = expected_frames(backend, video_path)
    alloc = HostAllocatorStandIn(monkeypatch)
    got = decode_as_tensor(backend, video_path)
    assert alloc.calls == 1
    assert got is alloc.pinned[-1]
    np.testing.assert_array_equal(got.numpy(), expected)


@FIX_PIN
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


@FIX_PIN
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


UNRELATED = "CUDA error: an illegal memory access was encountered"


def test_other_pin_errors_propagate(video_path, backend, gpu_engine, monkeypatch):
    """Only allocation failures are absorbed: anything else still raises."""
    HostAllocatorStandIn(monkeypatch, fail_with=torch.AcceleratorError(UNRELATED))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        decode_as_tensor(backend, video_path)


@FIX_PIN
def test_no_accelerator_returns_unpinned(video_path, backend, gpu_engine, monkeypatch):
    """A build with no usable accelerator (and is_cpu() false): this machine's
    real torch, no stand-in; pin_memory() cannot work, the frames still arrive.
    (On a GPU machine, is_available() is made to say False instead.)"""
    if torch.accelerator.is_available():
        monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    else:
        # what v0.5.23 runs into here ("Found no NVIDIA driver on your system")
        with pytest.raises(RuntimeError):
            torch.zeros(1).pin_memory()
    got = decode_as_tensor(backend, video_path)
    assert not got.is_pinned()
    np.testing.assert_array_equal(got.numpy(), expected_frames(backend, video_path))


def test_cpu_engine_does_not_pin(video_path, backend, cpu_engine, monkeypatch):
    alloc = HostAllocatorStandIn(monkeypatch, fail_with=allocation_failure())
    got = decode_as_tensor(backend, video_path)
    assert alloc.calls == 0
    np.testing.assert_array_equal(got.numpy(), expected_frames(backend, video_path))


# --- on a GPU: the real host allocator -------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("bridge", ["native", "torch"])
def test_cuda_frames_are_really_pinned(video_path, decord_backend, gpu_engine, bridge):
    decord.bridge.set_bridge(bridge)
    got = VideoDecoderWrapper(video_path).get_frames_as_tensor(INDICES)
    assert got.is_pinned()
    np.testing.assert_array_equal(got.numpy(), native_frames(video_path, INDICES))


@pytest.mark.cuda
def test_cuda_pinned_host_allocation_failure_is_what_the_stand_in_raises():
    """Keeps the stand-in honest: a pinned allocation far over host RAM fails so."""
    with pytest.raises(RuntimeError, match="out of memory") as info:
        torch.empty(1 << 40, dtype=torch.uint8, pin_memory=True)
    assert type(info.value) is type(allocation_failure())


# --- the GB10 image exactly: torchcodec not installed ----------------------------

GB10_SCRIPT = r"""
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
    import os
    import subprocess
    import sys

    env = {**os.environ, "SGLANG_USE_CPU_ENGINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", GB10_SCRIPT, video_path, bridge],
        capture_output=True,
        text=True,
        env=env,
    )


def test_without_torchcodec_native_bridge(video_path):
    proc = run_without_torchcodec(video_path, "native")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


@FIX_DECORD
def test_without_torchcodec_torch_bridge(video_path):
    proc = run_without_torchcodec(video_path, "torch")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
