"""Nodes for the cluster tests: Linux network namespaces, each with its own sshd.

``Fabric(n)`` makes one namespace holding a bridge (the switch) and ``n`` node
namespaces, each joined to it by a veth pair whose node end is named like the GB10
recipe's RoCE interface and carries 192.0.2.(10+i)/24 (the docs' example
fabric, here only inside these namespaces). Each node runs a real OpenSSH sshd on its
fabric address, key login only, with keys made in a temporary directory; an ssh_config
names the nodes spark-1..spark-n. Each sshd runs in a mount namespace of its own in
which DIR/models is the node's own directory (DIR/node-i/models), so files a test copies
"to a node" land there and nowhere else; with ``small_disk`` a node's models directory
is a tmpfs of that many bytes. Nothing listens outside these namespaces.

Needs root, iproute2 (``ip netns``), OpenSSH's sshd and ssh; ``unavailable()`` says
which one is missing.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

NIC = "enP2p1s0f0np0"  # the GB10 recipe's example interface name
HCA = "roceP2p1s0f0"
SUBNET = "192.0.2"
SSHD = "/usr/sbin/sshd"
_count = [0]


def unavailable():
    """Why namespaces with sshd cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns, sshd)"
    for tool in ("ip", "ssh", "ssh-keygen", "unshare", "mount"):
        if not shutil.which(tool):
            return f"needs {tool} (apt-get install iproute2 openssh-client util-linux)"
    if not os.access(SSHD, os.X_OK):
        return f"needs {SSHD} (apt-get install openssh-server)"
    name = f"smc-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    return None


def remove_stale():
    """Namespaces a killed test run left (their PID is gone): delete them, and the sshd
    processes still serving them."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"smc(\d+)x\d+-(?:n\d+|sw)", name)
        if not m or Path(f"/proc/{m.group(1)}").exists():
            continue
        pids = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True
        )
        for pid in pids.stdout.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def sh(*argv, check=True, **kw):
    kw.setdefault("capture_output", True)
    proc = subprocess.run([str(a) for a in argv], text=True, **kw)
    if check and proc.returncode:
        raise AssertionError(
            f"{' '.join(map(str, argv))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


class Fabric:
    def __init__(self, n, base, mtu=9000, small_disk=None, node_env=None):
        _count[0] += 1
        self.n = n
        self.dir = Path(base)
        self.tag = f"smc{os.getpid()}x{_count[0]}"
        self.switch = f"{self.tag}-sw"
        self.ns = [f"{self.tag}-n{i}" for i in range(n)]
        self.hosts = [f"spark-{i + 1}" for i in range(n)]
        self.addrs = [f"{SUBNET}.{10 + i}" for i in range(n)]
        self.mtu = mtu
        self.small_disk = small_disk or {}
        self.node_env = node_env or {}  # {node: {NAME: value}} of its ssh sessions
        self.models = self.dir / "models"  # the path every node sees as its own
        self.sshd = []
        self.ssh_config = self.dir / "ssh_config"

    def __enter__(self):
        try:
            self._up()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _up(self):
        remove_stale()
        d = self.dir
        self.models.mkdir(parents=True, exist_ok=True)
        sh("ip", "netns", "add", self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "mtu", self.mtu, "up")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "id_ed25519")
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
        hosts = []
        common = ["Host *", "  User root", f"  IdentityFile {d / 'id_ed25519'}",
                  "  IdentitiesOnly yes", "  StrictHostKeyChecking no",
                  "  UserKnownHostsFile /dev/null", "  LogLevel ERROR"]  # fmt: skip
        for i, ns in enumerate(self.ns):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", self.switch, "link", "add", f"p{i}", "type", "veth",
               "peer", "name", NIC, "netns", ns)  # fmt: skip
            sh("ip", "-n", self.switch, "link", "set", f"p{i}", "mtu", self.mtu,
               "master", "br0", "up")  # fmt: skip
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", NIC, "mtu", self.mtu, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.addrs[i]}/24", "dev", NIC)
            node = d / f"node-{i}"
            (node / "models").mkdir(parents=True)
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", node / "host_key")
            (node / "sshd_config").write_text(
                f"ListenAddress {self.addrs[i]}\nPort 22\nHostKey {node / 'host_key'}\n"
                f"PidFile {node / 'sshd.pid'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                # One SetEnv line: sshd keeps the first SetEnv directive only.
                + (
                    "SetEnv " + " ".join(
                        f"{k}={v}" for k, v in self.node_env[i].items()
                    ) + "\n"
                    if self.node_env.get(i) else ""
                )  # fmt: skip
            )
            if i in self.small_disk:
                mount = (
                    f"mount -t tmpfs -o size={self.small_disk[i]} tmpfs {self.models}"
                )
            else:
                mount = f"mount --bind {node / 'models'} {self.models}"
            # ip netns exec gives sshd a mount namespace of its own: the mount stays in it.
            self.sshd.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, "sh", "-c",
                     f"{mount} && exec {SSHD} -D -e -f {node / 'sshd_config'}"],
                    stdout=open(node / "sshd.log", "w"), stderr=subprocess.STDOUT,
                )  # fmt: skip
            )
            hosts += [f"Host {self.hosts[i]}", f"  HostName {self.addrs[i]}"]
        # ssh takes the first value it meets: the per-host entries go before `Host *`.
        self.ssh_config.write_text("\n".join(hosts + common) + "\n")
        for i in range(self.n):
            self.wait_ssh(i)

    def wait_ssh(self, i, seconds=30):
        deadline = time.monotonic() + seconds
        while True:
            proc = self.run(0, *self.ssh(i), "true", check=False)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                log = (self.dir / f"node-{i}" / "sshd.log").read_text()
                raise AssertionError(
                    f"sshd of {self.hosts[i]} does not answer: {proc.stderr}\n{log}"
                )
            time.sleep(0.2)

    def ssh(self, i):
        return ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", self.hosts[i]]

    def run(self, i, *argv, check=True, **kw):
        """A command in node i's network namespace (the head is node 0)."""
        return sh("ip", "netns", "exec", self.ns[i], *argv, check=check, **kw)

    def node_models(self, i):
        """Node i's own models directory, as this (root) namespace sees it."""
        return self.dir / f"node-{i}" / "models"

    def __exit__(self, *exc):
        for proc in self.sshd:
            proc.terminate()
        for proc in self.sshd:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for ns in self.ns + [self.switch]:
            sh("ip", "netns", "delete", ns, check=False)
