"""The image's HEALTHCHECK (docker/entrypoint.sh healthcheck): rank 0 probes /health,
ranks >= 1 (which serve no HTTP) stay healthy. Run as the image runs it: bash + python3,
against a real HTTP server on loopback."""

import http.server
import shutil
import subprocess
import sys
import threading

import pytest
from recipe_helpers import REPO

ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


@pytest.fixture
def health_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def _closed_port_url():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/health"


def healthcheck(env):
    return subprocess.run(
        ["bash", str(ENTRYPOINT), "healthcheck"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **env},
        timeout=30,
    )


def test_rank_0_probes_health(health_server):
    assert (
        healthcheck({"SGLANG_MIMO_HEALTH_URL": health_server + "/health"}).returncode
        == 0
    )
    down = healthcheck({"SGLANG_MIMO_HEALTH_URL": _closed_port_url(), "NODE_RANK": "0"})
    assert down.returncode == 1 and "unhealthy" in down.stderr


def test_rank_1_from_node_rank_is_healthy_without_http():
    r = healthcheck({"SGLANG_MIMO_HEALTH_URL": _closed_port_url(), "NODE_RANK": "1"})
    assert r.returncode == 0 and "serves no HTTP" in r.stdout


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_rank_from_the_main_process_command_line():
    """docker run IMAGE python3 -m sglang.launch_server ... --node-rank 2: the rank is
    read from PID 1's command line (a new PID namespace stands in for the container)."""
    code = (
        "import subprocess, sys; sys.exit(subprocess.call(['bash', sys.argv[1], "
        f"'healthcheck'], env={{'PATH': '/usr/bin:/bin', 'SGLANG_MIMO_HEALTH_URL': "
        f"'{_closed_port_url()}'}}))"
    )
    probe = subprocess.run(
        ["unshare", "-fp", "--mount-proc", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("cannot create a PID namespace here (needs root)")
    for rank, want in (("2", 0), ("0", 1)):
        r = subprocess.run(
            ["unshare", "-fp", "--mount-proc", sys.executable, "-c", code,
             str(ENTRYPOINT), "--node-rank", rank],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == want, (rank, r.stdout, r.stderr)
