"""Stand-in base images for the image build in CI (no registry can be reached here).

A stand-in is what the Dockerfile needs from upstream's release image and nothing
more: a minimal Debian root (debootstrap) with Python 3, ``patch``, the CA bundle,
the pinned sglang wheel of that architecture installed without its dependencies,
and the few packages that importing the patched modules needs (CPU torch, not the
GPU stack; on arm64 also what sglang installs there for media instead of torchcodec,
decord2 and av at its pin, and torchaudio, which MiMo's audio path needs, as upstream's
arm64 image has them). It is imported under the real base image's name, so the
Dockerfile and the bake file run unchanged.

Stand-in limits, on purpose: Debian's Python 3.11 (upstream uses 3.12; the arm64
wheel is cp312 only, so its pure-Python files are installed into 3.11 and its Rust
extensions are unused), CPU torch (2.13.0+cpu on amd64, 2.10.0 on arm64: the last
CPU-only aarch64 build on PyPI) with the matching torchvision (on amd64 loaded through
the stand-in shim in standin-files/, as PyPI's x86_64 torchvision is built for CUDA
torch) and, on arm64, the matching torchaudio 2.10.0 (sglang pins 2.11.0 beside its
torch 2.14.1, whose aarch64 build is CUDA's and segfaults on import under QEMU), and
no nvidia-nccl-cu13.

    python3 tests/images/standin.py amd64|arm64 [--tag NAME]...
    python3 tests/images/standin.py --roots amd64 arm64    # the roots only (make image-prep)

Built roots are cached as tarballs under ~/.cache/sglang-mimo/standin, keyed by the
inputs; an image already in the engine with the same key is reused as it is.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PIN_FILE = REPO / "patches" / "pin.json"
CACHE = (
    Path(os.environ.get("SGLANG_MIMO_CACHE", Path.home() / ".cache" / "sglang-mimo"))
    / "standin"
)
MIRROR = os.environ.get("SGLANG_MIMO_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
PYVER = "3.11"
LABEL_KEY = "io.github.sglang-mimo.standin-key"
# Bump when the way a stand-in is built changes (its inputs below are hashed as well).
STANDIN_FORMAT = 1

# What importing the patched modules needs, beyond the sglang wheel (found by
# importing until nothing failed).
IMPORT_PACKAGES = [
    "numpy==2.3.5",
    "orjson==3.13.0",
    "psutil==7.2.2",
    "pybase64==1.5.1",
    "requests==2.34.2",
    "packaging==26.3",
    "pillow==13.0.0",
    "starlette==1.10.0",
    "msgspec==0.22.0",
    "pydantic==2.14.3",
    "pyzmq==27.3.0",
    "tqdm==4.70.1",
    "ipython==9.18.1",
    "aiohttp==3.14.5",
    "pyyaml==6.0.3",  # also what the launcher (scripts/launch) reads recipes with
    # what the launcher validates recipes with (the real base has it through
    # sglang -> outlines / outlines_core / mistral_common)
    "jsonschema==4.26.0",
    "einops==0.8.2",
    "transformers==5.19.0",
    "apache-tvm-ffi==0.1.11",
    "dill==0.4.1",
    "sentencepiece==0.2.1",
    "gguf==0.19.0",
    "openai==2.8.0",
    "partial-json-parser==0.2.1.1.post7",
    "fastapi==0.165.0",
    "loguru==0.7.3",
    "soundfile==0.13.1",
    "uvloop==0.23.0",
    "uvicorn==0.54.0",
    # torch's own (pure Python) dependencies: torch itself goes in with --no-deps,
    # because pip judges its CUDA requirements' markers by this machine, not the target.
    "filelock==4.2.11",
    "typing-extensions==4.16.0",
    "sympy==1.14.0",
    "networkx==3.6.1",
    "jinja2==3.1.6",
    "fsspec==2026.9.0",
]

# What importing the patched modules never loads, dropped from the stand-in (about
# 0.5 GB of its 2.2): triton's bundled compiler binaries (ptxas, ROCm libraries), its
# CUDA profiling libraries and profiler (cupti, proton), torch's C++ headers and test
# binaries (not torch_shm_manager, which importing torch looks for). Glob patterns. The
# image build imports every patched module, so a path wrongly listed here fails the build.
STRIP = [
    "triton/backends/nvidia/bin",
    "triton/backends/nvidia/lib/cupti",
    "triton/backends/nvidia/lib/cupti-blackwell",
    "triton/backends/amd/lib",
    "triton/_C/libproton.so",
    "triton/instrumentation",
    "torch/bin/test_*",
    "torch/bin/protoc*",
    "torch/bin/TCPStoreTest",
    "torch/include",
    "torch/test",
]

ARCHES = {
    "amd64": {
        "uname": "x86_64",
        "platform": "linux/amd64",
        "glibc_arch": "x86_64",
        # 2.13.0+cpu from the local wheel cache (pip's find-links) when present.
        "no_deps": [
            "torch==2.13.0",
            "triton==3.8.0",
            "torchvision==0.28.0",
            "compressed-tensors==0.18.0",
        ],
        # PyPI's x86_64 torchvision is built for CUDA torch: see standin-files/.
        "shims": ["_standin_torchvision"],
    },
    "arm64": {
        "uname": "aarch64",
        "platform": "linux/arm64",
        "glibc_arch": "aarch64",
        "no_deps": [
            "torch==2.10.0",
            "triton==3.8.0",
            "torchvision==0.25.0",
            "torchaudio==2.10.0",
            "compressed-tensors==0.18.0",
            "decord2==3.4.0",
            "av==16.1.0",
        ],
        "shims": [],
    },
}


def pip_platforms(arch):
    """pip --platform options for every manylinux tag bookworm's glibc (2.36) can run."""
    a = ARCHES[arch]["glibc_arch"]
    tags = [f"manylinux_2_{minor}_{a}" for minor in range(36, 16, -1)] + [
        f"manylinux2014_{a}"
    ]
    return [opt for t in tags for opt in ("--platform", t)]


