"""Per-site values a recipe leaves open, as the launcher takes them: parsing and checks.

The flags and environment variables of the values (``SITE_INPUTS``), host names and
addresses, ``HOST:PORT`` of the head, the addresses of the ranks against each other,
model paths and interface lists. Pure: nothing is resolved over the network. Which
values a recipe needs, and filling them in, is ``recipes.resolve_site``.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from sglang_mimo.errors import RecipeError

# Per-site inputs a recipe may use as {placeholders}: launcher flag and environment variable.
SITE_INPUTS = {
    "model_path": ("--model-path", "SGLANG_MIMO_MODEL_PATH"),
    "rank_addr": ("--rank-addr", "SGLANG_MIMO_RANK_ADDR"),
    "nic": ("--nic", "SGLANG_MIMO_NIC"),
    "ib_hca": ("--ib-hca", "SGLANG_MIMO_IB_HCA"),
}
HEAD_ADDR_INPUT = ("--head-addr", "SGLANG_MIMO_HEAD_ADDR")

# The head's torch.distributed port: the same number in the launcher, its docs, the
# image docs and the Kubernetes render (overridable per run with --head-addr HOST:PORT).
HEAD_PORT = 20000

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IFLIST_RE = re.compile(r"^[=^]?[A-Za-z0-9_.:@-]+(?:,[A-Za-z0-9_.:@-]+)*$")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def check_host(value: str, what: str) -> str:
    """An IPv4/IPv6 address or a DNS name; returns it, raises RecipeError otherwise."""
    v = value.strip()
    if v.startswith("[") and v.endswith("]"):
        v = v[1:-1]
    try:
        ipaddress.ip_address(v)
        return value.strip()
    except ValueError:
        pass
    if _HOSTNAME_RE.match(v) and not re.fullmatch(r"[0-9.]+", v):
        return value.strip()
    raise RecipeError(f"{what}: {value!r} is not an IP address or host name")


def check_head_addr(value: str, what: str = "--head-addr") -> str:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6), as --dist-init-addr expects."""
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):([0-9]{1,5})", value.strip())
    if not m:
        raise RecipeError(
            f"{what}: {value!r} is not HOST:PORT (e.g. 192.0.2.10:{HEAD_PORT})"
        )
    host, port = m.group(1), int(m.group(2))
    check_host(host, what)
    if not 1 <= port <= 65535:
        raise RecipeError(f"{what}: port {port} is outside 1..65535")
    return value.strip()


def _bare_host(value: str) -> str:
    v = value.strip()
    return v[1:-1] if v.startswith("[") and v.endswith("]") else v


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def same_host(a: str, b: str) -> bool | None:
    """Whether two hosts are one: True / False for two IP addresses or two names,
    None when one is a name and the other an address (not resolved here)."""
    a, b = _bare_host(a), _bare_host(b)
    ia, ib = _ip(a), _ip(b)
    if ia is not None and ib is not None:
        return ia == ib
    if ia is None and ib is None:
        return a.rstrip(".").lower() == b.rstrip(".").lower()
    return None


def check_rank_addrs(head_addr: str, rank_addrs: dict[int, str]) -> None:
    """Refuse addresses that disagree. ``head_addr`` is HOST:PORT (rank 0's);
    ``rank_addrs`` maps node rank -> that rank's --rank-addr (every rank of a
    comma list, or the one rank being launched)."""
    head = _bare_host(head_addr.strip().rsplit(":", 1)[0])
    seen: dict[int, str] = {}
    for rank, addr in sorted(rank_addrs.items()):
        for other, prev in seen.items():
            if same_host(addr, prev):
                raise RecipeError(
                    f"--rank-addr: {addr} is given for rank {other} and rank {rank}; "
                    "each rank has its own address"
                )
        seen[rank] = addr
    if 0 in rank_addrs and same_host(rank_addrs[0], head) is False:
        if len(rank_addrs) == 1:
            raise RecipeError(
                f"rank 0's --rank-addr {rank_addrs[0]} differs from the --head-addr host "
                f"{head}: rank 0 is the head, give one address for both"
            )
        listed = ",".join(rank_addrs[r] for r in sorted(rank_addrs))
        at = [r for r, a in rank_addrs.items() if same_host(a, head)]
        if at:
            raise RecipeError(
                f"--head-addr host {head} is rank {at[0]}'s address in --rank-addr "
                f"{listed}; the head is rank 0: list rank 0's address first"
            )
        raise RecipeError(
            f"--head-addr host {head} is not in --rank-addr {listed}; the head is "
            f"rank 0, the list's first address ({rank_addrs[0]})"
        )
    for rank, addr in rank_addrs.items():
        if rank and same_host(addr, head):
            raise RecipeError(
                f"rank {rank}'s --rank-addr {addr} is the --head-addr host, rank 0's "
                "address: each rank gives its own address"
            )


def is_local_path(value: str) -> bool:
    """A --model-path that names a directory (absolute, ./x, ../x, ~/x, or one that
    exists here), as opposed to a Hugging Face hub id (org/name)."""
    v = value.strip()
    return (
        v.startswith(("/", "./", "../", "~"))
        or v in (".", "..")
        or not HUB_ID_RE.match(v)
        or Path(v).exists()
    )


def normalize_model_path(value: str) -> str:
    """Local paths become absolute (a relative one is relative to here); hub ids stay."""
    if is_local_path(value):
        return str(Path(value.strip()).expanduser().resolve())
    return value.strip()


def check_model_path_here(value: str) -> str:
    """Before launching on this node: a local --model-path must be a directory here."""
    if is_local_path(value) and not Path(value).is_dir():
        raise RecipeError(
            f"--model-path {value}: no such directory on this node (a local checkpoint "
            "directory, or a hub id such as XiaomiMiMo/MiMo-V2.5)"
        )
    return value


def check_site_value(key: str, value: str) -> str:
    """One per-site value (``key`` of SITE_INPUTS), checked; model paths normalized."""
    flag = SITE_INPUTS[key][0]
    if key == "rank_addr":
        return check_host(value, flag)
    if key in ("nic", "ib_hca"):
        if not _IFLIST_RE.match(value):
            raise RecipeError(f"{flag}: {value!r} is not an interface/device name list")
        return value
    if not value.strip() or "\n" in value:
        raise RecipeError(f"{flag}: empty or multi-line value")
    if key == "model_path":
        return normalize_model_path(value)
    return value
