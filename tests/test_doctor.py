"""``sglang-mimo doctor`` on made-up /sys trees and tool outputs; ``cluster``'s input.

The /sys trees are laid out as the kernel lays them out (class/net/IF/{mtu,operstate},
class/infiniband/DEV/{device/net/IF,ports/N/state}); nvidia-smi is a script on PATH
printing what the real one prints for that query. The node-level checks with real
interfaces, sshd and the all-reduce are in test_cluster.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from cli_helpers import run_cli  # noqa: E402
from sglang_mimo import doctor  # noqa: E402

DOCTOR = REPO / "scripts" / "sglang_mimo" / "doctor.py"


def make_sys(root, nets, rdma=()):
    """nets: {IF: (mtu, operstate)}; rdma: [(DEV, IF or None, port state)]."""
    for name, (mtu, state) in nets.items():
        d = root / "class" / "net" / name
        d.mkdir(parents=True)
        (d / "mtu").write_text(f"{mtu}\n")
        (d / "operstate").write_text(f"{state}\n")
    for dev, net, state in rdma:
        d = root / "class" / "infiniband" / dev
        (d / "device" / "net").mkdir(parents=True)
        if net:
            (d / "device" / "net" / net).mkdir()
        (d / "ports" / "1").mkdir(parents=True)
        (d / "ports" / "1" / "state").write_text(state + "\n")
    return root


GB10 = {
    "lo": (65536, "unknown"),
    "enP7s7": (1500, "up"),
    "docker0": (1500, "down"),
    "enp1s0f0np0": (9000, "up"),
    "enP2p1s0f0np0": (9000, "up"),
    "enP2p1s0f1np1": (9000, "down"),
}
GB10_RDMA = [
    ("rocep1s0f0", "enp1s0f0np0", "4: ACTIVE"),
    ("roceP2p1s0f0", "enP2p1s0f0np0", "4: ACTIVE"),
    ("roceP2p1s0f1", "enP2p1s0f1np1", "1: DOWN"),
]


@pytest.fixture
def gb10(tmp_path, monkeypatch):
    root = make_sys(tmp_path / "sys", GB10, GB10_RDMA)
    monkeypatch.setenv("SGLANG_MIMO_SYS_ROOT", str(root))
    return root


def test_nic_present_and_up(gb10):
    r = doctor.check_nic("enP2p1s0f0np0", gb10)
    assert r["status"] == "pass" and r["message"] == "enP2p1s0f0np0 MTU 9000, up"
    assert doctor.mtu_of("enP2p1s0f0np0", gb10) == "9000"


def test_nic_missing_names_the_fabric_interfaces_rdma_first(gb10):
    r = doctor.check_nic("ens10f0", gb10)
    assert r["status"] == "fail"
    # No loopback or docker bridge; the interfaces with an RDMA device first.
    assert r["message"] == (
        "interface ens10f0 does not exist on this node (it has: enP2p1s0f0np0, "
        "enP2p1s0f1np1, enp1s0f0np0, enP7s7)"
    )
    assert r["fix"].endswith("e.g. --nic enP2p1s0f0np0")


def test_nic_down(gb10):
    r = doctor.check_nic("enP2p1s0f1np1", gb10)
    assert r["status"] == "fail"
    assert r["message"] == "enP2p1s0f1np1 is down (enP2p1s0f1np1 MTU 9000)"
    assert "ip link set enP2p1s0f1np1 up" in r["fix"]


def test_hca_active_on_the_nic(gb10):
    r = doctor.check_hca("roceP2p1s0f0", "enP2p1s0f0np0", gb10)
    assert r["status"] == "pass" and r["message"] == "roceP2p1s0f0 port 1 ACTIVE"


def test_hca_missing_lists_devices_and_suggests_the_one_of_the_nic(gb10):
    r = doctor.check_hca("mlx5_0", "enP2p1s0f0np0", gb10)
    assert r["status"] == "fail"
    assert "RDMA device mlx5_0 does not exist on this node (it has: " in r["message"]
    assert "roceP2p1s0f0 -> enP2p1s0f0np0" in r["message"]
    assert r["fix"].endswith("e.g. --ib-hca roceP2p1s0f0")


def test_hca_down_and_on_another_interface(gb10):
    r = doctor.check_hca("roceP2p1s0f1", "enP2p1s0f0np0", gb10)
    assert r["status"] == "fail"
    assert "roceP2p1s0f1 port 1 is DOWN" in r["message"]
    assert (
        "roceP2p1s0f1 belongs to enP2p1s0f1np1, not to --nic enP2p1s0f0np0"
        in r["message"]
    )


def test_hca_with_port_and_exact_syntax(gb10):
    r = doctor.check_hca(
        "=rocep1s0f0:1,roceP2p1s0f0:1", "enp1s0f0np0,enP2p1s0f0np0", gb10
    )
    assert r["status"] == "pass", r
    assert doctor.check_hca("^mlx5_9", None, gb10)["status"] == "skip"


def test_no_rdma_at_all(tmp_path):
    root = make_sys(tmp_path / "sys", {"eth0": (1500, "up")})
    r = doctor.check_hca("mlx5_0", "eth0", root)
    assert r["status"] == "fail"
    assert "this node has no RDMA device" in r["message"]
    assert "mlx5_ib" in r["fix"]


# ------------------------------------------------------------------ RoCE GID index


def make_gids(root, dev, entries, port="1", link_layer="Ethernet"):
    """entries: [(GID as the kernel writes it, type or None)] from index 0; the kernel
    lists empty (all-zero) entries up to the table's size, with no type."""
    base = root / "class" / "infiniband" / dev / "ports" / port
    (base / "gids").mkdir(parents=True, exist_ok=True)
    (base / "gid_attrs" / "types").mkdir(parents=True, exist_ok=True)
    (base / "link_layer").write_text(link_layer + "\n")
    zero = ":".join(["0000"] * 8)
    for i, (gid, typ) in enumerate(list(entries) + [(zero, None)] * 4):
        (base / "gids" / str(i)).write_text(gid + "\n")
        if typ:
            (base / "gid_attrs" / "types" / str(i)).write_text(typ + "\n")


