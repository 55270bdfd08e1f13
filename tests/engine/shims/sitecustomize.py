"""Loaded at interpreter start in every process of an engine-test server (this folder is on
its PYTHONPATH): installs the CPU stand-ins of sglang_mimo_cpu_shims.py."""
import os

if os.environ.get("SGLANG_USE_CPU_ENGINE") == "1":
    import sglang_mimo_cpu_shims

    sglang_mimo_cpu_shims.install()
