"""``sglang-mimo cluster`` for real: four nodes in network namespaces, each with its own
sshd (tests/netns_nodes.py), driven from node 0 as an operator's head node would.

The GB10 recipe (four ranks) runs with the exec runner, whose interpreter is a wrapper
sending ``-m sglang.launch_server`` to tests/cluster_standin.py (real sockets: rank 0
holds the dist-init port, the others join it over the fabric, rank 0 serves /health)
and everything else to this venv's Python (torch for the all-reduce). The RDMA device
comes from a made-up /sys/class/infiniband beside each namespace's real /sys/class/net
(SGLANG_MIMO_SYS_ROOT); the driver check has its own tests (test_doctor.py).

Needs root, ``ip netns`` and OpenSSH's sshd: skipped, saying which is missing, elsewhere.
"""

import json
import os
import re
import resource
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from netns_nodes import HCA, NIC, Fabric, unavailable  # noqa: E402

sys.path.insert(0, str(REPO / "scripts"))
from sglang_mimo.doctor import _size as doctor_size  # noqa: E402

WHY = unavailable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"cluster test: {WHY}")

RECIPE = "mimo-v2.5-gb10x4"
CHECKPOINT = {"config.json": 2000, "model-00001-of-00002.safetensors": 600_000,
              "model-00002-of-00002.safetensors": 600_000}  # fmt: skip


@pytest.fixture(scope="module")
def fab(tmp_path_factory):
    base = tmp_path_factory.mktemp("fabric")
    # Each node's /sys: its namespace's own class/net, and a made-up RDMA device whose
    # RoCE GID table holds the node's own address (the kernel's layout: link-local v1
    # and v2, then the IPv4-mapped GID as v1 and v2), given to its ssh sessions.
    node_env = {}
    for i in range(4):
        sysroot = base / f"sys-{i}"
        (sysroot / "class").mkdir(parents=True)
        (sysroot / "class" / "net").symlink_to("/sys/class/net")  # each namespace's own
        make_gids(sysroot, f"192.0.2.{10 + i}")
        node_env[i] = {"SGLANG_MIMO_SYS_ROOT": str(sysroot)}
    # Node 1's clock runs 30 s ahead (its `date`, what the head's clock probe reads).
    fakebin = base / "bin-1"
    fakebin.mkdir()
    (fakebin / "date").write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -c 'import time; print(\"%.9f\" % (time.time() + 30))'\n"
    )
    (fakebin / "date").chmod(0o755)
    # (sshd sets PATH itself; root's non-interactive bash reads $BASH_ENV first.)
    (fakebin / "env.sh").write_text(f'PATH="{fakebin}:$PATH"\n')
    node_env[1]["BASH_ENV"] = str(fakebin / "env.sh")
    # Node 3's disk holds 1 MiB: the 1.2 MB checkpoint does not fit there.
    with Fabric(4, base, small_disk={3: "1m"}, node_env=node_env) as f:
        ckpt = f.models / "MiMo-V2.5"  # the head's checkpoint (this namespace's view)
        ckpt.mkdir()
        for name, size in CHECKPOINT.items():
            (ckpt / name).write_bytes(os.urandom(size))
        wrapper = base / "python"
        wrapper.write_text(
            "#!/bin/sh\n"
            'if [ "$1" = -m ] && [ "$2" = sglang.launch_server ]; then shift 2; '
            f'exec {sys.executable} {REPO / "tests" / "cluster_standin.py"} "$@"; fi\n'
            f'exec {sys.executable} "$@"\n'
        )
        wrapper.chmod(0o755)
        f.ckpt, f.python, f.logs = ckpt, wrapper, base / "logs"
        f.inventory = base / "cluster.yaml"
        f.inventory.write_text(
            json.dumps(
                {
                    "recipe": RECIPE,
                    "hosts": f.hosts,
                    "rank_addr": f.addrs,
                    "nic": NIC,
                    "ib_hca": HCA,
                    "model_path": str(ckpt),
                    "runner": "exec",
                    "python": str(wrapper),
                    "log_dir": str(f.logs),
                    "ssh_options": ["-F", str(f.ssh_config)],
                }
            )
        )
        yield f


