#!/usr/bin/env python3
"""Run the ``@pytest.mark.cuda`` tests of tests/regression/ on a CUDA machine, both ways.

The both-ways harness (tests/test_both_ways.py) runs tests/regression/ against an
unpatched and a patched SGLang tree, but on a machine without a GPU its CUDA tests
skip. This tool runs exactly those tests on a GPU machine that has torch but cannot
install anything (no network), in two steps:

``prepare`` (here, with network)
    builds the two trees as the harness's ``trees`` fixture does
    (``sglang_mimo.bothways.build_trees``: the pinned wheel, unpacked with
    everything, hard-linked into ``unpatched`` and ``patched``, the patched one put
    through the apply engine) from the pinned
    wheel of the GPU machine's Python (``--wheel``, default x86_64-cp312; its compiled
    Rust extensions, loaded only on demand, left out to fit the carry); copies
    tests/regression/; downloads the wheels of the packages the GPU machine lacks
    (``--pkg``, default ``DEVICE_PACKAGES``) and installs them with pip into a scratch
    site folder. It packs the three into ``.device/carry/`` (xz tarballs: the trees
    share their unchanged files through hard links, the site its byte-identical
    libraries, so the whole stays under the 64 MiB a device call carries).

``run`` (there: ``python3 scripts/device_cuda_tests.py run --out "$OUT"``)
    unpacks the site into /tmp/site and the trees under --work, then runs
    ``pytest -m cuda`` over the copied regression folder once per tree, with
    SGLANG_MIMO_TREE / PYTHONPATH / SGLANG_MIMO_REPORT set as the harness sets them,
    and judges the reports with the harness's own rule (``sglang_mimo.bothways``,
    ``gpu=True``): on the patched tree every test passes; on the unpatched tree each
    test that proves a patch fails (with its message, when one is named) and every
    other test passes. A CUDA test that skips there, or fails by a
    ModuleNotFoundError, did not run, and counts as wrong. Writes report-TREE.json,
    pytest-TREE.log and summary.json into --out; exit 0 only when the verdict is
    right.

``judge DIR`` judges an earlier run's report-TREE.json files again (here).

Files are discovered by pytest (``-m cuda`` over the folder), never named here; the
files under registered/ prove the patch whose ``Regression-Test`` trailer names them,
read by ``sglang_mimo.bothways.registered_files`` at ``prepare`` (into the manifest).

    .venv/bin/python scripts/device_cuda_tests.py prepare
    # copy the checkout with .device/carry/ to the GPU machine; there:
    #   PYTHONUNBUFFERED=1 python3 scripts/device_cuda_tests.py run --out OUT
    python3 scripts/device_cuda_tests.py judge DIR    # DIR: OUT, copied back here
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from sglang_mimo import bothways  # noqa: E402  (standard library only)

DEVICE = REPO / ".device"  # ignored by git (.gitignore)
CARRY = DEVICE / "carry"  # the one folder copied to the GPU machine
CACHE = DEVICE / "cache"  # downloads and staging; never carried
TREES = bothways.TREES
# The GPU machine's interpreter (Python 3.12 on x86-64).
DEVICE_WHEEL = "x86_64-cp312"
# What the import closure of tests/regression/ needs (collected, plus the modules the
# CUDA tests import in their bodies) that the GPU machine's image lacks (beside its
# preinstalled torch, triton and transformers), at the versions .venv holds (`make venv`: sglang==0.5.23's own
# dependency set, tests/requirements.txt). `closure` lists the distributions imported
# here. Left out, being optional imports (of sglang, or of transformers when installed)
# or too large to carry: flashinfer-python, flash-attn-4, torchcodec, kernels, and
# sglang-kernel (373 MB, built for torch 2.14), which the pinned release imports at
# module level on CUDA (layers/layernorm.py, activation.py, ...): tests that build
# sglang layers cannot run there (see scripts/bench_results/cuda-tests-h200/). The machine's
# own torch 2.11, triton 3.6 and transformers 5.17 stand in for the pinned 2.14.1,
# 3.8 and 5.19 (the first two cannot be carried).
DEVICE_PACKAGES = [
    # tests/requirements.txt: the video decoder tests
    "decord2==3.4.0",
    "av==18.1.0",
    # sglang's import-time dependencies missing there
    "annotated-types==0.8.0",
    "apache-tvm-ffi==0.1.11",  # sglang/kernels/ops/communication/all_reduce.py (CUDA)
    "compressed-tensors==0.18.0",
    "datasets==5.2.0",
    "dill==0.4.1",
    "distro==1.9.0",
    "fastapi==0.165.0",
    "gguf==0.19.0",
    "ipython==9.18.1",  # sglang/utils.py: from IPython.display import HTML, display
    "jiter==0.19.0",
    "loguru==0.7.3",
    "mistral_common==1.13.1",
    "msgspec==0.23.0",
    "multiprocess==0.70.19",
    "openai==2.8.0",
    "opentelemetry-api==1.45.2",
    "orjson==3.13.0",
    "partial-json-parser==0.2.1.1.post7",
    "pybase64==1.5.1",
    "pycountry==26.2.16",
    "pydantic==2.14.4",
    "pydantic-extra-types==2.11.1",
    "pydantic_core==2.50.5",
    "pyzmq==27.3.0",
    "sniffio==1.3.1",
    "traitlets==5.16.1",
    "soundfile==0.13.1",
    "cffi==2.1.1",
    "pycparser==3.12",
    "starlette==1.10.0",
    "typing-inspection==0.4.5",
    "uvicorn==0.55.0",  # sglang/srt/disaggregation/encoder/receiver.py
    "zstandard==0.25.0",
]
PLATFORMS = [
    "manylinux_2_34_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
# Modules the CUDA tests import inside their bodies (collection alone does not).
BODY_IMPORTS = [
    "sglang.kernels.ops.attention.prefill_attention",
    "sglang.srt.models.mimo_audio",
    "sglang.srt.layers.attention.vision",
    "sglang.srt.utils.video_decoder",
]


def say(msg):
    print(f"[device-cuda-tests] {msg}", flush=True)


# --- prepare (here) -----------------------------------------------------------------


def build_trees(key: str, dest: Path) -> dict[str, Path]:
    """{"unpatched": Path, "patched": Path} under dest, as the ``trees`` fixture builds
    them (``bothways.build_trees``), from the pinned wheel ``key``."""
    from sglang_mimo import paths, wheels

    wheel = wheels.fetch_pinned(paths.load_pin(), paths.BUILD, key)
    say(f"pinned wheel {wheel}")
    shutil.rmtree(dest, ignore_errors=True)
    pristine = wheels.unpack_wheel(wheel, dest / "pristine", skip_suffixes=())
    built, out = bothways.build_trees(pristine, dest / "trees")
    unpatched, patched = built["unpatched"], built["patched"]
    say(f"apply engine: {out.summary} ({len(out.states)} patches)")
    shutil.rmtree(pristine)  # the trees keep their links
    # Trimmed to fit the carry: the wheel's compiled Rust extensions (44 MiB;
    # sglang/srt/rust_extensions, mem_cache/rust_tree_core), loaded only on demand
    # (load_rust_extension) by code the regression tests do not reach.
    for tree in (unpatched, patched):
        for so in tree.rglob("*.so"):
            so.unlink()
    return {"unpatched": unpatched, "patched": patched}


def download_site(packages, site):
    """pip download the wheels (cached under .device/cache/wheels) and install them with
    pip into ``site`` for the device's interpreter; returns the wheel file names."""
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    py = DEVICE_WHEEL.split("-")[1][2:]
    target = ["--only-binary=:all:", "--implementation", "cp", "--python-version", py]
    target += [a for p in PLATFORMS for a in ("--platform", p)]
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        pip + ["download", "-q", "--no-deps", *target, "-d", wheels, *packages],
        check=True,
    )

    def norm(name):
        return name.replace("-", "_").replace(".", "_").lower()

    wanted = {(norm(p.split("==")[0]), p.split("==")[1]) for p in packages}
    files = sorted(
        w
        for w in wheels.glob("*.whl")
        if (norm(w.name.split("-")[0]), w.name.split("-")[1]) in wanted
    )
    if len(files) != len(wanted):
        raise SystemExit(f"wheels found {[w.name for w in files]}, wanted {wanted}")
    shutil.rmtree(site, ignore_errors=True)
    subprocess.run(
        pip
        + ["install", "-q", "--no-deps", "--no-index", "--no-compile", *target]
        + ["--target", site, *files],
        check=True,
    )
    return [w.name for w in files]


