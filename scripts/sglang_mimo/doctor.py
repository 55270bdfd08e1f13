"""Preflight checks of one node before a rank of a recipe starts on it.

    doctor [--nic IF] [--ib-hca DEV] [--rank-addr ADDR] [--model-path PATH]
           [--model-bytes N] [--gpu-arch X.Y] [--gpus N] [--gpu-memory-gib G]
           [--gid-index N] [--memlock LIMIT] [--shm-size SIZE] [--peers H1,H2]
           [--ssh-option ARG ...] [--skip CHECK ...] [--json]

Each check ends pass / warn / fail / skip with one line of cause and, when it does
not pass, one line of fix:

    nic      the network interface(s) of NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME exist,
             are up; their MTU (compared across the ranks by ``cluster doctor``)
    hca      the RDMA device(s) of NCCL_IB_HCA exist, their port is ACTIVE, and they
             sit on the same port as the interface; when one is missing, the devices
             this node has and the interface of each (what ``ibdev2netdev`` prints)
    gid      RoCE: the GID NCCL_IB_GID_INDEX (--gid-index) names on each device's port
             is RoCE v2 and the IPv4-mapped GID of the rank's address (ports/N/gids/*,
             gid_attrs/types/*); unset, that such a GID exists; the index to set when
             not. InfiniBand ports need none
    addr     the rank's address (--rank-addr, SGLANG_HOST_IP) is on this node,
             on the named interface
    disk     free disk for the checkpoint at --model-path (--model-bytes: its size on
             the head, which ``cluster doctor`` passes)
    memlock  with RDMA (--ib-hca): the locked-memory limit is unlimited (this session's
             ``ulimit -l``, or --memlock, the docker line's ``--ulimit memlock=``)
    shm      /dev/shm (the rank shares the host's: --ipc=host) has 1 GiB free at least,
             and is as large as the recipe's --shm-size
    peers    ssh reaches each of --peers from here (BatchMode, ConnectTimeout 5)
    driver   the NVIDIA driver supports CUDA 13 (both images are cu130)
    gpu      the GPUs' compute capability is the image's (--gpu-arch), as many as the
             recipe's per node (--gpus), with its memory per GPU (--gpu-memory-gib)

Values come from the flags or SGLANG_MIMO_NIC, SGLANG_MIMO_IB_HCA, SGLANG_MIMO_RANK_ADDR,
SGLANG_MIMO_MODEL_PATH, NCCL_IB_GID_INDEX. ``sglang-mimo cluster doctor`` runs this file on every rank
over ssh (``python3 - < doctor.py``: it imports nothing but the standard library), then
the checks across the ranks (MTU, ssh from the head, clock skew) and the all-reduce
(``allreduce.py``).

Exit codes: 0 no check failed (warnings allowed); 1 a check failed; 2 usage.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ipaddress
import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The driver the images need: both are built on CUDA 13.0 (cu130); CUDA 13.0's
# release notes give 580.65.06 as its minimum Linux driver.
CUDA_MAJOR = 13
MIN_DRIVER = (580, 65, 6)
MIN_DRIVER_TEXT = "580.65.06"

CHECKS = (
    "nic",
    "hca",
    "gid",
    "addr",
    "disk",
    "memlock",
    "shm",
    "peers",
    "driver",
    "gpu",
)
# Below this locked-memory limit NCCL's RDMA registrations fail (ibv_reg_mr); NCCL and
# the NIC vendors ask for unlimited, so a finite limit above it is a warning.
MEMLOCK_MIN = 16 * 2**30
SHM_MIN = 2**30  # /dev/shm below this fails (Docker's own default is 64 MiB)
PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
# Interfaces that are never the fabric: suggestions leave them out.
_NOT_FABRIC = (
    "lo",
    "docker",
    "veth",
    "virbr",
    "br-",
    "cni",
    "flannel",
    "cali",
    "tun",
    "tap",
)


def result(name: str, status: str, message: str, fix: str = "") -> dict[str, Any]:
    return {"check": name, "status": status, "message": message, "fix": fix}


def sys_root() -> Path:
    """Where /sys is read from (the tests point it at a made-up tree)."""
    return Path(os.environ.get("SGLANG_MIMO_SYS_ROOT", "/sys"))


def _read(path: str | Path, default: str | None = None) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def split_list(value: str) -> tuple[bool, list[tuple[str, str | None]]]:
    """NCCL's list syntax (``^`` excludes, ``=`` exact, ``dev:port``): (exclude, [(name, port)])."""
    value = value.strip()
    exclude = value.startswith("^")
    value = value.lstrip("^=")
    out: list[tuple[str, str | None]] = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        name, _, port = item.partition(":")
        out.append((name, port or None))
    return exclude, out