def log(msg):
    print(f"standin: {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def pin():
    return json.loads(PIN_FILE.read_text())


def wheel_entry(arch):
    """(key, filename, sha256) of the pinned wheel for ``arch``: same Python as the stand-in if pinned."""
    wheels = pin()["wheels"]
    prefix = ARCHES[arch]["uname"] + "-"
    keys = [k for k in wheels if k.startswith(prefix)]
    want = prefix + "cp" + PYVER.replace(".", "")
    key = want if want in keys else sorted(keys)[0]
    return key, wheels[key]["filename"], wheels[key]["sha256"]


def fetch_wheel(arch):
    """The pinned sglang wheel for ``arch``, downloaded and sha256-checked (sglang_mimo.wheels)."""
    if str(REPO / "scripts") not in sys.path:
        sys.path.insert(0, str(REPO / "scripts"))
    from sglang_mimo import paths, wheels

    return wheels.fetch_pinned(pin(), paths.BUILD, wheel_entry(arch)[0])


def cache_key(arch):
    """Digest of everything that goes into the stand-in (not of this file's prose)."""
    inputs = [
        STANDIN_FORMAT,
        arch,
        SUITE,
        PYVER,
        wheel_entry(arch),
        IMPORT_PACKAGES,
        ARCHES[arch],
        STRIP,
    ]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]


def image_id(name):
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def image_key(name):
    out = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            '{{ index .Config.Labels "%s" }}|{{ .Architecture }}' % LABEL_KEY,
            name,
        ],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def debootstrap(arch, root):
    include = "python3,patch,ca-certificates"
    if arch == "amd64":
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--arch={arch}",
                f"--include={include}",
                SUITE,
                root,
                MIRROR,
            ],
            stdout=subprocess.DEVNULL,
        )
        return
    # Foreign arch: first stage here, second stage under qemu-user (binfmt_misc).
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--arch={arch}",
            "--foreign",
            f"--include={include}",
            SUITE,
            root,
            MIRROR,
        ],
        stdout=subprocess.DEVNULL,
    )
    run(
        ["chroot", root, "/debootstrap/debootstrap", "--second-stage"],
        stdout=subprocess.DEVNULL,
    )


def install_python_packages(arch, root):
    """Install the wheel and the import packages into the root, from here (not emulated)."""
    site = Path(root) / "usr" / "local" / "lib" / f"python{PYVER}" / "dist-packages"
    site.mkdir(parents=True, exist_ok=True)
    a = ARCHES[arch]
    wpy = wheel_entry(arch)[0].split("-")[1]
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-compile",
        "--target",
        str(site),
    ]
    pip += ["--implementation", "cp", "--only-binary=:all:"]
    # The sglang wheel without its dependencies (the GPU stack is the base's job).
    run(pip + ["--no-deps", "--platform", f"manylinux_2_34_{a['uname']}",
               "--python-version", wpy[2:], "--abi", wpy, fetch_wheel(arch)])  # fmt: skip
    target = [
        *pip_platforms(arch),
        "--python-version",
        PYVER,
        "--abi",
        "cp" + PYVER.replace(".", ""),
    ]
    run(pip + target + ["--no-deps", *a["no_deps"]])
    run(pip + target + IMPORT_PACKAGES)
    shutil.rmtree(site / "bin", ignore_errors=True)
    # Each shim is loaded at start-up by a .pth file; see the module's docstring.
    for shim in a["shims"]:
        src = HERE / "standin-files" / f"{shim}.py"
        shutil.copyfile(src, site / src.name)
        (site / f"{shim}.pth").write_text(f"import {shim}\n")
    for pattern in STRIP:
        for path in site.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def add_ca_bundle(root):
    """This machine's CA bundle, so that HTTPS from inside a build works as it does here."""
    src = Path("/etc/ssl/certs/ca-certificates.crt")
    if src.is_file():
        dst = Path(root) / "etc" / "ssl" / "certs" / "ca-certificates.crt"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        d = Path(root) / "usr" / "local" / "share" / "ca-certificates"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(crt, d / crt.name)


