"""`launch --render k8s`: the LeaderWorkerSet is valid, and nothing per node is in it.

The pod templates are checked against Kubernetes' own schemas (kubernetes-validate,
offline, strict: unknown fields fail), the LeaderWorkerSet around them against the
LeaderWorkerSet CRD's own openAPIV3Schema (tests/data/lws/, from kubernetes-sigs/lws),
strict as well. A pod may land on any node: the head is the LWS leader
($(LWS_LEADER_ADDRESS)) and a host-network pod reads its fabric address on its node when
it starts; that start-up program runs here for real, in a private network namespace
with an interface named as on a GB10 node.
"""

import json
import os
import shutil
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from recipe_helpers import R, clean_env, launch

GB10 = "mimo-v2.5-gb10x4"
K8S_VERSION = "1.37.0"

# Site values each recipe needs for a render (RFC 5737 / documentation names).
SITE = {
    "nic": ["--nic", "enP2p1s0f0np0"],
    "ib_hca": ["--ib-hca", "roceP2p1s0f0"],
    "model_path": ["--model-path", "/models/MiMo-V2.5"],
}

# The LeaderWorkerSet CRD's own openAPIV3Schema (tests/data/lws/, from kubernetes-sigs/lws;
# descriptions and the two pod templates trimmed, see its NOTICE).
LWS_CRD = yaml.safe_load(
    (
        Path(__file__).parent / "data" / "lws" / "leaderworkersets.openapi.yaml"
    ).read_text()
)
DNS1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def strict(schema):
    """The CRD schema as the API server's strict field validation applies it
    (``kubectl apply --validate=strict``): an unknown field is an error, not pruned."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


LWS_SCHEMA = strict(LWS_CRD["openAPIV3Schema"])


def render(recipe, *args, env=None):
    r = launch(recipe, "--render", "k8s", *args, env=env)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout), r


def site_args(recipe):
    data = R.load_recipe(recipe)
    return [
        a for key in sorted(R.used_placeholders(data)) if key in SITE for a in SITE[key]
    ]


def templates(manifest):
    lwt = manifest["spec"]["leaderWorkerTemplate"]
    return {t: lwt[t] for t in ("leaderTemplate", "workerTemplate") if t in lwt}


def check_schemas(manifest):
    assert manifest["apiVersion"] == f"{LWS_CRD['group']}/{LWS_CRD['version']}"
    assert manifest["kind"] == LWS_CRD["kind"]
    assert re.match(DNS1123, manifest["metadata"]["name"]), manifest["metadata"]
    jsonschema.validate(manifest, LWS_SCHEMA)
    for tmpl in templates(manifest).values():
        pod_template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": manifest["metadata"]["name"]},
            "template": tmpl,
        }
        kubernetes_validate.validate(pod_template, K8S_VERSION, strict=True)


@pytest.mark.parametrize("recipe", list(R.known_recipes()))
def test_every_recipe_renders_a_valid_leaderworkerset(recipe):
    manifest, _ = render(recipe, *site_args(recipe))
    check_schemas(manifest)
    nodes = R.load_recipe(recipe).hardware.nodes
    assert manifest["spec"]["leaderWorkerTemplate"]["size"] == nodes
    assert set(templates(manifest)) == (
        {"leaderTemplate", "workerTemplate"} if nodes > 1 else {"workerTemplate"}
    )


def test_the_schema_checks_can_fail():
    manifest, _ = render(GB10, *site_args(GB10))
    bad = json.loads(json.dumps(manifest))
    bad["spec"]["leaderWorkerTemplate"]["restartPolicy"] = "Always"
    with pytest.raises(jsonschema.ValidationError):
        check_schemas(bad)
    # A misspelt LWS field, a size that is not a number: the CRD's schema refuses them.
    for key, value in (("sise", 4), ("size", "4")):
        bad = json.loads(json.dumps(manifest))
        bad["spec"]["leaderWorkerTemplate"][key] = value
        with pytest.raises(jsonschema.ValidationError):
            check_schemas(bad)
    bad = json.loads(json.dumps(manifest))
    bad["spec"]["startupPolicy"] = "LeaderFirst"
    with pytest.raises(jsonschema.ValidationError):
        check_schemas(bad)
    bad = json.loads(json.dumps(manifest))
    (c,) = bad["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"]
    c["volumeMounts"][0]["readOnly"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        check_schemas(bad)
    bad = json.loads(json.dumps(manifest))
    bad["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["hostNetwrok"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        check_schemas(bad)


def _containers(manifest):
    return [t["spec"]["containers"][0] for t in templates(manifest).values()]


def test_the_head_is_the_leader_pod_even_with_a_head_address_set():
    """SGLANG_MIMO_HEAD_ADDR (set for the docker lines, as the docs do) must not
    become the pods' --dist-init-addr: only its port is used."""
    env = clean_env(SGLANG_MIMO_HEAD_ADDR="192.0.2.10:31234")
    manifest, r = render(GB10, *site_args(GB10), env=env)
    assert "192.0.2.10" not in r.stdout
    assert "LWS_LEADER_ADDRESS" in r.stderr and "31234" in r.stderr
    for c in _containers(manifest):
        args = c["args"]
        assert args[args.index("--dist-init-addr") + 1] == "$(LWS_LEADER_ADDRESS):31234"
        assert args[args.index("--nnodes") + 1] == "$(LWS_GROUP_SIZE)"
        assert args[args.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"
    manifest, r = render(GB10, *site_args(GB10), "--head-addr", "192.0.2.99:20000")
    assert "192.0.2.99" not in r.stdout
    for c in _containers(manifest):
        assert f"$(LWS_LEADER_ADDRESS):{R.HEAD_PORT}" in c["args"]


def test_no_per_node_address_in_the_manifest():
    r = launch(GB10, "--render", "k8s", *site_args(GB10),
               "--rank-addr", "192.0.2.10,192.0.2.11,192.0.2.12,192.0.2.13")  # fmt: skip
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("launch: error: --render k8s takes no --rank-addr")
    # The variable (per node, for docker and exec) is not used either.
    env = clean_env(SGLANG_MIMO_RANK_ADDR="192.0.2.11")
    manifest, r = render(GB10, *site_args(GB10), env=env)
    assert "192.0.2." not in r.stdout
    for c in _containers(manifest):
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["SGLANG_HOST_IP"] == "{rank_addr}"  # filled in on the pod's node
        assert env["SGLANG_MIMO_NIC"] == "enP2p1s0f0np0"
        assert c["command"][:2] == ["python3", "-c"]
    for t in templates(manifest).values():
        assert t["spec"]["hostNetwork"] is True
        assert "nodeName" not in t["spec"] and "nodeSelector" not in t["spec"]


def test_a_pod_network_recipe_uses_the_pod_ip(tmp_path):
    """Without RDMA there is no host network: a pod's address is its pod IP."""
    manifest, _ = render("mimo-v2.5-h200x8")
    (c,) = _containers(manifest)
    assert c["command"] == ["python3", "-m", "sglang.launch_server"]
    assert "hostNetwork" not in templates(manifest)["workerTemplate"]["spec"]
    data = yaml.safe_load(R.known_recipes()[GB10].read_text())
    data["image"]["rdma"] = False
    variant = tmp_path / f"{GB10}.yaml"
    variant.write_text(yaml.safe_dump(data, sort_keys=False))
    manifest, r = render(variant, *site_args(GB10))
    check_schemas(manifest)
    for c in _containers(manifest):
        env = {e["name"]: e for e in c["env"]}
        assert env["SGLANG_HOST_IP"]["value"] == "$(POD_IP)"
        assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
        assert c["command"] == ["python3", "-m", "sglang.launch_server"]


def _netns_ok():
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    r = subprocess.run(
        [
            "unshare",
            "-n",
            "ip",
            "link",
            "add",
            "v0",
            "type",
            "veth",
            "peer",
            "name",
            "v1",
        ],
        capture_output=True,
    )
    return r.returncode == 0


@pytest.mark.skipif(not _netns_ok(), reason="needs root: unshare -n and veth links")
def test_the_pod_reads_its_address_on_its_node(tmp_path):
    """The container's own start-up program, run as the pod would run it, on a
    'node' (a private network namespace) whose fabric interface has 192.0.2.12."""
    manifest, _ = render(GB10, *site_args(GB10))
    (c,) = templates(manifest)["workerTemplate"]["spec"]["containers"]
    # A stand-in sglang.launch_server that records how it was started.
    pkg = tmp_path / "sglang"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    record = tmp_path / "started.json"
    (pkg / "launch_server.py").write_text(
        "import json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ)}}, open({str(record)!r}, 'w'))\n"
    )
    pod_env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    pod_env.update(PATH=os.environ["PATH"], PYTHONPATH=str(tmp_path))
    nic = pod_env["SGLANG_MIMO_NIC"]
    script = (
        f"ip link add {nic} type veth peer name peer0 && "
        f"ip addr add 192.0.2.12/24 dev {nic} && "
        f"ip addr add 192.0.2.99/24 dev peer0 && ip link set lo up && "
        'exec "$@"'
    )
    program = [sys.executable, *c["command"][1:], *c["args"]]
    r = subprocess.run(["unshare", "-n", "sh", "-c", script, "sh", *program],
                       env=pod_env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"rank address 192.0.2.12 (interface {nic})" in r.stderr
    started = json.loads(record.read_text())
    assert started["env"]["SGLANG_HOST_IP"] == "192.0.2.12"
    assert started["env"]["NCCL_SOCKET_IFNAME"] == nic
    assert started["argv"] == c["args"]
    # A node without that interface: the pod stops with the reason, the server never starts.
    record.unlink()
    pod_env["SGLANG_MIMO_NIC"] = "enP9p9s0f0np0"
    r = subprocess.run(["unshare", "-n", *program], env=pod_env, capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode != 0
    assert "no IPv4 address on interface enP9p9s0f0np0 of this node" in r.stderr
    assert not record.exists()


def test_an_excluding_nic_list_is_refused():
    r = launch(
        GB10, "--render", "k8s", "--nic", "^docker0,lo", "--ib-hca", "roceP2p1s0f0"
    )
    assert r.returncode == 2 and "not an exclusion" in r.stderr