def link_duplicates(folder):
    """Hard-link byte-identical files (decord2 and av bundle the same libraries),
    so that tar stores each once."""
    import hashlib

    seen, saved = {}, 0
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        if path.is_symlink():
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            path.unlink()
            os.link(seen[digest], path)
            saved += path.stat().st_size
        else:
            seen[digest] = path
    return saved


def pack(src, arcname, dest):
    """xz tarball of ``src`` as ``arcname``; files ordered by base name so that the
    twins of two trees or two wheels sit side by side (tarfile keeps hard links)."""
    src = Path(src)
    members = sorted(
        (p for p in src.rglob("*") if not p.is_dir()),
        key=lambda p: (p.name, str(p)),
    )
    with tarfile.open(dest, "w:xz", preset=9) as tar:
        for d in sorted(p for p in src.rglob("*") if p.is_dir()):
            tar.add(d, f"{arcname}/{d.relative_to(src)}", recursive=False)
        for p in members:
            tar.add(p, f"{arcname}/{p.relative_to(src)}", recursive=False)
    return dest.stat().st_size


def prepare(args):
    t0 = time.time()
    CARRY.mkdir(parents=True, exist_ok=True)
    sizes = {}
    if args.only in ("all", "trees"):
        trees = build_trees(args.wheel, CACHE / "build")
        sizes["trees.tar.xz"] = pack(
            trees["unpatched"].parent, "trees", CARRY / "trees.tar.xz"
        )
    if args.only in ("all", "site"):
        site = CACHE / "site"
        wheels = download_site(args.pkg, site)
        say(
            f"site: {', '.join(wheels)}; {link_duplicates(site) >> 20} MiB linked twice"
        )
        sizes["site.tar.xz"] = pack(site, "site", CARRY / "site.tar.xz")
    else:
        wheels = json.loads((CARRY / "manifest.json").read_text())["wheels"]
    # (--only tests: the regression folder and the manifest alone)
    shutil.rmtree(CARRY / "tests", ignore_errors=True)
    shutil.copytree(
        REPO / "tests" / "regression",
        CARRY / "tests" / "regression",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    from sglang_mimo import series

    (CARRY / "manifest.json").write_text(
        json.dumps(
            {
                "prepared": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "wheel": args.wheel,
                "series": series.read_series(),
                # the harness's own reading of the Regression-Test trailers: every
                # test of a registered file proves the patch that names it
                "registered": bothways.registered_files(),
                "unpatched_messages": bothways.UNPATCHED_MESSAGES,
                "wheels": wheels,
                "git_head": subprocess.run(
                    ["git", "-C", REPO, "rev-parse", "HEAD"],
                    capture_output=True,
                    text=True,
                ).stdout.strip(),
            },
            indent=1,
        )
    )
    total = sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file())
    for name, size in sizes.items():
        say(f"{name}: {size / 2**20:.1f} MiB")
    say(f".device/carry: {total / 2**20:.1f} MiB in {time.time() - t0:.0f} s")
    if total > 60 * 2**20:
        say("WARNING: over 60 MiB; the device call carries 64 MiB with the tree")
    return 0