def make_gids(sysroot, addr, nic=NIC, hca=HCA):
    dev = sysroot / "class" / "infiniband" / hca
    (dev / "device" / "net" / nic).mkdir(parents=True)
    port = dev / "ports" / "1"
    (port / "gid_attrs" / "types").mkdir(parents=True)
    (port / "gids").mkdir()
    (port / "state").write_text("4: ACTIVE\n")
    (port / "link_layer").write_text("Ethernet\n")
    a, b, c, d = (int(x) for x in addr.split("."))
    mapped = f"0000:0000:0000:0000:0000:ffff:{a:02x}{b:02x}:{c:02x}{d:02x}"
    table = ["fe80:0000:0000:0000:0000:00ff:fe00:0001"] * 2 + [mapped] * 2
    for i in range(8):
        (port / "gids" / str(i)).write_text(
            (table[i] if i < 4 else "0000:0000:0000:0000:0000:0000:0000:0000") + "\n"
        )
        if i < 4:  # the kernel gives no type for an empty entry
            (port / "gid_attrs" / "types" / str(i)).write_text(
                ("RoCE v2" if i % 2 else "IB/RoCE v1") + "\n"
            )


def cluster(fab, action, *args, timeout=240):
    """``sglang-mimo cluster ACTION --inventory ...`` on the head (node 0)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "scripts"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    t0 = time.monotonic()
    proc = fab.run(0, sys.executable, "-m", "sglang_mimo.cli", "cluster", action,
                   "--inventory", fab.inventory, *args, check=False, env=env,
                   timeout=timeout)  # fmt: skip
    proc.seconds = time.monotonic() - t0
    return proc


def lines_of(proc, check):
    return [x for x in proc.stdout.splitlines() if re.search(rf"\b{check}\b", x)]


def leftovers(marker):
    """Processes whose command line holds ``marker`` (all namespaces share the PID space)."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd:
            found.append(f"{p.name}: {cmd}")
    return found


def test_doctor_passes_on_a_good_fabric_and_all_reduces(fab):
    # memlock: the sshd here runs with this test's limit (its own test below).
    proc = cluster(fab, "doctor", "--skip", "driver", "--skip", "disk", "--skip", "memlock",
                   "--backend", "gloo", "--mib", "1", "--timeout", "90")  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    # The namespaces share this machine's /dev/shm: a warning where it is under 32g.
    st = os.statvfs("/dev/shm")
    shm = "PASS" if st.f_blocks * st.f_frsize >= 32 * 2**30 else "WARN"
    for r in range(4):
        assert f"rank {r} PASS  ssh" in out
        assert re.search(rf"rank {r} PASS  nic +{NIC} MTU 9000, up", out)
        assert re.search(rf"rank {r} PASS  hca +{HCA} port 1 ACTIVE", out)
        assert re.search(rf"rank {r} PASS  addr +{fab.addrs[r]} is on {NIC}", out)
        # Each node's own GID table: index 3 is the RoCE v2 GID of its address.
        assert re.search(rf"rank {r} PASS  gid +{HCA} port 1: RoCE v2 GID 3 is "
                         rf"{fab.addrs[r]}'s \(NCCL_IB_GID_INDEX unset", out)  # fmt: skip
        assert re.search(
            rf"rank {r} {shm} +shm +/dev/shm is .*the recipe's --shm-size 32g", out
        )
    assert "PASS  mtu       MTU 9000 on every rank" in out
    # Node 1's clock is 30 s ahead: a warning (the exit stays 0), with the fix.
    assert re.search(r"WARN  clock     clocks differ from the head's by more than 1 s: "
                     r"rank 1 \(spark-2\) \+(29|30|31)\.\d s", out), out  # fmt: skip
    assert "fix: synchronize the clocks: NTP on every node" in out
    assert (
        "PASS  addrs     head 192.0.2.10:20000 is rank 0's address; 4 distinct" in out
    )
    (ar,) = lines_of(proc, "allreduce")
    assert re.search(r"PASS  allreduce gloo all-reduce of 1 MiB across 4 rank", ar), ar
    assert re.search(r"bus bandwidth [0-9.]+ GB/s", ar)