LINK_LOCAL = "fe80:0000:0000:0000:0ec4:7aff:fe5e:4a7c"
V4 = "0000:0000:0000:0000:0000:ffff:c000:020a"  # 192.0.2.10
V4_OTHER = "0000:0000:0000:0000:0000:ffff:0a00:0005"  # 10.0.0.5 (another address)
# The order `show_gids` prints on a ConnectX: v1, v2 of the link-local, then of each IPv4.
GB10_GIDS = [(LINK_LOCAL, "IB/RoCE v1"), (LINK_LOCAL, "RoCE v2"), (V4, "IB/RoCE v1"),
             (V4, "RoCE v2")]  # fmt: skip


@pytest.mark.parametrize(
    "index, status, text",
    [
        (None, "pass", "roceP2p1s0f0 port 1: RoCE v2 GID 3 is 192.0.2.10's "
         "(NCCL_IB_GID_INDEX unset: NCCL picks one; =3 pins it)"),
        ("3", "pass", "roceP2p1s0f0 port 1 GID 3: RoCE v2, ::ffff:192.0.2.10"),
        ("2", "fail", "NCCL_IB_GID_INDEX=2: GID 2 of roceP2p1s0f0 is RoCE v1 "
         "(::ffff:192.0.2.10), NCCL needs RoCE v2"),
        ("1", "fail", "NCCL_IB_GID_INDEX=1: GID 1 of roceP2p1s0f0 is fe80::ec4:7aff:fe5e:4a7c, "
         "not 192.0.2.10's"),
        ("7", "fail", "NCCL_IB_GID_INDEX=7: roceP2p1s0f0 port 1 has no GID 7 (GIDs: "
         "0 fe80::ec4:7aff:fe5e:4a7c v1, 1 fe80::ec4:7aff:fe5e:4a7c v2, "
         "2 ::ffff:192.0.2.10 v1, 3 ::ffff:192.0.2.10 v2)"),
        ("x", "fail", "NCCL_IB_GID_INDEX=x is not a number"),
    ],
)  # fmt: skip
def test_gid_index_against_the_ports_gids(gb10, index, status, text):
    make_gids(gb10, "roceP2p1s0f0", GB10_GIDS)
    r = doctor.check_gid("roceP2p1s0f0", index, "192.0.2.10", gb10)
    assert r["status"] == status and r["message"] == text, r
    if status == "fail" and index != "x":
        assert r["fix"].startswith(
            "NCCL_IB_GID_INDEX=3 (the RoCE v2 GID of 192.0.2.10)"
        )


