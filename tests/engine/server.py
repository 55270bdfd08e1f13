"""Start and stop the real SGLang server of a tree on the CPU, on loopback.

``Server(tree, model, ...)`` runs ``python -m sglang.launch_server --device cpu`` with the
tree first on PYTHONPATH (so its ``sglang`` is the one that runs) and the CPU stand-ins of
``shims/`` loaded in every process. The server gets its own process group; ``stop()``
kills the whole group by id, so nothing is left running after a failure. Progress lines
go to stderr while it starts; its log is kept in a file and its tail is shown when it
does not come up.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

SHIMS = Path(__file__).resolve().parent / "shims"

# Flags every engine-test server uses: CPU device and attention backend, no CUDA graph,
# a small fixed KV pool (memory), no warm-up request (start time).
# On the CPU the "device memory" SGLang profiles is the machine's available memory, which
# the other server of a pair and the other test worker use too: whatever it loses between
# the profile before the weights and the one after counts as weights. The pool must keep
# (1 - fraction) of the first profile free, so a high fraction leaves room for that; the
# pool itself stays at --max-total-tokens (a fraction of 0.05 failed in CI: 4.1% lost).
BASE_ARGS = [
    "--device", "cpu",
    "--attention-backend", "torch_native",
    # What a CPU without AMX picks by itself; named so a CPU with AMX (amx_attn, which
    # has no windowed attention) runs the same.
    "--mm-attention-backend", "sdpa",
    "--disable-cuda-graph",
    "--mem-fraction-static", "0.9",
    "--max-total-tokens", "16384",
    "--context-length", "4096",
    "--trust-remote-code",
    "--skip-server-warmup",
    "--log-level", "info",
]  # fmt: skip


# Tokens a request may generate, through v0.5.23's own cap (SGLANG_MAX_NEW_TOKENS_LIMIT,
# applied in managers/scheduler.py init_req_max_new_tokens, after the processor, the
# transcription adapter and SamplingParams have seen the request). The tiny models never
# write EOS, and the adapters ask for 448 tokens per 30 s window: uncapped, each
# transcription decoded 450-1,170 tokens. No engine test asks for more than 8.
MAX_NEW_TOKENS = 16


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def progress(msg):
    print(f"[engine] {msg}", file=sys.stderr, flush=True)


class ServerDied(AssertionError):
    pass


class Server:
    def __init__(self, tree, model, *, name, log_dir, extra_args=(), env=None):
        self.tree = Path(tree)
        self.model = Path(model)
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_dir) / f"{name}.log"
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.proc = None
        self.ready_s = None
        self.peak_rss = 0
        self._t0 = None
        self._sampler = None

    # ------------------------------------------------------------------ lifecycle

    # Alone on two cores the TP 4 server is ready in 140-220 s; `make test` may run two
    # servers at once (one per pytest-xdist worker).
    def start(self, timeout=600):
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(self.tree), str(SHIMS)]),
            "SGLANG_USE_CPU_ENGINE": "1",
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "SGLANG_MAX_NEW_TOKENS_LIMIT": str(MAX_NEW_TOKENS),
            **self.env,
        }
        argv = [
            sys.executable, "-m", "sglang.launch_server",
            "--model-path", str(self.model),
            "--host", "127.0.0.1", "--port", str(self.port),
            *BASE_ARGS, *self.extra_args,
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")
        t0 = time.monotonic()
        progress(f"{self.name}: starting on {self.url} (log {self.log_path})")
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=self.log_path.parent,
        )
        log.close()
        self._t0 = t0
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._sampler.start()
        last = 0.0
        while True:
            elapsed = time.monotonic() - t0
            if self.proc.poll() is not None:
                raise ServerDied(
                    f"{self.name}: server exited with {self.proc.returncode} while "
                    f"starting\n{self.log_tail()}"
                )
            if elapsed > timeout:
                self.stop()
                raise ServerDied(
                    f"{self.name}: not ready after {timeout} s\n{self.log_tail()}"
                )
            if self.healthy(timeout=5):
                self.ready_s = elapsed
                progress(f"{self.name}: ready in {elapsed:.0f} s")
                return self
            if elapsed - last >= 15:
                progress(f"{self.name}: still starting ({elapsed:.0f} s)")
                last = elapsed
            time.sleep(1)

    def _sample_rss(self):
        while self.alive():
            self.peak_rss = max(self.peak_rss, self.rss_bytes())
            time.sleep(1)

    def stop(self):
        if self.proc is None:
            return
        stats = {
            "server": self.name,
            "ready_s": None if self.ready_s is None else round(self.ready_s, 1),
            "lifetime_s": round(time.monotonic() - self._t0, 1),
            "peak_pss_gib": round(self.peak_rss / 2**30, 2),
            "died": not self.alive(),
        }
        with open(self.log_path.parent / "servers.jsonl", "a") as f:
            f.write(json.dumps(stats) + "\n")
        progress(
            f"{self.name}: stopping after {stats['lifetime_s']:.0f} s, "
            f"peak memory (PSS) {stats['peak_pss_gib']} GiB"
        )
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        # Children (scheduler, detokenizer) share the group: kill what is left.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=60):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        keep = [l for l in text if "Health check failed" not in l]
        return "\n".join(keep[-lines:])

    def rss_bytes(self):
        """Memory of the server's process group: the sum of its processes' PSS
        (proportional set size: shared pages split between the processes sharing
        them, so torch's libraries are not counted once per process)."""
        if not self.alive():
            return 0
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.getpgid(int(pid)) != self.proc.pid:
                    continue
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            total += int(line.split()[1]) * 1024
                            break
            except (OSError, ProcessLookupError, ValueError):
                continue
        return total

    # ---------------------------------------------------------------------- HTTP

    def request(self, method, path, body=None, headers=None, timeout=120):
        """(status, body bytes). A dropped connection or a dead server raises
        ServerDied with the log tail, never hangs past ``timeout``."""
        req = urllib.request.Request(
            self.url + path, data=body, headers=headers or {}, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            raise ServerDied(
                f"{self.name}: no response to {method} {path}: {e}; "
                f"server {'alive' if self.alive() else 'dead'}\n{self.log_tail()}"
            ) from e

    def post_json(self, path, obj, timeout=120):
        status, body = self.request(
            "POST",
            path,
            json.dumps(obj).encode(),
            {"Content-Type": "application/json"},
            timeout,
        )
        try:
            return status, json.loads(body)
        except ValueError:
            return status, {"raw": body.decode("utf-8", "replace")}

    def healthy(self, timeout=30):
        try:
            req = urllib.request.Request(self.url + "/health")
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False


def chat(server, content, max_tokens=4, timeout=120):
    """One greedy chat completion with ``content`` as the user's message."""
    return server.post_json(
        "/v1/chat/completions",
        {
            "model": "tiny",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
            "temperature": 0,
        },
        timeout=timeout,
    )