def test_doctor_memlock_of_the_exec_ranks_session_and_of_the_docker_line(fab):
    """An exec rank runs under its ssh session's ``ulimit -l`` (this test's, which each
    sshd inherited); a docker rank under the rendered line's ``--ulimit memlock=-1``."""
    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    proc = cluster(fab, "doctor", "--only", "memlock", "--json")
    got = {x["rank"]: x for x in json.loads(proc.stdout)}
    for r in range(4):
        if soft == resource.RLIM_INFINITY:
            assert got[r]["status"] == "pass", got[r]
            continue
        want = "fail" if soft < 16 * 2**30 else "warn"
        assert got[r]["status"] == want and got[r]["message"].startswith(
            f"locked memory limited to {doctor_size(soft)} (ulimit -l of this session)"
        ), got[r]
        assert "memlock unlimited" in got[r]["fix"]
    assert proc.returncode == (
        0 if soft == resource.RLIM_INFINITY or want == "warn" else 1
    )
    docker = cluster(fab, "doctor", "--only", "memlock", "--runner", "docker")
    assert docker.returncode == 0, docker.stdout + docker.stderr
    for r in range(4):
        assert (f"rank {r} PASS  memlock   unlimited (the docker line's --ulimit "
                "memlock=-1)") in docker.stdout  # fmt: skip


def test_doctor_gid_index_that_is_not_the_rocev2_gid_of_the_address(fab):
    """NCCL_IB_GID_INDEX as the site sets it (--env): 2 is each node's RoCE v1 GID."""
    proc = cluster(fab, "doctor", "--only", "gid", "--env", "NCCL_IB_GID_INDEX=2")
    assert proc.returncode == 1
    for r in range(4):
        assert (f"rank {r} FAIL  gid       NCCL_IB_GID_INDEX=2: GID 2 of {HCA} is RoCE v1 "
                f"(::ffff:{fab.addrs[r]}), NCCL needs RoCE v2") in proc.stdout  # fmt: skip
    assert "fix: NCCL_IB_GID_INDEX=3 (the RoCE v2 GID of" in proc.stdout
    good = cluster(fab, "doctor", "--only", "gid", "--env", "NCCL_IB_GID_INDEX=3")
    assert good.returncode == 0, good.stdout
    assert (
        f"rank 2 PASS  gid       {HCA} port 1 GID 3: RoCE v2, ::ffff:192.0.2.12"
        in good.stdout
    )


def test_doctor_names_a_wrong_interface_and_the_ones_there_are(fab):
    proc = cluster(
        fab, "doctor", "--nic", "eth7", "--only", "nic", "--only", "allreduce"
    )
    assert proc.returncode == 1
    for r in range(4):
        (line,) = [
            x for x in proc.stdout.splitlines() if x.startswith(f"rank {r} FAIL  nic")
        ]
        assert f"interface eth7 does not exist on this node (it has: {NIC})" in line
    assert f"fix: give --nic the fabric interface's name" in proc.stdout
    assert f"e.g. --nic {NIC}" in proc.stdout
    assert "SKIP  allreduce not run: fix the failures above first" in proc.stdout


def allreduce_fails(fab, *args, timeout=30):
    """``cluster doctor --only allreduce`` that must fail: its result line, its ranks."""
    proc = cluster(fab, "doctor", "--only", "allreduce", "--backend", "gloo",
                   "--timeout", str(timeout), "--json", *args)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["check"] == "allreduce" and result["status"] == "fail"
    # Within the timeout (the slowest rank's own watchdog) plus ssh and its end.
    assert proc.seconds < timeout + 15, proc.seconds
    return result, {r["rank"]: r for r in result["ranks"]}


def test_all_reduce_with_a_wrong_interface_fails_in_time_and_leaves_nothing(fab):
    result, ranks = allreduce_fails(fab, "--nic", "eth7")
    # The rank that saw the cause, not the ones left waiting for it.
    assert result["message"].startswith(
        "rank 0 (spark-1): interface eth7 (GLOO_SOCKET_IFNAME/NCCL_SOCKET_IFNAME) "
        "does not exist or has no address on rank 0 (and 3 other rank(s) failed"
    ), result["message"]
    assert (
        result["fix"] == "give --nic the fabric interface of every node (`ip -br addr`)"
    )
    assert "Unable to find address for: eth7" in ranks[0]["error"]
    assert not leftovers("--master 192.0.2.10:20000")