def interfaces(root: Path) -> list[str]:
    d = root / "class" / "net"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def rdma_devices(root: Path) -> dict[str, list[str]]:
    """{RDMA device: [its network interfaces]} from /sys/class/infiniband (ibdev2netdev)."""
    d = root / "class" / "infiniband"
    out: dict[str, list[str]] = {}
    if not d.is_dir():
        return out
    for dev in sorted(d.iterdir()):
        net = dev / "device" / "net"
        out[dev.name] = sorted(p.name for p in net.iterdir()) if net.is_dir() else []
    return out


def fabric_candidates(root: Path) -> list[str]:
    names = [n for n in interfaces(root) if not n.startswith(_NOT_FABRIC)]
    rdma_nets = {n for nets in rdma_devices(root).values() for n in nets}
    # Interfaces with an RDMA device first (the ones a recipe's fabric can be).
    return sorted(names, key=lambda n: (n not in rdma_nets, n))


def check_nic(nic: str | None, root: Path) -> dict[str, Any]:
    """Each interface of the list exists and is up; the message carries its MTU."""
    if not nic:
        return result(
            "nic", SKIP, "no --nic given (NCCL/Gloo pick an interface themselves)"
        )
    exclude, names = split_list(nic)
    if exclude:
        return result(
            "nic", SKIP, f"--nic {nic} excludes interfaces; nothing to look up"
        )
    present = set(interfaces(root))
    missing = [n for n, _ in names if n not in present]
    if missing:
        cands = fabric_candidates(root)
        return result(
            "nic", FAIL,
            f"interface {', '.join(missing)} does not exist on this node "
            f"(it has: {', '.join(cands) or 'no interface but loopback'})",
            f"give --nic the fabric interface's name (`ip -br link`; "
            f"`ibdev2netdev` maps RDMA devices to interfaces){_suggest(cands)}",
        )  # fmt: skip
    mtus: dict[str, str | None] = {}
    down: list[str] = []
    for name, _ in names:
        base = root / "class" / "net" / name
        mtus[name] = _read(base / "mtu", "?")
        state = _read(base / "operstate", "unknown")
        if state not in ("up", "unknown"):
            down.append(f"{name} is {state}")
    text = ", ".join(f"{n} MTU {m}" for n, m in mtus.items())
    if down:
        return result(
            "nic", FAIL, f"{'; '.join(down)} ({text})",
            f"bring the link up (`ip link set {names[0][0]} up`; check the cable and switch port)",
        )  # fmt: skip
    return result("nic", PASS, f"{text}, up", "")


def _suggest(cands: Sequence[str]) -> str:
    return f", e.g. --nic {cands[0]}" if cands else ""


def mtu_of(nic: str | None, root: Path) -> str | None:
    if not nic:
        return None
    exclude, names = split_list(nic)
    if exclude or not names:
        return None
    return _read(root / "class" / "net" / names[0][0] / "mtu")


