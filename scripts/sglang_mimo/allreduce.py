"""One rank of the preflight all-reduce: torch.distributed across the ranks of a recipe.

    allreduce.py --rank R --world-size N --master HOST:PORT [--backend nccl|gloo]
                 [--device-index I] [--mib M] [--iters K] [--timeout S]

Rank 0 holds the rendezvous store at HOST:PORT (the recipe's --head-addr, where SGLang's
own --dist-init-addr will be); every rank joins, all-reduces a tensor of M MiB K times,
checks the sum and prints one JSON line: ok, the time, the NCCL version, the algorithm
and bus bandwidth (nccl-tests' definitions), or the error as one line of cause and one
of fix. NCCL runs on GPU I (default: LOCAL_RANK or 0); gloo on the CPU. The sockets follow
the environment the recipe renders (NCCL_SOCKET_IFNAME, GLOO_SOCKET_IFNAME, NCCL_IB_HCA).

Whatever happens the process ends within --timeout seconds (a watchdog thread exits it),
so a rank that waits for a head that never comes leaves nothing behind.
``sglang-mimo cluster doctor`` sends this file to each rank (``python3 -c SOURCE``, in
the image or on the host; with --exit-on-eof the rank also ends when the head closes
its ssh channel): it needs only torch and the standard library.

Exit codes: 0 the sum was right on this rank; 1 an error; 3 the timeout; 4 cancelled
(stdin ended, with --exit-on-eof).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

T0 = time.monotonic()
# What the rank is waiting for, for the watchdog's message.
PHASE = ["starting"]


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def explain(exc_text: str, args: argparse.Namespace) -> tuple[str, str]:
    """(cause, fix): one line each, for an error text of torch.distributed / Gloo / NCCL."""
    t = exc_text
    low = t.lower()
    gloo_if = os.environ.get("GLOO_SOCKET_IFNAME")
    nccl_if = os.environ.get("NCCL_SOCKET_IFNAME")
    if ("unable to find address for" in low or "no such device" in low) and (
        gloo_if or nccl_if
    ):
        name = gloo_if or nccl_if
        return (
            f"interface {name} (GLOO_SOCKET_IFNAME/NCCL_SOCKET_IFNAME) does not exist "
            f"or has no address on rank {args.rank}",
            "give --nic the fabric interface of every node (`ip -br addr`)",
        )
    if "cannot assign requested address" in low or "address not available" in low:
        return (
            f"the head {args.master} is not an address of rank 0's node",
            "--head-addr must be rank 0's fabric address (its --rank-addr) and a free port",
        )
    if "address already in use" in low:
        return (
            f"port {args.master.rsplit(':', 1)[1]} is taken on rank 0's node",
            "stop what listens there (a running server? `sglang-mimo cluster stop`) "
            "or give --head-addr another port",
        )
    unreachable = ("no route to host", "network is unreachable", "connection refused",
                   "failed to connect", "timed out", "timeout")  # fmt: skip
    if any(u in low for u in unreachable):
        return (
            f"rank {args.rank}: no result within {args.timeout:g} s: {waiting(args)}",
            "check --head-addr (rank 0's address), that rank 0 runs, the route and "
            "firewall between the nodes (`ping`, `nc -z HOST PORT`)",
        )
    if "nccl" in low:
        first = t.strip().splitlines()[0] if t.strip() else t
        return (
            f"NCCL failed on rank {args.rank}: {first[:300]}",
            "rerun with --env NCCL_DEBUG=INFO; check NCCL_IB_HCA, NCCL_IB_GID_INDEX "
            "and the MTU (sglang-mimo cluster doctor)",
        )
    first = t.strip().splitlines()[-1] if t.strip() else t
    return (f"rank {args.rank}: {first[:300]}", "rerun with --env NCCL_DEBUG=INFO")


def waiting(args: argparse.Namespace) -> str:
    """What the rank was waiting for when time ran out (PHASE)."""
    return {
        "starting": "it was still importing torch",
        "store": f"it could not reach the head {args.master} (rank 0's store)",
        "join": f"the other ranks did not all join at {args.master}",
        "allreduce": "the all-reduce did not finish (the ranks joined but the "
        "transport hangs)",
    }.get(PHASE[0], PHASE[0])


def exit_on_eof(args: argparse.Namespace) -> None:
    """The head closed this rank's stdin (it cancels the check, or it is gone): end."""
    try:
        sys.stdin.buffer.read()
    except (OSError, ValueError):
        pass
    emit(rank=args.rank, ok=False, cancelled=True, seconds=round(time.monotonic() - T0, 2),
         cause=f"rank {args.rank}: cancelled by the head", fix="")  # fmt: skip
    os._exit(4)


