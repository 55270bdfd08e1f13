"""``sglang-mimo cluster`` with the docker runner, once, for real: two nodes in network
namespaces (tests/netns_nodes.py), each with its own sshd and its own Docker engine
(``dockerd`` entered into the node's network namespace, its own data root and socket; the
node's ssh sessions get it as DOCKER_HOST). The image is a small one made here from
this machine's ``sh``, ``sleep`` and libc (``docker import``): no registry.

``setup`` copies it to the node that lacks it (``docker save | ssh NODE docker load``) and
finds it there the second time; ``start`` then runs the recipe's docker line on a node
without RDMA devices (no /dev/infiniband here) and reports the head as failed to start,
with the engine's own message, without starting the other rank.

Needs root, ``ip netns``, sshd and dockerd: skipped, saying which is missing, elsewhere.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from netns_nodes import Fabric, unavailable  # noqa: E402


def _why():
    why = unavailable()
    if why:
        return why
    for tool in ("dockerd", "docker", "containerd", "runc", "nsenter"):
        if not shutil.which(tool):
            return f"needs {tool} (apt-get install docker.io)"
    return None


WHY = _why()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"docker cluster test: {WHY}")
RECIPE = "mimo-v2.5-pro-h200x16"  # two nodes
IMAGE = "sglang-mimo-cluster-test/standin:1"


def rootfs_tar():
    """A root filesystem of this machine's sh, sleep and cat with the libraries they load."""
    files = {"/bin/sh", "/bin/sleep", "/bin/cat"}
    for exe in list(files):
        out = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
        for line in out.splitlines():
            for tok in line.split():
                if tok.startswith("/"):
                    files.add(tok)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in sorted(files):
            tar.add(os.path.realpath(f), arcname=f.lstrip("/"))
    return buf.getvalue()


def engine(ns, d):
    """dockerd in network namespace ``ns`` (nsenter: ``ip netns exec`` would remount /sys
    without the cgroup tree containers need), no bridge, no iptables."""
    sock = d / "docker.sock"
    proc = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{ns}", "dockerd", "--data-root", str(d / "data"),
         "--exec-root", str(d / "exec"), "--pidfile", str(d / "docker.pid"),
         "-H", f"unix://{sock}", "--bridge", "none", "--iptables=false",
         "--ip-masq=false"],
        stdout=open(d / "dockerd.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    cli = ["docker", "-H", f"unix://{sock}"]
    for _ in range(120):
        if subprocess.run([*cli, "info"], capture_output=True).returncode == 0:
            return proc, cli
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    raise AssertionError(
        f"dockerd did not start: {(d / 'dockerd.log').read_text()[-2000:]}"
    )


@pytest.fixture(scope="module")
def fab():
    base = Path(tempfile.mkdtemp(prefix="smcd-", dir="/tmp"))  # short socket paths
    env = {i: {"DOCKER_HOST": f"unix://{base}/node-{i}/docker.sock"} for i in range(2)}
    engines = []
    try:
        with Fabric(2, base, node_env=env) as f:
            f.docker = []
            for i in range(2):
                proc, cli = engine(f.ns[i], base / f"node-{i}")
                engines.append(proc)
                f.docker.append(cli)
            subprocess.run([*f.docker[0], "import", "-", IMAGE], input=rootfs_tar(),
                           check=True, capture_output=True)  # fmt: skip
            yield f
            for cli in f.docker:  # containers first, then the engines
                ids = subprocess.run(
                    [*cli, "ps", "-aq"], capture_output=True, text=True
                )
                if ids.stdout.split():
                    subprocess.run(
                        [*cli, "rm", "-f", *ids.stdout.split()], capture_output=True
                    )
    finally:
        for proc in engines:
            proc.send_signal(signal.SIGTERM)
        for proc in engines:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def cluster(fab, action, *args):
    """``sglang-mimo cluster`` on node 0, whose own engine is the head's ``docker``."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "scripts"),
           "DOCKER_HOST": f"unix://{fab.dir}/node-0/docker.sock"}  # fmt: skip
    return fab.run(
        0, sys.executable, "-m", "sglang_mimo.cli", "cluster", action, RECIPE,
        "--hosts", ",".join(fab.hosts), "--rank-addr", ",".join(fab.addrs),
        "--nic", "enP2p1s0f0np0", "--ib-hca", "mlx5_0", "--runner", "docker",
        "--image", IMAGE, f"--ssh-option=-F{fab.ssh_config}", *args,
        check=False, env=env, timeout=300,
    )  # fmt: skip


def image_id(cli):
    out = subprocess.run(
        [*cli, "image", "inspect", IMAGE], capture_output=True, text=True
    )
    return json.loads(out.stdout)[0]["Id"] if out.returncode == 0 else None


def test_setup_copies_the_image_then_start_reports_a_head_that_cannot_start(fab):
    assert image_id(fab.docker[1]) is None
    proc = cluster(fab, "setup", "--no-model")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"rank 0 (spark-1): image {IMAGE} is there" in proc.stdout
    assert f"rank 1 (spark-2): image {IMAGE} loaded (copy)" in proc.stdout
    assert image_id(fab.docker[1]) == image_id(fab.docker[0])
    again = cluster(fab, "setup", "--no-model")
    assert f"rank 1 (spark-2): image {IMAGE} is there" in again.stdout

    proc = cluster(fab, "start", "--settle", "0")
    assert proc.returncode == 1
    (line,) = [x for x in proc.stderr.splitlines() if "failed to start" in x]
    # The engine's own words, not docker's usage hint.
    assert line.startswith("rank 0 (spark-1): failed to start: start exited 127: docker: "
                           "Error response from daemon:"), line  # fmt: skip
    assert '"/dev/infiniband": no such file or directory' in line, line
    # The head failed: the other rank was not started.
    ps = subprocess.run([*fab.docker[1], "ps", "-aq"], capture_output=True, text=True)
    assert ps.stdout.split() == []
    status = cluster(fab, "status", "--json")
    states = [r["state"] for r in json.loads(status.stdout)]
    assert status.returncode == 1 and states[1] == "absent", states