def debian_root_tar(arch):
    """The bare Debian root of ``arch`` (debootstrap), cached on its own: it is the slow part."""
    tar = CACHE / f"debian-{SUITE}-{arch}-{STANDIN_FORMAT}.tar"
    if tar.is_file():
        return tar
    work = Path(tempfile.mkdtemp(prefix=f"debian-{arch}-", dir=CACHE))
    try:
        root = work / "root"
        debootstrap(arch, root)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "debootstrap"):
            shutil.rmtree(root / junk, ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        tmp = tar.with_suffix(".part")
        run(["tar", "--numeric-owner", "-C", root, "-cf", tmp, "."])
        tmp.rename(tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tar


def build_rootfs_tar(arch, tar):
    """Build the stand-in root for ``arch`` and pack it into ``tar``."""
    base = debian_root_tar(arch)
    work = Path(tempfile.mkdtemp(prefix=f"standin-{arch}-", dir=tar.parent))
    try:
        root = work / "root"
        root.mkdir()
        run(["tar", "--numeric-owner", "-C", root, "-xf", base])
        install_python_packages(arch, root)
        add_ca_bundle(root)
        tmp = tar.with_suffix(".part")
        run(["tar", "--numeric-owner", "-C", root, "-cf", tmp, "."])
        tmp.rename(tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def import_image(arch, tar, name, key):
    """Import the root as an image of the right architecture."""
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
        f"LABEL {LABEL_KEY}={key}",
        'CMD ["python3"]',
    ]
    if arch == "amd64":
        cmd = ["docker", "import"]
        for c in changes:
            cmd += ["--change", c]
        run(cmd + [tar, name], stdout=subprocess.DEVNULL)
        return
    # `docker import --platform` records amd64 whatever it is told; podman gets it right.
    tmp_name = f"localhost/sglang-mimo-standin-import:{arch}"
    cmd = ["podman", "import", "--arch", arch, "--os", "linux"]
    for c in changes:
        cmd += ["--change", c]
    run(cmd + [tar, tmp_name], stdout=subprocess.DEVNULL)
    try:
        save = subprocess.Popen(
            ["podman", "save", "--format", "docker-archive", tmp_name],
            stdout=subprocess.PIPE,
        )
        run(["docker", "load"], stdin=save.stdout, stdout=subprocess.DEVNULL)
        if save.wait() != 0:
            raise SystemExit("standin: podman save failed")
        run(["docker", "tag", tmp_name, name])
        run(["docker", "rmi", tmp_name], stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["podman", "rmi", "-f", tmp_name], capture_output=True)


def image_name(arch):
    return f"sglang-mimo-standin:{arch}"


def is_current(arch):
    """The engine holds ``arch``'s stand-in built from today's inputs."""
    return image_key(image_name(arch)) == f"{cache_key(arch)}|{arch}"


def root_tar(arch):
    """The stand-in root of ``arch`` as a tarball: cached, built when missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tar = CACHE / f"{arch}-{cache_key(arch)}.tar"
    if not tar.is_file():
        for old in CACHE.glob(f"{arch}-*.tar"):  # the previous stand-in's root
            old.unlink()
        build_rootfs_tar(arch, tar)
    return tar


def build_roots(arches):
    """The roots of ``arches`` as tarballs, built at once (downloads, debootstrap and
    the arm64 stage under QEMU overlap). Needs no Docker engine."""
    with concurrent.futures.ThreadPoolExecutor(max(1, len(arches))) as pool:
        return list(pool.map(root_tar, arches))


def prepare(arches):
    """Build the roots of the stand-ins that are not current; ``ensure`` imports them."""
    build_roots([a for a in arches if not is_current(a)])


def ensure(arch, tags=()):
    """Make the stand-in image ``sglang-mimo-standin:ARCH`` (plus ``tags``); return its name."""
    name = image_name(arch)
    key = cache_key(arch)
    if not is_current(arch):
        tar = root_tar(arch)
        previous = image_id(name)
        import_image(arch, tar, name, key)
        if previous and previous != image_id(name):
            # Gone unless something still uses it (e.g. an image built on it).
            subprocess.run(["docker", "rmi", previous], capture_output=True)
        got = image_key(name)
        if got != f"{key}|{arch}":
            raise SystemExit(
                f"standin: {name} has key|arch {got!r}, expected {key}|{arch}"
            )
    else:
        log(f"{name} is current ({key})")
    for t in tags:
        run(["docker", "tag", name, t])
    return name


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("arch", nargs="+", choices=sorted(ARCHES))
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        help="also tag it NAME (the real base's name); one arch only",
    )
    p.add_argument(
        "--roots",
        action="store_true",
        help="only build the roots' tarballs (cached; no Docker engine needed)",
    )
    args = p.parse_args(argv)
    if args.roots:
        for tar in build_roots(args.arch):
            print(tar)
        return 0
    if args.tag and len(args.arch) > 1:
        p.error("--tag takes one arch")
    for arch in args.arch:
        print(ensure(arch, args.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main())
