"""CPU stand-ins that let the real SGLang v0.5.23 server run on a machine without a GPU.

Installed in every process of the server (``sitecustomize.py`` beside this file is put on
PYTHONPATH by the engine tests, and multiprocessing's spawned children inherit it) when
``SGLANG_USE_CPU_ENGINE=1``. Each stand-in below names the upstream file and function it
stands in for and why that cannot run here, and raises if it is reached on a path it
does not implement. ``SHIMS`` lists every SGLang function a stand-in wraps or replaces and ``ADDED`` every
method it adds; ``tests/test_engine_shims.py`` checks that none of them is a function a
carried patch changes or adds, so no stand-in ever sits over patched code.

Everything else in the server is the pinned release, as installed: scheduler, tokenizer
manager, model runner, weight loader, the MiMo model, processors and HTTP routes.
"""

import importlib.abc
import importlib.machinery
import sys
import types

# (sglang file, qualified function) pairs this module wraps or replaces, with the reason.
SHIMS = {
    (
        "python/sglang/srt/models/mimo_audio.py",
        "AudioEncoderMixin.build_audio_encoder",
    ): (
        "builds the audio tokenizer on torch.cuda.current_device(); here it is built on "
        "the CPU (the original body runs, only the device differs)"
    ),
    (
        "python/sglang/srt/models/mimo_audio.py",
        "AudioEncoderMixin._load_mimo_audio_tokenizer",
    ): "called with the CPU device instead of cuda:N (the original body runs)",
    (
        "python/sglang/srt/layers/attention/torch_native_backend.py",
        "TorchNativeAttnBackend.forward_extend",
    ): (
        "MiMoV2Attention passes sinks=...; the CPU attention backend takes no such "
        "argument. sinks=None is dropped, attention sinks raise"
    ),
    (
        "python/sglang/srt/layers/attention/torch_native_backend.py",
        "TorchNativeAttnBackend.forward_decode",
    ): "as forward_extend",
    ("python/sglang/srt/models/mimo_v2.py", "MiMoV2ForCausalLM.get_image_feature"): (
        "observer, only when SGLANG_MIMO_VISION_DUMP names a folder: saves each call's "
        "pixels, grid and vision-tower output there (the original body runs; its "
        "result is returned unchanged), so a test can compare them with the reference"
    ),
    ("python/sglang/srt/models/mimo_v2.py", "MiMoV2ForCausalLM.get_video_feature"): (
        "as get_image_feature"
    ),
}
# Methods the release lacks and a stand-in adds (the release must not define them).
ADDED = {
    (
        "python/sglang/srt/layers/attention/torch_native_backend.py",
        "TorchNativeAttnBackend.get_cpu_graph_seq_len_fill_value",
    ): (
        "attention-DP padding calls it; v0.5.23 defines it only on the AMX backend "
        "(intel_amx_backend.py), which needs CPU kernels from sgl-kernel; returns 1 as "
        "that backend does"
    ),
}

# sgl-kernel ops the CPU engine imports from the `sgl_kernel` module at import time.
# Only assign_req_to_token_pool_cpu is ever called on the paths the tests drive.


def _assign_req_to_token_pool_cpu(
    req_pool_indices, req_to_token, start_offset, end_offset, out_cache_loc, pool_len
):
    """Stands in for sgl-kernel's assign_req_to_token_pool_cpu (called from
    sglang/srt/mem_cache/allocation.py): the same as that file's triton kernel
    assign_req_to_token_pool, in torch."""
    offset = 0
    for row, start, end in zip(
        req_pool_indices.tolist(), start_offset.tolist(), end_offset.tolist()
    ):
        n = end - start
        if n > 0:
            req_to_token[row, start:end] = out_cache_loc[offset : offset + n].to(
                req_to_token.dtype
            )
        offset += n


class NoCpuKernel(NotImplementedError):
    pass


def _raising(name):
    def op(*args, **kwargs):
        raise NoCpuKernel(
            f"sgl_kernel.{name}: no CPU build of sgl-kernel exists on PyPI; the engine "
            "tests' stand-in implements only assign_req_to_token_pool_cpu"
        )

    op.__name__ = name
    return op


class _SglKernelModule(types.ModuleType):
    """Stands in for the `sgl_kernel` package (PyPI sglang-kernel 0.4.10), a CUDA-only
    wheel that fails to load without libcuda.so.1. Under is_cpu() several SGLang modules
    import `*_cpu` names from it at import time (mem_cache/allocation.py, the
    speculative-decoding modules); those names exist here and raise when called,
    except assign_req_to_token_pool_cpu, which is implemented."""

    def __getattr__(self, name):
        if name == "assign_req_to_token_pool_cpu":
            return _assign_req_to_token_pool_cpu
        if name.endswith("_cpu") and not name.startswith("__"):
            return _raising(name)
        raise AttributeError(f"sgl_kernel (CPU stand-in) has no {name}")


