"""The Triton varlen prefill kernel (``context_attention_fwd``, the multimodal
attention of ``--mm-attention-backend triton_attn``) compiles for GB10 (sm_121a)
without register spills and within its shared memory, at the shapes of the
MiMo-V2.5 audio encoder and vision tower (head dim 64).

No GPU is needed: the launcher is called as on a compute-capability 12.1 device,
its launch is recorded instead of run, and Triton's own binder and compiler build
it for an sm_121a target with the bundled ptxas, whose ``-v`` report gives the
registers and spill bytes. Spilled registers go through local memory on every
key block of the main loop.
"""

import contextlib
import io
import re
import sys

import pytest
import torch
import triton
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime import jit as triton_jit

import sglang.kernels.ops.attention.prefill_attention as prefill
from sglang.test.ci.ci_register import register_cpu_ci

register_cpu_ci(est_time=60, suite="base-a-test-cpu")

GB10 = GPUTarget("cuda", 121, 32)
GB10_SMEM_PER_BLOCK = 101376  # sm_120/121: 100 KiB per SM, 1 KiB reserved per block

# q heads, kv heads, causal, window, key-0 sinks
CASES = {
    "audio encoder, causal": (20, 20, True, (-1, -1), False),
    "audio encoder, causal window (128, 0)": (20, 20, True, (128, 0), False),
    "vision tower, window (64, 64), key-0 sinks": (32, 8, False, (64, 64), True),
}


def record_launch_as_on_gb10(monkeypatch, heads, kv_heads, causal, window, key0):
    monkeypatch.setattr(prefill, "_is_cuda", True)
    monkeypatch.setattr(prefill, "CUDA_CAPABILITY", (12, 1), raising=False)
    launches = []
    monkeypatch.setattr(
        triton_jit.JITFunction,
        "run",
        lambda self, *args, grid, warmup, **kwargs: launches.append(
            (self, args, kwargs)
        ),
    )
    n, dim = 4096, 64
    q = torch.empty(n, heads, dim, dtype=torch.bfloat16)
    k = torch.empty(n, kv_heads, dim, dtype=torch.bfloat16)
    extra = {"window_size": window} if window != (-1, -1) else {}
    if key0:
        extra.update(sinks=torch.zeros(heads), sinks_bias_key0=True)
    prefill.context_attention_fwd(
        q, k, torch.empty_like(k), torch.empty_like(q),
        torch.zeros(1, dtype=torch.int32), torch.full((1,), n, dtype=torch.int32),
        n, is_causal=causal, **extra,
    )  # fmt: skip
    monkeypatch.undo()
    assert len(launches) == 1
    return launches[0]


def compile_for_gb10(fn, args, kwargs):
    """Bind and specialise the launch as JITFunction.run does, for sm_121a;
    return the compiled kernel and ptxas's report."""
    kwargs = {**kwargs, "debug": False}
    kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    backend = make_backend(GB10)
    binder = triton_jit.create_function_from_signature(fn.signature, fn.params, backend)
    bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(
        backend, kwargs, bound, specialization, options
    )
    report = io.StringIO()
    saved = knobs.nvidia.dump_ptxas_log, knobs.compilation.always_compile
    knobs.nvidia.dump_ptxas_log = knobs.compilation.always_compile = True
    try:
        with contextlib.redirect_stdout(report):
            kernel = triton.compile(
                ASTSource(fn, signature, constexprs, attrs),
                target=GB10,
                options=options.__dict__,
            )
    finally:
        knobs.nvidia.dump_ptxas_log, knobs.compilation.always_compile = saved
    return kernel, report.getvalue()


@pytest.mark.parametrize("case", list(CASES))
def test_prefill_kernel_fits_gb10_without_register_spills(monkeypatch, case):
    fn, args, kwargs = record_launch_as_on_gb10(monkeypatch, *CASES[case])
    kernel, report = compile_for_gb10(fn, args, kwargs)
    spills = [int(b) for b in re.findall(r"(\d+) bytes spill stores", report)]
    assert spills, f"no ptxas report:\n{report}"
    assert max(spills) == 0, f"{case}: {max(spills)} bytes of spill stores\n{report}"
    assert kernel.metadata.shared <= GB10_SMEM_PER_BLOCK, kernel.metadata.shared


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