def test_gid_of_another_address_only(gb10):
    """The interface carries another address than the rank's: no GID fits; the fix says
    where GIDs come from."""
    make_gids(gb10, "roceP2p1s0f0", [(LINK_LOCAL, "RoCE v2"), (V4_OTHER, "RoCE v2")])
    r = doctor.check_gid("roceP2p1s0f0", None, "192.0.2.10", gb10)
    assert r["status"] == "fail"
    assert r["message"] == (
        "roceP2p1s0f0 port 1 has no RoCE v2 GID of 192.0.2.10 (GIDs: "
        "0 fe80::ec4:7aff:fe5e:4a7c v2, 1 ::ffff:10.0.0.5 v2)"
    )
    assert "put the rank's address on the device's interface" in r["fix"]
    # Without a rank address, any IPv4 RoCE v2 GID is what NCCL takes.
    assert doctor.check_gid("roceP2p1s0f0", "1", None, gb10)["status"] == "pass"


def test_gid_on_infiniband_and_without_rdma(gb10):
    make_gids(gb10, "roceP2p1s0f0", [("fe80:0000:0000:0000:1070:fd03:0012:3456", "IB/RoCE v1")],
              link_layer="InfiniBand")  # fmt: skip
    r = doctor.check_gid("roceP2p1s0f0", None, "192.0.2.10", gb10)
    assert r["status"] == "pass" and "InfiniBand (no GID index needed)" in r["message"]
    assert doctor.check_gid(None, "3", "192.0.2.10", gb10)["status"] == "skip"


# ------------------------------------------------------------ memlock, shm, peers