def test_all_reduce_with_a_head_that_is_not_rank_0s_fails_at_once(fab):
    result, ranks = allreduce_fails(fab, "--head-addr", "192.0.2.99:20000")
    assert result["message"].startswith(
        "rank 0 (spark-1): the head 192.0.2.99:20000 is not an address of rank 0's node"
    ), result["message"]
    assert result["fix"].startswith("--head-addr must be rank 0's fabric address")
    # The others, still trying to reach it, are stopped: nothing waits for the timeout.
    for r in (1, 2, 3):
        assert ranks[r]["cause"] == f"rank {r}: stopped after rank 0 failed", ranks[r]
    assert max(x["seconds"] for x in ranks.values()) < 25
    assert not leftovers("--master 192.0.2.99:20000")


def test_all_reduce_with_an_unreachable_head_times_out_and_leaves_nothing(fab):
    # 127.0.0.1 is rank 0's own, but each other node's loopback is its own too.
    result, ranks = allreduce_fails(fab, "--head-addr", "127.0.0.1:20000", timeout=20)
    for r in (1, 2, 3):
        assert ranks[r]["cause"] == (
            f"rank {r}: no result within 20 s: it could not reach the head "
            "127.0.0.1:20000 (rank 0's store)"
        ), ranks[r]
    assert ranks[0]["cause"] == (
        "rank 0: no result within 20 s: the other ranks did not all join at 127.0.0.1:20000"
    ), ranks[0]
    assert result["message"].startswith(
        "rank 0 (spark-1): rank 0: no result within 20 s"
    )
    assert not leftovers("--master 127.0.0.1:20000")


def test_doctor_refuses_a_head_that_is_not_rank_0(fab):
    proc = cluster(fab, "doctor", "--head-addr", "192.0.2.11:20000", "--only", "addrs")
    assert proc.returncode == 1
    assert ("FAIL  addrs     --head-addr host 192.0.2.11 is rank 1's address in --rank-addr "
            "192.0.2.10,192.0.2.11,192.0.2.12,192.0.2.13") in proc.stdout  # fmt: skip
    proc = cluster(fab, "doctor", "--head-addr", "192.0.2.9:20000", "--only", "addrs")
    assert "--head-addr host 192.0.2.9 is not in --rank-addr" in proc.stdout
    assert proc.returncode == 1
    # start refuses it too, before touching a node.
    proc = cluster(fab, "start", "--head-addr", "192.0.2.9:20000")
    assert proc.returncode == 1 and "is not in --rank-addr" in proc.stderr
    assert "started" not in proc.stdout


def test_doctor_finds_an_address_on_the_wrong_node_and_an_mtu_that_differs(fab):
    swapped = [fab.addrs[0], fab.addrs[2], fab.addrs[1], fab.addrs[3]]
    fab.run(2, "ip", "link", "set", NIC, "mtu", "1500")
    try:
        proc = cluster(fab, "doctor", "--rank-addr", ",".join(swapped),
                       "--only", "addr", "--only", "nic", "--only", "mtu")  # fmt: skip
    finally:
        fab.run(2, "ip", "link", "set", NIC, "mtu", "9000")
    out = proc.stdout
    assert proc.returncode == 1
    assert re.search(r"rank 1 FAIL  addr +address 192.0.2.12 is not on this node "
                     r"\(it has: 192.0.2.11 \(enP2p1s0f0np0\)\)", out)  # fmt: skip
    assert "rank 0 PASS  addr" in out and "rank 3 PASS  addr" in out
    assert ("FAIL  mtu       the fabric interfaces' MTU differ: rank 0 9000, "
            "rank 1 9000, rank 2 1500, rank 3 9000") in out  # fmt: skip


def test_doctor_reports_an_unreachable_host(fab):
    inv = json.loads(fab.inventory.read_text())
    proc = cluster(fab, "doctor", "--hosts", ",".join(inv["hosts"][:3] + ["root@192.0.2.77"]),
                   "--only", "ssh", "--ssh-option=-oConnectTimeout=3")  # fmt: skip
    assert proc.returncode == 1
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("rank 3 FAIL  ssh")]
    assert "cannot reach root@192.0.2.77 over ssh:" in line
    assert "fix: passwordless ssh from the head" in proc.stdout