def _install_sgl_kernel():
    module = _SglKernelModule("sgl_kernel")
    module.__path__ = []
    module.__version__ = "0.4.10"
    module.__spec__ = importlib.machinery.ModuleSpec(
        "sgl_kernel", None, is_package=True
    )
    sys.modules["sgl_kernel"] = module


def _install_op_namespace():
    """Module-level reads of torch.ops.sgl_kernel.<op>_cpu (models/qwen3_5.py, which the
    MiMo processor module imports; layers/layernorm.py, ...) fail without the CPU kernel
    library, and SGLang then skips the whole module (for qwen3_5: "No processor
    registered" for MiMo). The namespace answers `*_cpu` names with ops that raise when
    called; SGLang's AMX detection stays off, so none is called."""
    import torch

    class _Namespace(torch._ops._OpNamespace):
        def __getattr__(self, name):
            try:
                return super().__getattr__(name)
            except (AttributeError, RuntimeError):
                if name.endswith("_cpu") and not name.startswith("__"):
                    return _raising(name)
                raise

    torch.ops.__dict__["sgl_kernel"] = _Namespace("sgl_kernel")


def _patch_mimo_audio(module):
    import torch

    mixin = module.AudioEncoderMixin
    build = mixin.build_audio_encoder
    load = mixin._load_mimo_audio_tokenizer

    def build_audio_encoder(self, config):
        saved = torch.cuda.current_device
        torch.cuda.current_device = lambda: 0
        try:
            return build(self, config)
        finally:
            torch.cuda.current_device = saved

    def _load_mimo_audio_tokenizer(path, device):
        if device.type != "cuda":
            raise NoCpuKernel(f"unexpected audio tokenizer device {device}")
        return load(path, torch.device("cpu"))

    mixin.build_audio_encoder = build_audio_encoder
    mixin._load_mimo_audio_tokenizer = staticmethod(_load_mimo_audio_tokenizer)


def _patch_torch_native_backend(module):
    cls = module.TorchNativeAttnBackend
    for name in ("forward_extend", "forward_decode"):
        original = getattr(cls, name)

        def method(
            self,
            q,
            k,
            v,
            layer,
            forward_batch,
            save_kv_cache=True,
            sinks=None,
            _original=original,
            _name=name,
            **kwargs,
        ):
            if sinks is not None:
                raise NoCpuKernel(
                    f"TorchNativeAttnBackend.{_name}: attention sinks are not "
                    "implemented by SGLang's CPU attention backend"
                )
            return _original(
                self, q, k, v, layer, forward_batch, save_kv_cache, **kwargs
            )

        setattr(cls, name, method)
    if not hasattr(cls, "get_cpu_graph_seq_len_fill_value"):
        cls.get_cpu_graph_seq_len_fill_value = lambda self: 1


def _observe_mimo_v2_vision(module):
    import itertools
    import os

    import torch

    folder = os.environ["SGLANG_MIMO_VISION_DUMP"]
    calls = itertools.count()
    cls = module.MiMoV2ForCausalLM
    for kind in ("image", "video"):
        original = getattr(cls, f"get_{kind}_feature")

        def observed(self, items, _original=original, _kind=kind):
            out = _original(self, items)
            grid = f"{_kind}_grid_thw"
            torch.save(
                {
                    "pixel_values": torch.cat([i.feature for i in items]).cpu(),
                    "grid_thw": torch.cat([getattr(i, grid) for i in items]).cpu(),
                    "output": out.detach().float().cpu(),
                },
                os.path.join(folder, f"{_kind}-{os.getpid()}-{next(calls)}.pt"),
            )
            return out

        setattr(cls, f"get_{kind}_feature", observed)


_AFTER_IMPORT = {
    "sglang.srt.models.mimo_audio": _patch_mimo_audio,
    "sglang.srt.layers.attention.torch_native_backend": _patch_torch_native_backend,
}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a stand-in right after the named SGLang module has executed."""

    def find_spec(self, name, path=None, target=None):
        if name not in _AFTER_IMPORT:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module

        def run(module, _exec=exec_module, _name=name):
            _exec(module)
            _AFTER_IMPORT[_name](module)

        spec.loader.exec_module = run
        return spec


def install():
    import os

    if os.environ.get("SGLANG_MIMO_VISION_DUMP"):
        _AFTER_IMPORT["sglang.srt.models.mimo_v2"] = _observe_mimo_v2_vision
    sys.meta_path.insert(0, _AfterImport())
    _install_op_namespace()
    _install_sgl_kernel()