def run_doctor(args, tmp_path, memlock=None, env=None):
    """doctor.py as ``cluster doctor`` runs it, in a process of its own (its limits)."""
    import resource

    def limit():
        if memlock is not None:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))

    proc = subprocess.run(
        [sys.executable, "-I", "-", "--json", *args], input=DOCTOR.read_text(),
        capture_output=True, text=True, cwd=tmp_path, preexec_fn=limit,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return proc.returncode, {r["check"]: r for r in json.loads(proc.stdout)}


def only(*keep):
    return [a for c in doctor.CHECKS if c not in keep for a in ("--skip", c)]


def test_memlock_of_the_session(gb10, tmp_path):
    rc, got = run_doctor(["--ib-hca", "roceP2p1s0f0", *only("memlock")], tmp_path,
                         memlock=64 * 1024)  # fmt: skip
    assert rc == 1 and got["memlock"]["status"] == "fail"
    assert got["memlock"]["message"] == (
        "locked memory limited to 64 KiB (ulimit -l of this session): NCCL's RDMA "
        "buffers cannot be registered (ibv_reg_mr: Cannot allocate memory)"
    )
    assert (
        "`* - memlock unlimited` in /etc/security/limits.conf" in got["memlock"]["fix"]
    )
    # The docker line's limit, not the session's, is the rank's.
    rc, got = run_doctor(["--ib-hca", "roceP2p1s0f0", "--memlock", "-1", *only("memlock")],
                         tmp_path, memlock=64 * 1024)  # fmt: skip
    assert rc == 0 and got["memlock"]["message"] == (
        "unlimited (the docker line's --ulimit memlock=-1)"
    )
    assert doctor.check_memlock("roceP2p1s0f0", "32g")["status"] == "warn"
    assert doctor.check_memlock("roceP2p1s0f0", "8m")["status"] == "fail"
    assert doctor.check_memlock(None)["status"] == "skip"


@pytest.fixture
def tmpfs(tmp_path):
    """A real tmpfs of a given size (root), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def make(size):
        d = tmp_path / f"shm-{len(mounted)}"
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                       check=True)  # fmt: skip
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", str(d)], check=False)


def test_shm_against_the_recipe(tmpfs, tmp_path):
    small = tmpfs("64m")  # Docker's own /dev/shm
    r = doctor.check_shm("32g", str(small))
    assert r["status"] == "fail"
    assert r["message"] == (
        f"{small} is 64 MiB, 64 MiB free: NCCL and SGLang need at least 1 GiB of shared memory"
    )
    assert r["fix"].startswith(f"`mount -o remount,size=32G {small}`")
    mid = tmpfs("4g")
    r = doctor.check_shm("32g", str(mid))
    assert r["status"] == "warn" and r["message"] == (
        f"{mid} is 4 GiB, 4 GiB free, less than the recipe's --shm-size 32g"
    )
    assert doctor.check_shm("2g", str(mid))["status"] == "pass"
    # What a crashed run left behind fills it.
    tight = tmpfs("1200m")
    (tight / "nccl-leftover").write_bytes(b"x" * (600 * 2**20))
    r = doctor.check_shm(None, str(tight))
    assert r["status"] == "fail" and r["message"].endswith("less than 1 GiB left")
    assert "crashed run" in r["fix"]
    rc, got = run_doctor(["--shm-size", "2g", *only("shm")], tmp_path,
                         env={"SGLANG_MIMO_SHM_DIR": str(mid)})  # fmt: skip
    assert rc == 0 and got["shm"]["message"] == (
        f"{mid} is 4 GiB, 4 GiB free, the recipe's --shm-size 2g"
    )


def test_peers_over_ssh(tmp_path):
    """A peer that refuses the connection, and one ssh cannot resolve: both named."""
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, got = run_doctor(
        ["--peers", "127.0.0.1,no-such-host.invalid", f"--ssh-option=-p{port}",
         *only("peers")], tmp_path,
    )  # fmt: skip
    r = got["peers"]
    assert rc == 1 and r["status"] == "fail", r
    assert (
        f"127.0.0.1: ssh: connect to host 127.0.0.1 port {port}: Connection refused"
        in r["message"]
    )
    assert "no-such-host.invalid: ssh: Could not resolve hostname" in r["message"]
    assert "ssh-copy-id" in r["fix"]
    assert doctor.check_peers("")["status"] == "skip"


def fake_smi(tmp_path, monkeypatch, stdout, rc=0):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{stdout}\nEOF\nexit {rc}\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


@pytest.mark.parametrize(
    "rows, status, text",
    [
        ("580.95.05, NVIDIA GB10, [N/A], 12.1", "pass",
         "driver 580.95.05 runs CUDA 13 (1 x NVIDIA GB10 ([N/A]))"),
        ("580.65.06, NVIDIA H200, 143771, 9.0\n580.65.06, NVIDIA H200, 143771, 9.0", "pass",
         "driver 580.65.06 runs CUDA 13 (2 x NVIDIA H200 (140 GiB))"),
        ("570.172.08, NVIDIA H200, 143771, 9.0", "fail",
         "driver 570.172.08 is older than 580.65.06: it cannot run the images' CUDA 13.0"),
        ("580.65.05, NVIDIA H100 80GB HBM3, 81559, 9.0", "fail", "is older than 580.65.06"),
    ],
)  # fmt: skip
def test_driver_version(tmp_path, monkeypatch, rows, status, text):
    fake_smi(tmp_path, monkeypatch, rows)
    r = doctor.check_driver()
    assert r["status"] == status and text in r["message"], r


H200 = "\n".join(["580.95.05, NVIDIA H200, 143771, 9.0"] * 8)


@pytest.mark.parametrize(
    "rows, want, status, text",
    [
        (H200, ("9.0", 8, 141), "pass", "8 x NVIDIA H200, compute capability 9.0, 140 GiB each"),
        ("580.95.05, NVIDIA GB10, [N/A], 12.1", ("12.1", 1, 128), "pass",
         "1 x NVIDIA GB10, compute capability 12.1"),
        ("580.95.05, NVIDIA GB10, [N/A], 12.1", ("9.0", 1, 128), "fail",
         "compute capability 12.1 (NVIDIA GB10), the image is built for 9.0"),
        (H200.split("\n", 4)[-1], ("9.0", 8, 141), "fail",
         "4 GPU(s) here, the recipe needs 8 per node"),
        ("\n".join(["580.95.05, NVIDIA H100 80GB HBM3, 81559, 9.0"] * 8), ("9.0", 8, 141),
         "fail", "80 GiB per GPU, the recipe is sized for 141 GiB"),
    ],
)  # fmt: skip
def test_gpu_against_the_recipe(tmp_path, monkeypatch, rows, want, status, text):
    fake_smi(tmp_path, monkeypatch, rows)
    r = doctor.check_gpu(*want)
    assert r["status"] == status and text in r["message"], r


def test_driver_not_loaded(tmp_path, monkeypatch):
    fake_smi(tmp_path, monkeypatch, "NVIDIA-SMI has failed because it couldn't "
             "communicate with the NVIDIA driver. Make sure that the latest NVIDIA "
             "driver is installed and running.", rc=9)  # fmt: skip
    r = doctor.check_driver()
    assert r["status"] == "fail"
    assert r["message"].startswith("nvidia-smi failed: NVIDIA-SMI has failed")


def test_no_driver(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    r = doctor.check_driver()
    assert r["status"] == "fail" and "nvidia-smi not found" in r["message"]
    assert "580.65.06" in r["fix"]


def test_disk(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "a.safetensors").write_bytes(b"x" * 1000)
    assert doctor.check_disk(str(ckpt), 1000)["status"] == "pass"
    r = doctor.check_disk(str(tmp_path / "elsewhere" / "ckpt"), 2**60)
    assert r["status"] == "fail" and "needs 1073741824.0 GiB more" in r["message"]
    r = doctor.check_disk(str(tmp_path / "elsewhere" / "ckpt"), 5000)
    assert r["status"] == "warn" and "cluster setup" in r["fix"]
    assert doctor.check_disk("XiaomiMiMo/MiMo-V2.5", None)["status"] == "warn"


def test_cli_exit_codes_and_json(gb10, tmp_path):
    ok = run_cli("doctor", "--nic", "enP2p1s0f0np0", "--ib-hca", "roceP2p1s0f0",
                 "--skip", "driver", "--skip", "memlock", "--skip", "shm", "--json")  # fmt: skip
    results = json.loads(ok.stdout)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert {r["check"]: r["status"] for r in results} == {
        "nic": "pass", "hca": "pass", "gid": "skip", "addr": "skip", "disk": "skip",
        "memlock": "skip", "shm": "skip", "peers": "skip", "driver": "skip", "gpu": "skip",
    }  # fmt: skip
    bad = run_cli("doctor", "--nic", "ens10f0", "--skip", "driver")
    assert bad.returncode == 1
    assert "FAIL  nic       interface ens10f0 does not exist" in bad.stdout
    assert "fix: give --nic the fabric interface's name" in bad.stdout


def test_runs_from_stdin_with_the_standard_library_only(gb10, tmp_path):
    """What ``cluster doctor`` does on each host: ``python3 - < doctor.py``."""
    proc = subprocess.run(
        [sys.executable, "-I", "-", "--json", "--nic", "enP2p1s0f0np0", "--skip", "driver"],
        input=DOCTOR.read_text(), capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "SGLANG_MIMO_SYS_ROOT": str(gb10)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["message"] == "enP2p1s0f0np0 MTU 9000, up"


# ------------------------------------------------------------- cluster's input


GB10_SITE = ["--nic", "enP2p1s0f0np0", "--ib-hca", "roceP2p1s0f0",
             "--model-path", "/models/MiMo-V2.5"]  # fmt: skip
ADDRS = "192.0.2.10,192.0.2.11,192.0.2.12,192.0.2.13"


def test_cluster_start_renders_ranks_kept_after_exit(tmp_path):
    out = run_cli("cluster", "start", "mimo-v2.5-gb10x4", "--hosts", "spark-1,spark-2,spark-3,spark-4",
                  "--rank-addr", ADDRS, *GB10_SITE, "--dry-run", "--restart", "on-failure:3")  # fmt: skip
    assert out.returncode == 0, out.stderr
    runs = [x for x in out.stdout.splitlines() if x.startswith("docker run")]
    assert len(runs) == 4
    for r, line in enumerate(runs):
        assert line.startswith(
            f"docker run -d --restart on-failure:3 --name mimo-v2.5-gb10x4-rank{r} "
        )
        assert "--rm" not in line.split()
        assert f"--node-rank {r} --dist-init-addr 192.0.2.10:20000" in line
        assert f"SGLANG_HOST_IP=192.0.2.1{r}" in line
    assert out.stdout.count("ssh -o BatchMode=yes -o ConnectTimeout=10 spark-") == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hosts", "a,b"], "--hosts lists 2 host(s); recipe mimo-v2.5-gb10x4 has 4 rank(s)"),
        (["--hosts", "a,b,c,d"], "give --rank-addr A0,..,A3"),
        (["--hosts", "a,b,c,d", "--rank-addr", "192.0.2.10,x..y,c,d"], "is not an IP address"),
        (["--hosts", "a,b,c,d", "--rank-addr", ADDRS, "--head-addr", "nope"], "is not HOST:PORT"),
    ],
)  # fmt: skip
def test_cluster_bad_input_exits_2(args, message):
    out = run_cli("cluster", "status", "mimo-v2.5-gb10x4", *args, *GB10_SITE)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_cluster_inventory_unknown_key(tmp_path):
    inv = tmp_path / "c.yaml"
    inv.write_text("recipe: mimo-v2.5-gb10x4\nhost: [a]\n")
    out = run_cli("cluster", "status", "--inventory", inv)
    assert out.returncode == 2 and "unknown key(s) host; known:" in out.stderr


def test_the_operator_guides_inventory_renders(tmp_path):
    """The inventory of docs/operators.md step 9, as written, gives every rank's start."""
    text = (REPO / "docs" / "operators.md").read_text()
    section = text.split("<!-- cluster-command -->", 1)[1]
    inventory = tmp_path / "cluster.yaml"
    inventory.write_text(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    out = run_cli("cluster", "start", "-i", inventory, "--dry-run")
    assert out.returncode == 0, out.stderr
    runs = [x for x in out.stdout.splitlines() if x.startswith("docker run")]
    assert len(runs) == 4 and all(
        "-v /models/MiMo-V2.5:/models/MiMo-V2.5:ro" in x for x in runs
    )
    assert "ssh -o BatchMode=yes -o ConnectTimeout=10 192.0.2.13 " in out.stdout


# Two ranks on one machine (`local`: no ssh), as a single-host run has them, with gloo.
ONE_HOST = ["cluster", "doctor", "mimo-v2.5-pro-h200x16", "--hosts", "local,local",
            "--rank-addr", "127.0.0.1,127.0.0.1", "--ib-hca", "mlx5_0", "--runner", "exec",
            "--python", sys.executable, "--only", "addrs", "--only", "allreduce",
            "--backend", "gloo", "--mib", "4", "--json"]  # fmt: skip


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_reduce_of_two_ranks_on_one_host():
    port = _free_port()
    out = run_cli(*ONE_HOST, "--nic", "lo", "--head-addr", f"127.0.0.1:{port}",
                  "--timeout", "60")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    addrs, ar = json.loads(out.stdout)
    assert addrs["status"] == "pass" and ar["status"] == "pass", ar
    assert ar["message"].startswith("gloo all-reduce of 4 MiB across 2 rank(s) in ")
    assert [r["device"] for r in ar["ranks"]] == ["cpu", "cpu"]
    assert all(r["ok"] and r["busbw_gbps"] > 0 for r in ar["ranks"])


def test_all_reduce_on_one_host_with_a_wrong_interface_stops_both_ranks():
    port = _free_port()
    out = run_cli(*ONE_HOST, "--nic", "nosuch0", "--head-addr", f"127.0.0.1:{port}",
                  "--timeout", "60")  # fmt: skip
    assert out.returncode == 1
    ar = json.loads(out.stdout)[-1]
    assert ar["status"] == "fail"
    assert (
        "interface nosuch0 (GLOO_SOCKET_IFNAME/NCCL_SOCKET_IFNAME) does not exist"
        in (ar["message"])
    )
    # Whichever rank saw it first, the other one was stopped, well before the timeout.
    assert sorted(r.get("cancelled", False) for r in ar["ranks"]) in (
        [False, False], [False, True],
    )  # fmt: skip
    assert ar["seconds"] < 45
    assert str(port) not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                           text=True).stdout  # fmt: skip
