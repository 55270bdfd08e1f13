"""What the pinned ``sglang.launch_server`` decides before it spawns a worker, run offline.

For one recipe rank, :func:`check_rank` calls, in the order ``launch_server`` calls them
(``sglang/launch_server.py`` ``__main__`` -> ``run_server`` -> ``http_server.launch_server``
-> ``Engine._launch_subprocesses``, SGLang v0.5.23):

1. ``sglang.srt.server_args.prepare_server_args(argv)``: SGLang's own argparse;
2. ``ServerArgs.resolve_once()``: the whole resolution pipeline
   (``srt/arg_groups/pipeline.py``), with every hook and model override that reads the
   model's ``config.json`` through ``ModelConfig`` (``model_hook.py``'s
   ``MiMoV2ForCausalLM`` branch with ``get_mimo_v2_fused_qkv_expected_tp_size``, the
   speculative, parallel, memory and attention-backend hooks ...);
3. ``ServerArgs.check_server_args()`` (``arg_groups/validation_hook.py``);
4. ``resolve_auto_parsers(server_args)`` (``parser/template_detection.py``).

Not called: ``_set_envs_and_config`` (it sets this process's environment, rlimits and
signal handlers and checks the image's kernel packages: nothing about the recipe), and
what follows publication: port allocation and the scheduler spawn, which load weights.

``--model-path`` is pointed at a directory holding the model's ``config.json``
(``recipes/configs/<model>``). The machine is the one stand-in: :class:`GpuStandIn`
answers torch's CUDA queries (availability, device count, compute capability, memory)
with the recipe's hardware, because this runs where there is no GPU; SGLang's own probes
(``is_cuda``, ``get_device_sm``, ``get_device_memory_capacity`` ...) read those answers.
Needs the pinned sglang importable (the project venv); imported once per process.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

from sglang_mimo import argcheck
from sglang_mimo.sizing import config_dir

if TYPE_CHECKING:
    from sglang_mimo.rank import RankLaunch
    from sglang_mimo.recipes import Recipe

# Compute capability of each image target's GPU (docker/docker-bake.hcl targets).
TARGET_CAPABILITY = {"sm90": (9, 0), "sm121a": (12, 1)}

# ServerArgs fields reported back after resolution (SGLang's resolved values).
RESOLVED_FIELDS = (
    "tp_size", "pp_size", "dp_size", "attn_dp_size", "attn_cp_size", "ep_size",
    "moe_dense_tp_size", "nnodes", "node_rank", "attention_backend",
    "mm_attention_backend", "kv_cache_dtype", "quantization", "mem_fraction_static",
    "max_running_requests", "context_length", "chunked_prefill_size",
    "speculative_algorithm", "enable_multi_layer_eagle", "swa_full_tokens_ratio",
    "enable_dp_lm_head", "mm_enable_dp_encoder",
)  # fmt: skip


@dataclass
class Verdict:
    recipe: str
    node_rank: int
    ok: bool
    message: str = ""
    resolved: dict[str, Any] = field(default_factory=dict)


class GpuStandIn:
    """torch.cuda answering as ``count`` GPUs of ``capability`` with ``memory_gib`` each.

    Only the queries SGLang's startup makes; nothing is allocated. SGLang's probes
    that cached the CPU answers at import time are cleared on entry and on exit.
    """

    def __init__(
        self, name: str, count: int, capability: tuple[int, int], memory_gib: float
    ) -> None:
        self.props = types.SimpleNamespace(
            name=name,
            total_memory=int(memory_gib * 2**30),
            major=capability[0],
            minor=capability[1],
            multi_processor_count=0,
        )
        self.count = count
        self._stack: contextlib.ExitStack | None = None

    @classmethod
    def for_recipe(cls, recipe: Recipe) -> GpuStandIn:
        hw = recipe.hardware
        return cls(
            hw.gpu,
            hw.gpus_per_node,
            TARGET_CAPABILITY[recipe.image.target],
            hw.gpu_memory_gib,
        )

    def __enter__(self) -> GpuStandIn:
        import torch

        p = self.props
        free_total = (p.total_memory, p.total_memory)
        self._stack = contextlib.ExitStack()
        for name, value in (
            ("is_available", lambda: True),
            ("device_count", lambda: self.count),
            ("get_device_capability", lambda device=None: (p.major, p.minor)),
            ("get_device_properties", lambda device=None: p),
            ("get_device_name", lambda device=None: p.name),
            ("mem_get_info", lambda device=None: free_total),
        ):
            self._stack.enter_context(mock.patch.object(torch.cuda, name, value))
        if torch.version.cuda is None:  # a CPU-only torch build
            self._stack.enter_context(mock.patch.object(torch.version, "cuda", "13.0"))
        _clear_sglang_probe_caches()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stack is not None:
            self._stack.close()
        _clear_sglang_probe_caches()


def _clear_sglang_probe_caches() -> None:
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("sglang."):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()


@functools.lru_cache(maxsize=1)
def _sglang() -> tuple[Callable[[Sequence[object]], Any], Callable[[Any], Any]]:
    """Import the pinned SGLang's startup entry points once per process.

    Everything the startup path imports lazily is imported here, on this machine's
    real (CPU) answers, as ``launch_server`` imports it before resolving: modules that
    load CUDA kernels when they see a GPU must not be imported under the stand-in.
    """
    import importlib
    import pkgutil

    import sglang.srt.arg_groups as groups
    import sglang.srt.configs.model_config  # noqa: F401
    import sglang.srt.entrypoints.engine  # noqa: F401
    from sglang.srt.parser.template_detection import resolve_auto_parsers

    for mod in pkgutil.walk_packages(groups.__path__, groups.__name__ + "."):
        importlib.import_module(mod.name)

    return argcheck.prepare, resolve_auto_parsers


def argv_with_model(argv: Sequence[str], model_dir: str | Path) -> list[str]:
    """The rank's argv with ``--model-path`` pointed at ``model_dir``."""
    out = list(argv)
    for i, tok in enumerate(out[:-1]):
        if tok == "--model-path":
            out[i + 1] = str(model_dir)
            return out
    raise ValueError("argv has no --model-path")