def check_hca(hca: str | None, nic: str | None, root: Path) -> dict[str, Any]:
    if not hca:
        return result("hca", SKIP, "no --ib-hca given (NCCL_IB_HCA unset)")
    exclude, devs = split_list(hca)
    if exclude:
        return result(
            "hca", SKIP, f"--ib-hca {hca} excludes devices; nothing to look up"
        )
    have = rdma_devices(root)
    pairs = ", ".join(
        f"{d} -> {','.join(n) or '(no interface)'}" for d, n in have.items()
    )
    missing = [d for d, _ in devs if d not in have]
    if missing:
        if not have:
            return result(
                "hca", FAIL,
                f"RDMA device {', '.join(missing)} not found: this node has no RDMA device "
                "(/sys/class/infiniband is empty)",
                "load the NIC's RDMA driver (mlx5_ib) and install rdma-core; "
                "`ibv_devices` must list the device",
            )  # fmt: skip
        guess = _hca_for_nic(nic, have)
        hint = f", e.g. --ib-hca {guess}" if guess else ""
        return result(
            "hca", FAIL,
            f"RDMA device {', '.join(missing)} does not exist on this node (it has: {pairs})",
            f"give --ib-hca the device of the fabric interface (`ibdev2netdev`){hint}",
        )  # fmt: skip
    problems: list[str] = []
    notes: list[str] = []
    nic_names = (
        {n for n, _ in split_list(nic)[1]} if nic and not split_list(nic)[0] else set()
    )
    for dev, port in devs:
        port = port or "1"
        state = _read(root / "class" / "infiniband" / dev / "ports" / port / "state")
        if state is None:
            problems.append(f"{dev} has no port {port}")
        elif "ACTIVE" not in state:
            problems.append(f"{dev} port {port} is {state.split(':')[-1].strip()}")
        else:
            notes.append(f"{dev} port {port} ACTIVE")
        if nic_names and have[dev] and not nic_names & set(have[dev]):
            problems.append(
                f"{dev} belongs to {','.join(have[dev])}, not to --nic {nic}"
            )
    if problems:
        return result(
            "hca", FAIL, "; ".join(problems) + f" (devices: {pairs})",
            "pick the RDMA device of the fabric interface (`ibdev2netdev`) and bring its "
            "link up (`ibstat` shows the port state)",
        )  # fmt: skip
    return result("hca", PASS, ", ".join(notes), "")


def _hca_for_nic(nic: str | None, have: Mapping[str, list[str]]) -> str | None:
    if not nic:
        return None
    names = {n for n, _ in split_list(nic)[1]}
    for dev, nets in have.items():
        if names & set(nets):
            return dev
    return None


def addresses() -> dict[str, list[str]] | None:
    """{interface: [addresses]} from ``ip -j addr`` (iproute2)."""
    if not shutil.which("ip"):
        return None
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True)
    if out.returncode:
        return None
    found: dict[str, list[str]] = {}
    for link in json.loads(out.stdout or "[]"):
        found[link["ifname"]] = [
            a["local"] for a in link.get("addr_info", []) if a.get("scope") != "link"
        ]
    return found


def check_addr(rank_addr: str | None, nic: str | None) -> dict[str, Any]:
    if not rank_addr:
        return result("addr", SKIP, "no --rank-addr given")
    found = addresses()
    if found is None:
        return result(
            "addr", WARN, "cannot list addresses (no `ip`)", "install iproute2"
        )
    where = [i for i, addrs in found.items() if rank_addr in addrs]
    names = [n for n, _ in split_list(nic)[1]] if nic and not split_list(nic)[0] else []
    if not where:
        mine = ", ".join(
            f"{a} ({i})" for i, addrs in found.items() if i != "lo" for a in addrs
        )
        return result(
            "addr", FAIL,
            f"address {rank_addr} is not on this node (it has: {mine or 'none'})",
            "give this rank's own fabric address (--rank-addr, one per rank in rank "
            "order), or assign it to the interface (`ip addr add`)",
        )  # fmt: skip
    if names and not set(where) & set(names):
        return result(
            "addr", WARN,
            f"address {rank_addr} is on {', '.join(where)}, not on --nic {nic}",
            "NCCL and Gloo use --nic: give the address of that interface or change --nic",
        )  # fmt: skip
    return result("addr", PASS, f"{rank_addr} is on {', '.join(where)}")