def closure(args):
    """The third-party distributions the regression modules import (collected, plus
    the CUDA tests' body imports), with ``--tree`` first on PYTHONPATH."""
    plugin = CACHE / "closure_plugin.py"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(
        "import importlib, json, os, sys\n"
        "def pytest_collection_finish(session):\n"
        f"    for m in {BODY_IMPORTS!r}:\n"
        "        importlib.import_module(m)\n"
        "    from importlib.metadata import packages_distributions\n"
        "    dists = packages_distributions()\n"
        "    tops = sorted({n.split('.')[0] for n in list(sys.modules)})\n"
        "    out = {t: dists.get(t, []) for t in tops}\n"
        "    with open(os.environ['CLOSURE_OUT'], 'w') as f:\n"
        "        json.dump(out, f, indent=1)\n"
    )
    out = CACHE / "closure.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(args.tree), str(plugin.parent)]),
        "SGLANG_MIMO_TREE": str(args.tree),
        "CLOSURE_OUT": str(out),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "closure_plugin"]
        + ["-p", "no:cacheprovider", str(REPO / "tests" / "regression")],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    data = json.loads(out.read_text())
    dists = sorted({d for ds in data.values() for d in ds})
    print("\n".join(dists))
    return 0


# --- run (on the GPU machine) -------------------------------------------------------