def watchdog(args: argparse.Namespace) -> None:
    def fire() -> None:
        cause = f"rank {args.rank}: no result within {args.timeout:g} s: " + waiting(
            args
        )
        emit(
            rank=args.rank,
            ok=False,
            timeout=True,
            seconds=round(time.monotonic() - T0, 2),
            cause=cause,
            fix="check that every rank runs the check, --head-addr, the interface "
            "(--nic) and the firewall; NCCL_DEBUG=INFO shows where NCCL stops",
        )
        os._exit(3)

    t = threading.Timer(max(args.timeout - (time.monotonic() - T0), 0.1), fire)
    t.daemon = True
    t.start()


def run(args: argparse.Namespace) -> dict[str, Any]:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    host, port = args.master.rsplit(":", 1)
    host = host.strip("[]")
    left = max(args.timeout - (time.monotonic() - T0) - 1.0, 1.0)
    device = "cpu"
    nccl_version = None
    if args.backend == "nccl":
        index = args.device_index
        if index is None:
            index = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
        device = f"cuda:{index}"
        v = torch.cuda.nccl.version()
        nccl_version = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    if args.rank == 0:
        # Rank 0 holds the store (listening on every address): a head address that is
        # not its own would only show as the other ranks waiting until the timeout.
        import socket

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    PHASE[0] = "store"
    store = dist.TCPStore(
        host,
        int(port),
        args.world_size,
        is_master=args.rank == 0,
        timeout=timedelta(seconds=left),
        wait_for_workers=False,
    )
    PHASE[0] = "join"
    dist.init_process_group(
        args.backend,
        store=store,
        rank=args.rank,
        world_size=args.world_size,
        timeout=timedelta(seconds=left),
    )
    try:
        n = max(int(args.mib * 2**20) // 4, 1)
        x = torch.full((n,), float(args.rank + 1), dtype=torch.float32, device=device)
        PHASE[0] = "allreduce"
        dist.all_reduce(x)  # warm-up: connections are made here
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.iters):
            x.fill_(float(args.rank + 1))
            dist.all_reduce(x)
        if device != "cpu":
            torch.cuda.synchronize()
        per_iter = (time.perf_counter() - start) / args.iters
        want = args.world_size * (args.world_size + 1) / 2
        got = float(x[0].item()), float(x[-1].item())
        ok = got == (want, want)
        size = n * 4
        algbw = size / per_iter / 1e9
        busbw = algbw * 2 * (args.world_size - 1) / args.world_size
        fields = dict(
            rank=args.rank,
            ok=ok,
            backend=args.backend,
            world_size=args.world_size,
            device=device,
            bytes=size,
            iters=args.iters,
            seconds=round(time.monotonic() - T0, 2),
            us_per_iter=round(per_iter * 1e6, 1),
            algbw_gbps=round(algbw, 3),
            busbw_gbps=round(busbw, 3),
            nccl_version=nccl_version,
            torch=torch.__version__,
        )
        if not ok:
            fields.update(
                cause=f"rank {args.rank}: the all-reduce sum is {got}, not {want}",
                fix="a rank ran a different world size or corrupted data: rerun with "
                "NCCL_DEBUG=INFO",
            )
        dist.barrier()
        return fields
    finally:
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="allreduce", description=__doc__.split("\n\n")[0])
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world-size", type=int, required=True)
    p.add_argument("--master", required=True, help="HOST:PORT of rank 0's store")
    p.add_argument("--backend", choices=["nccl", "gloo"], default="nccl")
    p.add_argument("--device-index", type=int, help="GPU of this rank (nccl)")
    p.add_argument("--mib", type=float, default=64.0, help="tensor size in MiB")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds, all in")
    p.add_argument("--exit-on-eof", action="store_true",
                   help="end when stdin ends (the head's ssh channel closed)")  # fmt: skip
    args = p.parse_args(argv)
    watchdog(args)
    if args.exit_on_eof:
        threading.Thread(target=exit_on_eof, args=(args,), daemon=True).start()
    try:
        fields = run(args)
    except Exception as e:  # every failure becomes one line of cause and fix
        cause, fix = explain(f"{type(e).__name__}: {e}", args)
        emit(
            rank=args.rank,
            ok=False,
            # Waiting for another rank that never came is a symptom, not the cause.
            timeout=cause.startswith(f"rank {args.rank}: no result within"),
            seconds=round(time.monotonic() - T0, 2),
            cause=cause,
            fix=fix,
            error=f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}",
        )
        sys.stdout.flush()
        os._exit(1)
    emit(**fields)
    sys.stdout.flush()
    os._exit(0 if fields["ok"] else 1)


if __name__ == "__main__":
    main()