def tree_bytes(path: str | Path) -> int:
    """Total size of the regular files under ``path`` (not following links)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_disk(model_path: str | None, model_bytes: int | None) -> dict[str, Any]:
    if not model_path:
        return result("disk", SKIP, "no --model-path given")
    if not model_path.startswith(("/", "~", ".")):
        return result(
            "disk", WARN,
            f"--model-path {model_path} is a hub id: each rank downloads it into its own cache",
            "copy a local checkpoint to every rank (`sglang-mimo cluster setup`) and "
            "give its directory",
        )  # fmt: skip
    path = Path(model_path).expanduser()
    have = tree_bytes(path) if path.is_dir() else 0
    if model_bytes is None:
        if have:
            return result("disk", PASS, f"{path} holds {_gib(have)}")
        return result(
            "disk", FAIL, f"{path}: no checkpoint here",
            "copy it here (`sglang-mimo cluster setup` from the head) or fix --model-path",
        )  # fmt: skip
    need = max(model_bytes - have, 0)
    if need == 0:
        return result("disk", PASS, f"{path} holds the checkpoint ({_gib(have)})")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        return result(
            "disk", FAIL,
            f"{path} needs {_gib(need)} more, {probe} has {_gib(free)} free "
            f"(checkpoint {_gib(model_bytes)}, {_gib(have)} here)",
            "free disk space there or give another --model-path (the same path on every rank)",
        )  # fmt: skip
    return result(
        "disk", WARN,
        f"{path} is missing {_gib(need)} of the checkpoint ({_gib(free)} free at {probe})",
        "copy it (`sglang-mimo cluster setup`)",
    )  # fmt: skip


def _gid(text: str | None) -> ipaddress.IPv6Address | None:
    """A GID as the kernel writes it (0000:...:ffff:c000:020a), as an IPv6Address."""
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def _gid_text(gid: ipaddress.IPv6Address) -> str:
    v4 = gid.ipv4_mapped
    return f"::ffff:{v4}" if v4 else gid.compressed


def _roce_version(typ: str | None) -> str:
    return "v2" if typ and "v2" in typ else ("v1" if typ else "?")


def gid_table(
    root: Path, dev: str, port: str
) -> list[tuple[int, ipaddress.IPv6Address, str | None]] | None:
    """[(index, IPv6Address, "RoCE v2"/"IB/RoCE v1")] of a port's non-zero GIDs, or None
    when the port has no GID table."""
    base = root / "class" / "infiniband" / dev / "ports" / port
    d = base / "gids"
    if not d.is_dir():
        return None
    out: list[tuple[int, ipaddress.IPv6Address, str | None]] = []
    for p in sorted(
        (p for p in d.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    ):
        gid = _gid(_read(p, ""))
        if gid is None or gid.packed == bytes(16):
            continue
        out.append((int(p.name), gid, _read(base / "gid_attrs" / "types" / p.name)))
    return out


def check_gid(
    hca: str | None, gid_index: str | int | None, rank_addr: str | None, root: Path
) -> dict[str, Any]:
    """The RoCE GID NCCL will use: RoCE v2 and the rank's IPv4 address."""
    if not hca:
        return result("gid", SKIP, "no --ib-hca given (NCCL_IB_HCA unset)")
    exclude, devs = split_list(hca)
    if exclude:
        return result(
            "gid", SKIP, f"--ib-hca {hca} excludes devices; nothing to look up"
        )
    want: ipaddress.IPv6Address | None = None
    if rank_addr:
        try:
            want = ipaddress.IPv6Address(f"::ffff:{ipaddress.IPv4Address(rank_addr)}")
        except ValueError:
            want = None
    if gid_index not in (None, "") and not str(gid_index).isdigit():
        return result(
            "gid", FAIL, f"NCCL_IB_GID_INDEX={gid_index} is not a number",
            "NCCL_IB_GID_INDEX takes the index of a GID (`show_gids`), e.g. 3",
        )  # fmt: skip
    index = int(gid_index) if gid_index not in (None, "") else None
    problems: list[str] = []
    notes: list[str] = []
    suggest: set[int] = set()
    skipped: list[str] = []
    for dev, port in devs:
        port = port or "1"
        base = root / "class" / "infiniband" / dev
        if not base.is_dir():
            continue  # the hca check names it
        if _read(base / "ports" / port / "link_layer") == "InfiniBand":
            notes.append(f"{dev} port {port} is InfiniBand (no GID index needed)")
            continue
        table = gid_table(root, dev, port)
        if table is None:
            skipped.append(f"{dev} port {port} has no GID table")
            continue
        whose = f"{rank_addr}'s" if want else "an IPv4"

        def fits(g: ipaddress.IPv6Address) -> bool:
            return g == want if want else g.ipv4_mapped is not None

        good = [i for i, g, t in table if _roce_version(t) == "v2" and fits(g)]
        suggest.update(good[:1])
        listing = ", ".join(
            f"{i} {_gid_text(g)} {_roce_version(t)}" for i, g, t in table
        )
        if index is None:
            if good:
                notes.append(
                    f"{dev} port {port}: RoCE v2 GID {good[0]} is {whose} "
                    f"(NCCL_IB_GID_INDEX unset: NCCL picks one; ={good[0]} pins it)"
                )
            else:
                problems.append(
                    f"{dev} port {port} has no RoCE v2 GID of {rank_addr or 'an IPv4 address'} "
                    f"(GIDs: {listing or 'none'})"
                )
            continue
        entry = {i: (g, t) for i, g, t in table}.get(index)
        if entry is None:
            problems.append(f"NCCL_IB_GID_INDEX={index}: {dev} port {port} has no GID "
                            f"{index} (GIDs: {listing or 'none'})")  # fmt: skip
        elif _roce_version(entry[1]) != "v2":
            problems.append(
                f"NCCL_IB_GID_INDEX={index}: GID {index} of {dev} is RoCE "
                f"{_roce_version(entry[1])} ({_gid_text(entry[0])}), NCCL needs RoCE v2"
            )
        elif not fits(entry[0]):
            problems.append(
                f"NCCL_IB_GID_INDEX={index}: GID {index} of {dev} is "
                f"{_gid_text(entry[0])}, not {whose}"
            )
        else:
            notes.append(
                f"{dev} port {port} GID {index}: RoCE v2, {_gid_text(entry[0])}"
            )
    if problems:
        if len(suggest) == 1:
            (i,) = suggest
            fix = (f"NCCL_IB_GID_INDEX={i} (the RoCE v2 GID of {rank_addr or 'the address'}): "
                   f"`--env NCCL_IB_GID_INDEX={i}` to cluster, `-e NCCL_IB_GID_INDEX={i}` "
                   "on the docker line")  # fmt: skip
        elif suggest:
            fix = ("the devices differ: give each node the index of its RoCE v2 GID of "
                   "its address (`show_gids`)")  # fmt: skip
        else:
            fix = ("a RoCE v2 GID follows the interface's IPv4 address: put the rank's "
                   "address on the device's interface (`ip addr add`), then `show_gids`")  # fmt: skip
        return result("gid", FAIL, "; ".join(problems), fix)
    if not notes:
        return result(
            "gid", SKIP, "; ".join(skipped) or "no RDMA device of --ib-hca here"
        )
    return result("gid", PASS, "; ".join(notes + skipped))