PREFLIGHT = """
import importlib, sys, traceback
import sglang
print("sglang", sglang.__version__, "from", sglang.__file__)
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        print("ok", name)
    except Exception as e:
        print("FAILED", name, type(e).__name__, e)
        traceback.print_exc(limit=-3)
"""


def unpack(archive, dest):
    dest = Path(dest)
    shutil.rmtree(dest / archive.name.split(".")[0], ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="fully_trusted")


def sh(cmd):
    try:
        return subprocess.run(
            cmd, shell=True, capture_output=True, text=True, timeout=60
        ).stdout.strip()
    except Exception as e:  # noqa: BLE001  (a missing tool is a note, not an error)
        return f"({e})"


def with_registered(
    results: dict[str, bothways.Result], manifest: dict[str, Any]
) -> dict[str, bothways.Result]:
    """The report's results in node id order, each test of a registered file proving
    the patch whose Regression-Test trailer names the file (``bothways.attribute``,
    with the manifest's reading of the trailers)."""
    return bothways.attribute(
        dict(sorted(results.items())),
        manifest.get("registered", {}),
        manifest.get("unpatched_messages", {}),
    )


def judge(
    tree: str, results: dict[str, bothways.Result], manifest: dict[str, Any]
) -> list[str]:
    """The harness's rule (``bothways.judge``) on a GPU machine: a CUDA test that
    skips there did not run, and one that fails for a package the machine lacks
    proves nothing: both are wrong here."""
    return bothways.judge(tree, results, manifest.get("registered", {}), gpu=True)