def check_argv(
    argv: Sequence[object], gpu: GpuStandIn, recipe_name: str = "", node_rank: int = 0
) -> Verdict:
    """Run SGLang's pre-spawn startup on ``argv`` under ``gpu`` (a GpuStandIn);
    its argparse step is ``argcheck.prepare``, the one probe of SGLang's parser."""
    prepare, resolve_auto_parsers = _sglang()
    captured = io.StringIO()
    environ = dict(os.environ)
    root = logging.getLogger()
    level = root.level
    verdict = Verdict(recipe_name, node_rank, ok=False)
    try:
        root.setLevel(logging.ERROR)
        with (
            gpu,
            contextlib.redirect_stderr(captured),
            contextlib.redirect_stdout(captured),
        ):
            args = prepare(argv)
            args.resolve_once()
            args.check_server_args()
            resolve_auto_parsers(args)
            resolved = args.resolved_dict()
            verdict.resolved = {f: resolved.get(f) for f in RESOLVED_FIELDS}
        verdict.ok = True
    except argcheck.Refused as e:  # argparse
        verdict.message = f"{e} (exit {e.code})"
    except Exception as e:  # SGLang refused: its own exception and message
        verdict.message = f"{type(e).__name__}: {e}"
    finally:
        root.setLevel(level)
        os.environ.clear()
        os.environ.update(environ)
    return verdict


def check_rank(
    recipe: Recipe, launch: RankLaunch, model_dir: str | Path | None = None
) -> Verdict:
    """SGLang's verdict on one rendered rank (``recipes.RankLaunch``) of ``recipe``."""
    model_dir = Path(model_dir or config_dir(recipe.model.id))
    return check_argv(
        argv_with_model(launch.argv, model_dir),
        GpuStandIn.for_recipe(recipe),
        recipe.name,
        launch.node_rank,
    )


# Flags the launcher owns or the site gives: no reason asked of the recipe.
NO_REASON_NEEDED = ("--model-path", "--nnodes", "--node-rank", "--dist-init-addr")


def departures(argv: Sequence[object]) -> list[str]:
    """Flags of ``argv`` whose value, as SGLang's own parser reads it, differs from
    SGLang's default for that flag (in argv order)."""
    parser = argcheck.server_parser()
    parsed = parser.parse_args([str(a) for a in argv])
    actions = parser._option_string_actions
    out = []
    for tok in argv:
        tok = str(tok)
        if not tok.startswith("--") or tok in NO_REASON_NEEDED:
            continue
        action = actions[tok.split("=", 1)[0]]
        if getattr(parsed, action.dest) != action.default:
            out.append(tok)
    return out
