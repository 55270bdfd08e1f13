"""The Kubernetes runner: a LeaderWorkerSet manifest running every rank of a recipe."""

import copy
import shlex

from sglang_mimo.rank import argv_value, render_argv, render_env
from sglang_mimo.recipes import (
    HEAD_PORT,
    RecipeError,
    check_head_addr,
    check_host,
    is_local_path,
)

HF_CACHE_IN_CONTAINER = "/root/.cache/huggingface"
# Device-plugin resource for the RDMA devices (NVIDIA network operator's shared-device
# plugin default name); --rdma-resource names another.
RDMA_RESOURCE = "rdma/rdma_shared_device_a"


def lws_manifest(
    recipe,
    values,
    image,
    head_addr=None,
    rank_addrs=None,
    rdma_resource=RDMA_RESOURCE,
    hf_cache_host=HF_CACHE_IN_CONTAINER,
):
    """A LeaderWorkerSet (leaderworkerset.x-k8s.io/v1) running one group of all ranks.

    Ranks come from LWS: the group size and each pod's worker index. Rank 0's address
    is ``head_addr`` (HOST:PORT, as --head-addr) when given, else the leader pod's
    ($(LWS_LEADER_ADDRESS)) on HEAD_PORT. Each pod's own address (SGLANG_HOST_IP) is
    its entry of ``rank_addrs`` (one per worker index, as --rank-addr A0,A1,...) when
    given, else the pod IP. RDMA recipes get the host's /dev/infiniband, IPC_LOCK
    (which lifts the locked-memory limit NCCL needs for RDMA registration) and one RDMA
    device of ``rdma_resource``. Hub ids get a Hugging Face cache volume.
    torch.distributed/NCCL as SGLang does it, no Ray.
    """
    n = recipe["hardware"]["nodes"]
    rdma = recipe["image"].get("rdma", False)
    if rank_addrs is not None and len(rank_addrs) != n:
        raise RecipeError(
            f"--rank-addr lists {len(rank_addrs)} addresses; recipe {recipe['name']} "
            f"has {n} ranks"
        )
    vals = dict(values, rank_addr="$(POD_IP)")
    env = render_env(recipe, vals)
    argv = render_argv(recipe, vals, 0, None, rank_flags=False)
    if n > 1:
        head = (
            check_head_addr(head_addr)
            if head_addr
            else (f"$(LWS_LEADER_ADDRESS):{HEAD_PORT}")
        )
        argv += ["--nnodes", "$(LWS_GROUP_SIZE)", "--node-rank", "$(LWS_WORKER_INDEX)",
                 "--dist-init-addr", head]  # fmt: skip
    command = ["python3", "-m", "sglang.launch_server"]
    if rank_addrs is not None:
        for addr in rank_addrs:
            check_host(addr, "--rank-addr")
        # This pod's address on the fabric, picked by its worker index.
        env.pop("SGLANG_HOST_IP", None)
        pick = (
            f"addrs=({' '.join(shlex.quote(a) for a in rank_addrs)}); "
            'export SGLANG_HOST_IP="${addrs[$LWS_WORKER_INDEX]}"; '
            'exec python3 -m sglang.launch_server "$@"'
        )
        command = ["bash", "-c", pick, "sglang"]
    env_list = [
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
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}]
    volumes = [
        {
            "name": "dshm",
            "emptyDir": {
                "medium": "Memory",
                "sizeLimit": recipe["image"].get("shm_size", "32g").upper() + "i",
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
    limits = {"nvidia.com/gpu": recipe["hardware"]["gpus_per_node"]}
    if rdma:
        limits[rdma_resource] = 1

    def pod(role):
        container = {
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
        spec = {"containers": [container], "volumes": copy.deepcopy(volumes)}
        if rdma:
            # RoCE/IB interfaces are named as on the host (NCCL_SOCKET_IFNAME, NCCL_IB_HCA).
            spec["hostNetwork"] = True
            spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        return {"metadata": {"labels": {"role": role}}, "spec": spec}

    lwt = {"size": n, "restartPolicy": "RecreateGroupOnPodRestart"}
    if n > 1:
        lwt["leaderTemplate"] = pod("leader")
        lwt["workerTemplate"] = pod("worker")
    else:
        lwt["workerTemplate"] = pod("leader")
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": recipe["name"].replace(".", "-")},
        "spec": {"replicas": 1, "leaderWorkerTemplate": lwt},
    }
