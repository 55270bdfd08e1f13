"""The Kubernetes runner: a LeaderWorkerSet manifest running every rank of a recipe."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from sglang_mimo.rank import argv_value, render_argv, render_env
from sglang_mimo.recipes import HEAD_PORT, Recipe, RecipeError, is_local_path

HF_CACHE_IN_CONTAINER = "/root/.cache/huggingface"
# Device-plugin resource for the RDMA devices (NVIDIA network operator's shared-device
# plugin default name); --rdma-resource names another.
RDMA_RESOURCE = "rdma/rdma_shared_device_a"

# A host-network pod's own fabric address is not known before the scheduler places it:
# the container starts with this program (python3 -c PROGRAM SERVER-ARGS...), which
# reads the IPv4 address of the recipe's interface ($SGLANG_MIMO_NIC, its first entry)
# on the node the pod landed on, puts it wherever the recipe says {rank_addr} (the
# environment, e.g. SGLANG_HOST_IP, and the arguments) and execs the server.
RANK_ADDR_MARK = "{rank_addr}"
RANK_ADDR_FROM_NIC = """\
import fcntl, os, socket, struct, sys
nic = os.environ["SGLANG_MIMO_NIC"].lstrip("=").split(",")[0]
try:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # SIOCGIFADDR: the interface's IPv4 address.
        got = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", nic.encode()[:15]))
except OSError as e:
    sys.exit(f"sglang-mimo: no IPv4 address on interface {nic} of this node: {e}")
addr = socket.inet_ntoa(got[20:24])
print(f"sglang-mimo: rank address {addr} (interface {nic})", file=sys.stderr, flush=True)
for k, v in list(os.environ.items()):
    if "{rank_addr}" in v:
        os.environ[k] = v.replace("{rank_addr}", addr)
args = [a.replace("{rank_addr}", addr) for a in sys.argv[1:]]
os.execvp(sys.executable, [sys.executable, "-m", "sglang.launch_server", *args])
"""


def lws_manifest(
    recipe: Recipe,
    values: Mapping[str, str],
    image: str,
    head_port: int = HEAD_PORT,
    rdma_resource: str = RDMA_RESOURCE,
    hf_cache_host: str = HF_CACHE_IN_CONTAINER,
) -> dict[str, Any]:
    """A LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) running one group of all ranks.

    Everything that differs between the ranks comes from LWS at run time, so that any
    pod may land on any node: the group size, each pod's worker index (its node rank)
    and the leader's address ($(LWS_LEADER_ADDRESS), which LWS sets in every
    container) with ``head_port`` for --dist-init-addr. Each pod's own address
    (SGLANG_HOST_IP) is its pod IP; under the host network (RDMA recipes, whose
    interfaces are named as on the host) it is the IPv4 address of the recipe's
    interface on the pod's node, read when the container starts (RANK_ADDR_FROM_NIC).
    No per-node address is written into the manifest. RDMA recipes get the host's
    /dev/infiniband, IPC_LOCK (which lifts the locked-memory limit NCCL needs for RDMA
    registration) and one RDMA device of ``rdma_resource``. Hub ids get a Hugging Face
    cache volume. torch.distributed/NCCL as SGLang does it, no Ray.
    """
    n = recipe.hardware.nodes
    rdma = recipe.image.rdma
    nic = values.get("nic") if rdma else None
    from_nic = nic is not None
    if nic is not None and nic.startswith("^"):
        raise RecipeError(
            f"--nic {nic}: the Kubernetes render reads each pod's address from the "
            "interface named first in --nic; give interface names, not an exclusion"
        )
    vals = dict(values, rank_addr=RANK_ADDR_MARK if from_nic else "$(POD_IP)")
    env = render_env(recipe, vals)
    argv = render_argv(recipe, vals, 0, None, rank_flags=False)
    if n > 1:
        argv += ["--nnodes", "$(LWS_GROUP_SIZE)", "--node-rank", "$(LWS_WORKER_INDEX)",
                 "--dist-init-addr", f"$(LWS_LEADER_ADDRESS):{int(head_port)}"]  # fmt: skip
    command = ["python3", "-m", "sglang.launch_server"]
    if nic is not None:
        env["SGLANG_MIMO_NIC"] = nic
        command = ["python3", "-c", RANK_ADDR_FROM_NIC]
    env_list: list[dict[str, Any]] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {
            "name": "LWS_WORKER_INDEX",
            "valueFrom": {
                "fieldRef": {
                    "fieldPath": "metadata.labels['leaderworkerset.sigs.k8s.io/worker-index']"
                }
            },
        },
    ] + [{"name": k, "value": v} for k, v in env.items()]
    port = int(argv_value(argv, "--port") or 30000)
    model = values.get("model_path", "")
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    volumes: list[dict[str, Any]] = [
        {
            "name": "dshm",
            "emptyDir": {
                "medium": "Memory",
                "sizeLimit": recipe.image.shm_size.upper() + "i",
            },
        }
    ]
    if model and is_local_path(model):
        mounts.append({"name": "model", "mountPath": model, "readOnly": True})
        volumes.append(
            {"name": "model", "hostPath": {"path": model, "type": "Directory"}}
        )
    else:
        mounts.append({"name": "hf-cache", "mountPath": HF_CACHE_IN_CONTAINER})
        volumes.append(
            {
                "name": "hf-cache",
                "hostPath": {"path": hf_cache_host, "type": "DirectoryOrCreate"},
            }
        )
    if rdma:
        mounts.append({"name": "infiniband", "mountPath": "/dev/infiniband"})
        volumes.append({"name": "infiniband", "hostPath": {"path": "/dev/infiniband"}})
    limits = {"nvidia.com/gpu": recipe.hardware.gpus_per_node}
    if rdma:
        limits[rdma_resource] = 1

    def pod(role: str) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": f"sglang-{role}",
            "image": image,
            "command": command,
            "args": argv,
            "env": env_list,
            "resources": {"limits": limits},
            "volumeMounts": mounts,
        }
        if rdma:
            container["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
        if role == "leader":
            container["ports"] = [{"containerPort": port, "name": "http"}]
            container["readinessProbe"] = {
                "httpGet": {"path": "/health", "port": port},
                "initialDelaySeconds": 120,
                "periodSeconds": 10,
            }
        # Own copies per template: no YAML anchors/aliases in the output.
        container = copy.deepcopy(container)
        spec: dict[str, Any] = {
            "containers": [container],
            "volumes": copy.deepcopy(volumes),
        }
        if rdma:
            # RoCE/IB interfaces are named as on the host (NCCL_SOCKET_IFNAME, NCCL_IB_HCA).
            spec["hostNetwork"] = True
            spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        return {"metadata": {"labels": {"role": role}}, "spec": spec}

    lwt: dict[str, Any] = {"size": n, "restartPolicy": "RecreateGroupOnPodRestart"}
    if n > 1:
        lwt["leaderTemplate"] = pod("leader")
        lwt["workerTemplate"] = pod("worker")
    else:
        lwt["workerTemplate"] = pod("leader")
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": recipe.name.replace(".", "-")},
        "spec": {"replicas": 1, "leaderWorkerTemplate": lwt},
    }