def run(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    manifest = json.loads((CARRY / "manifest.json").read_text())
    unpack(CARRY / "site.tar.xz", "/tmp")  # -> /tmp/site
    unpack(CARRY / "trees.tar.xz", args.work)  # -> WORK/trees/{unpatched,patched}
    say(f"unpacked in {time.time() - t0:.1f} s")
    summary = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "host": platform.node(),
        "python": sys.version.split()[0],
        "gpu": sh(
            "nvidia-smi --query-gpu=name,memory.total,driver_version "
            "--format=csv,noheader"
        ),
        "versions": sh(
            f"{sys.executable} -c 'import torch, triton; "
            "print(torch.__version__, torch.version.cuda, triton.__version__, "
            "torch.cuda.get_device_name(0))'"
        ),
        "manifest": manifest,
        "trees": {},
    }
    say(f"GPU: {summary['gpu']}; {summary['versions']}")
    verdict = {}
    for tree in TREES:
        tree_dir = Path(args.work) / "trees" / tree
        report = out / f"report-{tree}.json"
        env = {
            **os.environ,
            # as tests/test_both_ways.py run_files: the tree first on PYTHONPATH
            "PYTHONPATH": os.pathsep.join(
                [str(tree_dir), "/tmp/site"]
                + [p for p in [os.environ.get("PYTHONPATH")] if p]
            ),
            "SGLANG_MIMO_TREE": str(tree_dir),
            "SGLANG_MIMO_REPORT": str(report),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        # Preflight: the modules the tests import, so that a missing package shows
        # as one line here rather than as a collection error further down.
        pre = subprocess.run(
            [sys.executable, "-c", PREFLIGHT, *BODY_IMPORTS],
            env=env,
            capture_output=True,
            text=True,
        )
        for line in (pre.stdout + pre.stderr).splitlines():
            if line.startswith(("sglang ", "ok ", "FAILED ")) or "Error" in line:
                say(f"{tree} preflight: {line}")
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA"]
        cmd += ["--continue-on-collection-errors", "-m", "cuda"]
        cmd += ["-c", str(REPO / "pyproject.toml"), "--rootdir", str(CARRY)]
        cmd += ["tests/regression"] + args.pytest_args
        say(f"{tree}: {' '.join(cmd)}")
        t1 = time.time()
        with open(out / f"pytest-{tree}.log", "w") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=CARRY,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            proc.wait()
        wall = time.time() - t1
        results = with_registered(
            json.loads(report.read_text())["results"] if report.exists() else {},
            manifest,
        )
        wrong = judge(tree, results, manifest) if results else ["no report / no tests"]
        verdict[tree] = wrong
        summary["trees"][tree] = {
            "exit": proc.returncode,
            "wall_s": round(wall, 1),
            "outcomes": {k: v["outcome"] for k, v in sorted(results.items())},
            "proves": {k: v["fixes"] for k, v in sorted(results.items())},
            "wrong": wrong,
        }
    summary["wall_s"] = round(time.time() - t0, 1)
    summary["ok"] = not any(verdict.values())
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print()
    for tree in TREES:
        s = summary["trees"][tree]
        say(f"== {tree} tree: pytest exit {s['exit']}, {s['wall_s']} s")
        for nodeid, outcome in s["outcomes"].items():
            say(f"   {outcome:8} {nodeid}")
        for w in s["wrong"]:
            say(f"   WRONG: {w}")
    say(
        "VERDICT: "
        + ("both ways as required" if summary["ok"] else "NOT as required")
        + f" (total {summary['wall_s']} s)"
    )
    return 0 if summary["ok"] else 1


def rejudge(args):
    """Judge the raw reports of an earlier run again (report-TREE.json in DIR), with
    the manifest of the current .device/carry (or --manifest)."""
    manifest = json.loads(Path(args.manifest).read_text())
    ok = True
    for tree in TREES:
        results = with_registered(
            json.loads((Path(args.dir) / f"report-{tree}.json").read_text())["results"],
            manifest,
        )
        wrong = judge(tree, results, manifest)
        ok &= not wrong
        say(f"== {tree} tree")
        for nodeid, r in sorted(results.items()):
            say(f"   {r['outcome']:8} {nodeid}  [{r['fixes'] or 'unmarked'}]")
        for w in wrong:
            say(f"   WRONG: {w}")
    say("VERDICT: " + ("both ways as required" if ok else "NOT as required"))
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare", help="build and pack .device/carry (here)")
    p.add_argument("--wheel", default=DEVICE_WHEEL, help="pinned wheel key")
    p.add_argument("--pkg", nargs="*", default=DEVICE_PACKAGES)
    p.add_argument(
        "--only",
        choices=["all", "trees", "site", "tests"],
        default="all",
        help="rebuild only this part (the others are kept from an earlier prepare); "
        "the regression folder and the manifest are always renewed",
    )
    p.set_defaults(func=prepare)
    c = sub.add_parser("closure", help="distributions the regression modules import")
    c.add_argument("--tree", type=Path, default=CACHE / "build" / "trees" / "patched")
    c.set_defaults(func=closure)
    r = sub.add_parser("run", help="run the CUDA tests both ways (on the GPU machine)")
    r.add_argument("--out", default=os.environ.get("OUT") or str(DEVICE / "out"))
    r.add_argument("--work", default="/tmp/sglang-mimo-cuda", help="trees go here")
    r.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    r.set_defaults(func=run)
    j = sub.add_parser("judge", help="judge an earlier run's reports again")
    j.add_argument("dir", help="the folder holding report-TREE.json")
    j.add_argument("--manifest", default=str(CARRY / "manifest.json"))
    j.set_defaults(func=rejudge)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