def _parse_bytes(text: object) -> int | None:
    """docker's sizes (32g, 512m, 1024k, 64b, a plain byte count); None if not one."""
    text = str(text).strip().lower()
    units = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    mult = 1
    if text and text[-1] in units:
        mult, text = units[text[-1]], text[:-1]
    try:
        return int(float(text) * mult)
    except ValueError:
        return None


def _size(n: int) -> str:
    for unit, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= div:
            return f"{n / div:.{0 if n % div == 0 else 1}f} {unit}"
    return f"{n} B"


MEMLOCK_FIX = (
    "unlimited locked memory: `* - memlock unlimited` in /etc/security/limits.conf and a "
    "new login (LimitMEMLOCK=infinity for a systemd service); docker: --ulimit memlock=-1"
)


def check_memlock(hca: str | None, limit: str | None = None) -> dict[str, Any]:
    """The locked-memory limit the rank runs under (RDMA registers its buffers)."""
    if not hca:
        return result("memlock", SKIP, "no --ib-hca given (no RDMA)")
    if limit not in (None, ""):
        soft = str(limit).split(":")[0]
        where = f"the docker line's --ulimit memlock={limit}"
        if soft in ("-1", "unlimited"):
            return result("memlock", PASS, f"unlimited ({where})")
        value = _parse_bytes(soft)
        if value is None:
            return result("memlock", FAIL, f"--memlock {limit} is not a size",
                          "--ulimit memlock=-1 on the docker line")  # fmt: skip
    else:
        value = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
        where = "ulimit -l of this session"
        if value == resource.RLIM_INFINITY:
            return result("memlock", PASS, f"unlimited ({where})")
    if value < MEMLOCK_MIN:
        return result(
            "memlock", FAIL,
            f"locked memory limited to {_size(value)} ({where}): NCCL's RDMA buffers "
            "cannot be registered (ibv_reg_mr: Cannot allocate memory)",
            MEMLOCK_FIX,
        )  # fmt: skip
    return result("memlock", WARN,
                  f"locked memory limited to {_size(value)} ({where}); NCCL asks for unlimited",
                  MEMLOCK_FIX)  # fmt: skip