def test_setup_copies_the_checkpoint_checks_disk_and_resumes(fab):
    proc = cluster(fab, "setup")
    assert proc.returncode == 1  # node 3's disk is too small
    total = sum(CHECKPOINT.values())
    for r in range(3):
        there = fab.node_models(r) / "MiMo-V2.5"
        assert {p.name: p.stat().st_size for p in there.iterdir()} == CHECKPOINT
        for name in CHECKPOINT:
            assert (there / name).read_bytes() == (fab.ckpt / name).read_bytes()
        assert (
            f"rank {r} (spark-{r + 1}): model {fab.ckpt}: verified 3 files"
            in proc.stdout
        )
    assert re.search(r"rank 3 \(spark-4\): model \S+ needs 0.00 GiB more; 0.00 GiB free "
                     r"there -- free disk space", proc.stderr)  # fmt: skip
    # Resumable: a file lost on one node is the only one sent again.
    (fab.node_models(1) / "MiMo-V2.5" / "model-00002-of-00002.safetensors").unlink()
    proc = cluster(fab, "setup")
    assert (
        "rank 1 (spark-2): model {}: copying 1 of 3 files".format(fab.ckpt)
        in proc.stdout
    )
    assert (
        "rank 0 (spark-1): model {}: all 3 files there".format(fab.ckpt) in proc.stdout
    )
    # The doctor's disk check sees the same: ranks 0-2 hold it, rank 3 cannot.
    proc = cluster(fab, "doctor", "--only", "disk")
    assert proc.returncode == 1
    assert re.search(r"rank 0 PASS  disk +\S+ holds the checkpoint", proc.stdout)
    assert re.search(
        r"rank 3 FAIL  disk +\S+ needs 0.0 GiB more, \S+ has 0.0 GiB free", proc.stdout
    )
    assert total > 2**20


def test_start_status_logs_stop(fab):
    try:
        proc = cluster(fab, "start", "--settle", "3")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"{RECIPE}: 4 rank(s) running" in proc.stdout
        deadline = time.monotonic() + 30
        while True:
            status = cluster(fab, "status", "--json")
            ranks = json.loads(status.stdout)
            if ranks[0].get("log") == "ready" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status.returncode == 0, status.stdout
        assert [x["state"] for x in ranks] == ["running"] * 4
        assert ranks[0]["log"] == "ready" and ranks[0]["health"] == "ok"
        for r in (1, 2, 3):
            assert ranks[r]["log"].endswith(f"joined 192.0.2.10:20000")
        logs = cluster(fab, "logs", RECIPE, "0", "--tail", "50")
        for r in (1, 2, 3):
            assert f"rank {r} joined from 192.0.2.{10 + r}" in logs.stdout
        again = cluster(fab, "start", "--settle", "0")
        assert again.returncode == 1 and "is already running" in again.stderr
    finally:
        stop = cluster(fab, "stop", "--grace", "5")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not leftovers("cluster_standin.py")
    status = cluster(fab, "status")
    assert status.returncode == 1
    assert len([x for x in status.stdout.splitlines() if " stopped " in x]) == 4
    # The logs stay after the stop (the recipe from the inventory).
    assert "ready to roll" in cluster(fab, "logs", "0").stdout


def test_start_reports_the_rank_that_fails_to_start(fab):
    wrong = list(fab.addrs)
    wrong[2] = "192.0.2.42"  # an address node 2 does not have
    try:
        proc = cluster(fab, "start", "--rank-addr", ",".join(wrong), "--settle", "4")
        assert proc.returncode == 1
        (line,) = [x for x in proc.stderr.splitlines() if "failed to start" in x]
        assert line.startswith(
            "rank 2 (spark-3): failed to start: exited 1 -- error: OSError"
        )
        assert "Cannot assign requested address" in line
        assert "see `sglang-mimo cluster logs" in proc.stderr
    finally:
        cluster(fab, "stop", "--grace", "5")
    assert not leftovers("cluster_standin.py")
