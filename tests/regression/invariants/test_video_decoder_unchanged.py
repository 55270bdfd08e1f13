"""sglang/srt/utils/video_decoder.py: what 0001 and 0002 must not change.

Helpers and fixtures come from the two patches' registered test files.
"""

import pytest
import torch
from test_video_decoder_decord_batches import (  # noqa: F401  (fixtures)
    cpu_engine,
    run_without_torchcodec,
)
from test_video_decoder_pin_memory import (  # noqa: F401  (fixtures)
    INDICES,
    H,
    HostAllocatorStandIn,
    W,
    allocation_failure,
    backend,
    decode_as_tensor,
    decord_backend,
    expected_frames,
    gpu_engine,
    native_frames,
    torchcodec_backend,
    video_path,
)

import decord
import numpy as np
from sglang.srt.utils.video_decoder import VideoDecoderWrapper


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


def test_pinning_still_pins_when_it_works(video_path, backend, gpu_engine, monkeypatch):
    """Discrete GPUs: the pinned tensor is what comes back (behaviour unchanged)."""
    expected = expected_frames(backend, video_path)
    alloc = HostAllocatorStandIn(monkeypatch)
    got = decode_as_tensor(backend, video_path)
    assert alloc.calls == 1
    assert got is alloc.pinned[-1]
    np.testing.assert_array_equal(got.numpy(), expected)


UNRELATED = "CUDA error: an illegal memory access was encountered"


def test_other_pin_errors_propagate(video_path, backend, gpu_engine, monkeypatch):
    """Only allocation failures are absorbed: anything else still raises."""
    HostAllocatorStandIn(monkeypatch, fail_with=torch.AcceleratorError(UNRELATED))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        decode_as_tensor(backend, video_path)


def test_cpu_engine_does_not_pin(video_path, backend, cpu_engine, monkeypatch):
    alloc = HostAllocatorStandIn(monkeypatch, fail_with=allocation_failure())
    got = decode_as_tensor(backend, video_path)
    assert alloc.calls == 0
    np.testing.assert_array_equal(got.numpy(), expected_frames(backend, video_path))


# --- on a GPU: the real host allocator -------------------------------------------


@pytest.mark.cuda
def test_cuda_frames_are_really_pinned(video_path, decord_backend, gpu_engine):
    # the torch bridge is 0002's: its registered file has the same test for it
    decord.bridge.set_bridge("native")
    got = VideoDecoderWrapper(video_path).get_frames_as_tensor(INDICES)
    assert got.is_pinned()
    np.testing.assert_array_equal(got.numpy(), native_frames(video_path, INDICES))


@pytest.mark.cuda
def test_cuda_pinned_host_allocation_failure_is_what_the_stand_in_raises():
    """Keeps the stand-in honest: a pinned allocation far over host RAM fails so."""
    with pytest.raises(RuntimeError, match="out of memory") as info:
        torch.empty(1 << 40, dtype=torch.uint8, pin_memory=True)
    assert type(info.value) is type(allocation_failure())


def test_without_torchcodec_native_bridge(video_path):
    proc = run_without_torchcodec(video_path, "native")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