def shm_dir() -> str:
    """The shared-memory mount (the tests point it at a tmpfs of their own)."""
    return os.environ.get("SGLANG_MIMO_SHM_DIR", "/dev/shm")


def check_shm(shm_size: str | None = None, path: str | None = None) -> dict[str, Any]:
    """/dev/shm's size and free space: at least SHM_MIN (NCCL's and SGLang's shared
    memory; Docker's own 64 MiB is the usual failure), and the recipe's --shm-size. The
    rendered lines use --ipc=host, so the container's /dev/shm is the host's."""
    path = path or shm_dir()
    need = _parse_bytes(shm_size) if shm_size else None
    try:
        st = os.statvfs(path)
    except OSError as e:
        return result("shm", FAIL, f"{path}: {e.strerror}",
                      "mount a tmpfs on /dev/shm (`mount -t tmpfs tmpfs /dev/shm`)")  # fmt: skip
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    size = _size(max(need or 0, SHM_MIN)).replace(" ", "").replace("iB", "")
    fix = (f"`mount -o remount,size={size} {path}` (and its /etc/fstab line); the "
           "rendered lines share the host's (--ipc=host)")  # fmt: skip
    have = f"{path} is {_size(total)}, {_size(free)} free"
    if total < SHM_MIN:
        return result("shm", FAIL,
                      f"{have}: NCCL and SGLang need at least {_size(SHM_MIN)} of shared memory",
                      fix)  # fmt: skip
    if free < SHM_MIN:
        return result("shm", FAIL, f"{have}: less than {_size(SHM_MIN)} left",
                      f"remove what a crashed run left there (`ls -la {path}`), or reboot")  # fmt: skip
    if need and total < need:
        return result("shm", WARN, f"{have}, less than the recipe's --shm-size {shm_size}",
                      fix)  # fmt: skip
    what = f", the recipe's --shm-size {shm_size}" if need else ""
    return result("shm", PASS, f"{have}{what}")


def check_peers(
    peers: str | None, ssh_options: Sequence[str] = (), timeout: int = 5
) -> dict[str, Any]:
    """ssh from this node to each peer, as ``cluster`` does (key login, no prompt)."""
    hosts = [h.strip() for h in (peers or "").split(",") if h.strip()]
    if not hosts:
        return result("peers", SKIP, "no --peers given")
    if not shutil.which("ssh"):
        return result("peers", FAIL, "no ssh client here", "install openssh-client")

    def probe(host: str) -> str | None:
        argv = ["ssh", *ssh_options, "-o", "BatchMode=yes", "-o",
                f"ConnectTimeout={timeout}", host, "true"]  # fmt: skip
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10,
                               stdin=subprocess.DEVNULL)  # fmt: skip
        except subprocess.TimeoutExpired:
            return f"{host}: no answer in {timeout + 10} s"
        if p.returncode == 0:
            return None
        lines = [x for x in p.stderr.strip().splitlines() if x.strip()]
        return f"{host}: {lines[-1] if lines else f'ssh exited {p.returncode}'}"

    with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
        bad = [e for e in pool.map(probe, hosts) if e]
    if bad:
        return result(
            "peers", FAIL, "ssh cannot reach " + "; ".join(bad),
            "passwordless ssh from this node: `ssh-copy-id HOST`, then "
            "`ssh -o BatchMode=yes HOST true` must work",
        )  # fmt: skip
    return result("peers", PASS, f"ssh reaches {', '.join(hosts)}")


