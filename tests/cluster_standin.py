"""Stand-in for ``python3 -m sglang.launch_server`` on one rank (no GPU or model here).

It takes the launch line a recipe renders and does, over real sockets, the parts of a
multi-node start that ``sglang-mimo cluster`` has to see: it binds the rank's
SGLANG_HOST_IP (as SGLang does; a rank given an address its node does not have fails
here as it would there, with the same OSError), rank 0 listens on --dist-init-addr
and waits for every other rank to join, then serves /health on --host:--port and prints
SGLang's ready line; the other ranks join the head and stay. It runs until a signal.

The tests make it the exec runner's interpreter through a wrapper that sends
``-m sglang.launch_server ARGS`` here and everything else to the real Python.
"""

import argparse
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

READY = "The server is fired up and ready to roll!"


def log(msg):
    print(f"[standin rank {ARGS.node_rank}] {msg}", flush=True)


def head(host_ip, port, nnodes):
    srv = socket.create_server((host_ip, port))
    joined = []
    srv.settimeout(120)
    while len(joined) < nnodes - 1:
        conn, peer = srv.accept()
        rank = conn.recv(16).decode().strip()
        joined.append((rank, conn))
        log(f"rank {rank} joined from {peer[0]}")
    return srv, joined


def join(host_ip, addr, rank):
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = socket.create_connection((host, int(port)), timeout=5,
                                            source_address=(host_ip, 0))  # fmt: skip
            conn.sendall(f"{rank}\n".encode())
            return conn
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--nnodes", type=int, default=1)
    p.add_argument("--node-rank", type=int, default=0)
    p.add_argument("--dist-init-addr")
    p.add_argument("--model-path")
    ARGS, _ = p.parse_known_args()
    host_ip = os.environ.get("SGLANG_HOST_IP", "127.0.0.1")
    log(f"launch_server {' '.join(sys.argv[1:])}")
    # SGLang binds the rank's address: one its node lacks fails here.
    probe = socket.socket()
    probe.bind((host_ip, 0))
    probe.close()
    keep = []
    if ARGS.nnodes > 1:
        if ARGS.node_rank == 0:
            port = int(ARGS.dist_init_addr.rsplit(":", 1)[1])
            keep.append(head(host_ip, port, ARGS.nnodes))
        else:
            keep.append(join(host_ip, ARGS.dist_init_addr, ARGS.node_rank))
            log(f"joined {ARGS.dist_init_addr}")
    if ARGS.node_rank == 0:
        server = ThreadingHTTPServer((ARGS.host, ARGS.port), Health)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        log(READY)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