def parse_version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for p in text.strip().split("."):
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def query_gpus() -> tuple[list[list[str]] | None, str | None]:
    """(rows, error): per GPU [driver_version, name, memory.total MiB, compute_cap]."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None, "no NVIDIA driver (nvidia-smi not found)"
    out = subprocess.run(
        [smi, "--query-gpu=driver_version,name,memory.total,compute_cap",
         "--format=csv,noheader,nounits"],
        capture_output=True, text=True,
    )  # fmt: skip
    lines = [r for r in out.stdout.splitlines() if r.strip()]
    if out.returncode or not lines:
        why = (out.stderr or out.stdout).strip().splitlines()
        return (
            None,
            f"nvidia-smi failed: {why[-1] if why else f'exit {out.returncode}'}",
        )
    return [([c.strip() for c in r.split(",")] + ["", "", ""])[:4] for r in lines], None


def _memory(mib: str) -> str:
    return f"{int(mib) / 1024:.0f} GiB" if mib.isdigit() else mib


def check_driver(
    gpus: tuple[list[list[str]] | None, str | None] | None = None,
) -> dict[str, Any]:
    rows, err = gpus if gpus is not None else query_gpus()
    if err and err.startswith("no NVIDIA driver"):
        return result(
            "driver", FAIL, err,
            f"install the NVIDIA driver {MIN_DRIVER_TEXT} or newer (CUDA {CUDA_MAJOR}) "
            "and the NVIDIA Container Toolkit",
        )  # fmt: skip
    if err:
        return result(
            "driver", FAIL, err,
            "the driver is not loaded or does not match the kernel module: reboot, or "
            "reinstall the driver",
        )  # fmt: skip
    assert rows is not None  # query_gpus gives the rows or an error
    version, name, memory, _ = rows[0]
    what = f"{len(rows)} x {name}" + (f" ({_memory(memory)})" if memory else "")
    if parse_version(version) < MIN_DRIVER:
        return result(
            "driver", FAIL,
            f"driver {version} is older than {MIN_DRIVER_TEXT}: it cannot run the "
            f"images' CUDA {CUDA_MAJOR}.0 ({what})",
            f"upgrade the driver to {MIN_DRIVER_TEXT} or newer (the 580 branch or later)",
        )  # fmt: skip
    return result("driver", PASS, f"driver {version} runs CUDA {CUDA_MAJOR} ({what})")


def check_gpu(
    arch: str | None = None,
    count: int | None = None,
    memory_gib: float | None = None,
    gpus: tuple[list[list[str]] | None, str | None] | None = None,
) -> dict[str, Any]:
    """The GPUs match the image's arch (compute capability), the recipe's GPUs per node
    and its memory per GPU."""
    if not (arch or count or memory_gib):
        return result(
            "gpu", SKIP, "no recipe values given (--gpu-arch, --gpus, --gpu-memory-gib)"
        )
    rows, err = gpus if gpus is not None else query_gpus()
    if err:
        return result("gpu", SKIP, f"no GPU information ({err})")
    assert rows is not None  # query_gpus gives the rows or an error
    problems: list[str] = []
    fixes: list[str] = []
    caps = sorted({r[3] for r in rows})
    if arch and caps != [arch]:
        problems.append(
            f"compute capability {', '.join(caps)} ({rows[0][1]}), the image is built "
            f"for {arch}"
        )
        fixes.append(
            "the sm90 image and recipes for H100/H200 (9.0), sm121a for GB10 (12.1)"
        )
    if count and len(rows) < count:
        problems.append(f"{len(rows)} GPU(s) here, the recipe needs {count} per node")
        fixes.append("a recipe for this node's GPUs, or check `nvidia-smi -L`")
    mems = [int(r[2]) for r in rows if r[2].isdigit()]
    if memory_gib and mems and min(mems) < memory_gib * 1024 * 0.97:
        problems.append(
            f"{min(mems) / 1024:.0f} GiB per GPU, the recipe is sized for {memory_gib} GiB"
        )
        fixes.append("a recipe sized for this GPU (`sglang-mimo launch --list`)")
    if problems:
        return result("gpu", FAIL, "; ".join(problems), "; ".join(fixes))
    mem = f", {min(mems) / 1024:.0f} GiB each" if mems else ""
    return result(
        "gpu", PASS, f"{len(rows)} x {rows[0][1]}, compute capability {caps[0]}{mem}"
    )


def run_checks(
    values: Mapping[str, Any], skip: Sequence[str] | set[str] = ()
) -> list[dict[str, Any]]:
    root = sys_root()
    nic = values.get("nic")
    gpus = query_gpus() if not {"driver", "gpu"} <= set(skip) else (None, "skipped")
    out: list[dict[str, Any]] = []
    for name in CHECKS:
        if name in skip:
            out.append(result(name, SKIP, "skipped (--skip)"))
        elif name == "nic":
            r = check_nic(nic, root)
            r["mtu"] = mtu_of(nic, root)
            out.append(r)
        elif name == "hca":
            out.append(check_hca(values.get("ib_hca"), nic, root))
        elif name == "gid":
            out.append(check_gid(values.get("ib_hca"), values.get("gid_index"),
                                 values.get("rank_addr"), root))  # fmt: skip
        elif name == "memlock":
            out.append(check_memlock(values.get("ib_hca"), values.get("memlock")))
        elif name == "shm":
            out.append(check_shm(values.get("shm_size")))
        elif name == "peers":
            out.append(
                check_peers(values.get("peers"), values.get("ssh_options") or ())
            )
        elif name == "addr":
            out.append(check_addr(values.get("rank_addr"), nic))
        elif name == "disk":
            out.append(check_disk(values.get("model_path"), values.get("model_bytes")))
        elif name == "driver":
            out.append(check_driver(gpus))
        elif name == "gpu":
            out.append(
                check_gpu(values.get("gpu_arch"), values.get("gpus"),
                          values.get("gpu_memory_gib"), gpus)
            )  # fmt: skip
    return out


def format_result(r: Mapping[str, Any], prefix: str = "") -> str:
    line = f"{prefix}{r['status'].upper():4}  {r['check']:9} {r['message']}"
    if r.get("fix") and r["status"] in (FAIL, WARN):
        line += f"\n{' ' * len(prefix)}      {'':9} fix: {r['fix']}"
    return line


ENV = {
    "nic": "SGLANG_MIMO_NIC",
    "ib_hca": "SGLANG_MIMO_IB_HCA",
    "rank_addr": "SGLANG_MIMO_RANK_ADDR",
    "model_path": "SGLANG_MIMO_MODEL_PATH",
    "gid_index": "NCCL_IB_GID_INDEX",
}


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nic", help="network interface(s) of the fabric ($SGLANG_MIMO_NIC)"
    )
    p.add_argument("--ib-hca", help="RDMA device(s), NCCL_IB_HCA ($SGLANG_MIMO_IB_HCA)")
    p.add_argument("--rank-addr", help="this rank's address ($SGLANG_MIMO_RANK_ADDR)")
    p.add_argument(
        "--model-path", help="checkpoint directory ($SGLANG_MIMO_MODEL_PATH)"
    )
    p.add_argument("--model-bytes", type=int, help="the checkpoint's size in bytes")
    p.add_argument(
        "--gpu-arch", help="compute capability the image is built for (9.0, 12.1)"
    )
    p.add_argument("--gpus", type=int, help="GPUs the recipe uses per node")
    p.add_argument(
        "--gpu-memory-gib", type=float, help="memory per GPU the recipe is sized for"
    )
    p.add_argument(
        "--gid-index", help="NCCL_IB_GID_INDEX the rank runs with ($NCCL_IB_GID_INDEX)"
    )
    p.add_argument(
        "--memlock",
        help="the rank's locked-memory limit when it is not this "
        "session's (docker's --ulimit memlock=VALUE; -1 unlimited)",
    )
    p.add_argument("--shm-size", help="shared memory the recipe asks for (32g)")
    p.add_argument(
        "--peers", help="ssh destinations to reach from here, comma-separated"
    )
    p.add_argument(
        "--ssh-option",
        action="append",
        default=[],
        help="extra ssh argument for --peers (repeatable)",
    )
    p.add_argument("--skip", action="append", default=[], choices=CHECKS,
                   help="leave a check out (repeatable)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON array of results")


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "doctor",
        help="preflight checks of this node (cluster doctor runs them on every rank)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    values = {k: getattr(args, k) or environ.get(env) for k, env in ENV.items()}
    values["model_bytes"] = args.model_bytes
    values["gpu_arch"] = args.gpu_arch
    values["gpus"] = args.gpus
    values["gpu_memory_gib"] = args.gpu_memory_gib
    values["memlock"] = args.memlock
    values["shm_size"] = args.shm_size
    values["peers"] = args.peers
    values["ssh_options"] = args.ssh_option
    results = run_checks(values, set(args.skip))
    if args.json:
        json.dump(results, sys.stdout)
        sys.stdout.write("\n")
    else:
        for r in results:
            print(format_result(r))
    return 1 if any(r["status"] == FAIL for r in results) else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="doctor", description=__doc__.split("\n\n")[0])
    _options(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
