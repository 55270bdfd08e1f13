"""scripts/launch: exec of a rank, docker and LeaderWorkerSet renderings, bad input.

The exec path runs for real: ``--python`` points at a stand-in interpreter (a script that
records its argv and environment and exits), so the test sees exactly what
``python3 -m sglang.launch_server`` would have been started with. For bad input the
stand-in must never run.
"""

import json
import shlex
import stat
import sys

import pytest
import yaml
from recipe_helpers import LAUNCH, R, clean_env, launch, paths
from sglang_mimo import rank as K

GB10 = "mimo-v2.5-gb10x4"
GB10_SITE = ["--nic", "enP2p1s0f0np0", "--ib-hca", "roceP2p1s0f0"]
GB10_HEAD = ["--head-addr", f"192.168.100.10:{R.HEAD_PORT}"]


@pytest.fixture
def standin_python(tmp_path):
    """A stand-in for python3 that records how it was started, then exits 0."""
    record = tmp_path / "started.json"
    exe = tmp_path / "python3-standin"
    exe.write_text(
        "#!/bin/sh\n"
        f'exec "{sys.executable}" -c \'import json, os, sys; '
        f'json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, '
        f'open("{record}", "w"))\' "$@"\n'
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe, record


def _rank_args(rank):
    return ["--node-rank", rank, "--rank-addr", f"192.168.100.{10 + rank}", *GB10_HEAD,
            *GB10_SITE]  # fmt: skip


def test_exec_runs_launch_server_with_the_rank_env_and_argv(standin_python, tmp_path):
    exe, record = standin_python
    model = tmp_path / "mimo-v2.5"
    model.mkdir()
    r = launch(GB10, *_rank_args(2), "--model-path", model, "--python", exe)
    assert r.returncode == 0, r.stderr
    started = json.loads(record.read_text())
    dry = launch(GB10, *_rank_args(2), "--model-path", model, "--dry-run", "--json")
    (want,) = json.loads(dry.stdout)
    assert started["argv"][:2] == ["-m", "sglang.launch_server"]
    assert started["argv"][2:] == want["argv"]
    for k, v in want["env"].items():
        assert started["env"][k] == v
    argv = want["argv"]
    assert argv[argv.index("--node-rank") + 1] == "2"
    assert argv[argv.index("--nnodes") + 1] == "4"
    assert argv[argv.index("--dist-init-addr") + 1] == f"192.168.100.10:{R.HEAD_PORT}"
    assert argv[argv.index("--model-path") + 1] == str(model)
    assert want["env"]["SGLANG_HOST_IP"] == "192.168.100.12"
    assert want["env"]["NCCL_SOCKET_IFNAME"] == "enP2p1s0f0np0"
    assert want["env"]["NCCL_IB_HCA"] == "roceP2p1s0f0"


def test_site_values_come_from_the_environment_too(standin_python):
    exe, record = standin_python
    env = clean_env(
        SGLANG_MIMO_RANK_ADDR="192.168.100.13", SGLANG_MIMO_HEAD_ADDR=f"192.168.100.10:{R.HEAD_PORT}",
        SGLANG_MIMO_NIC="enp1s0", SGLANG_MIMO_IB_HCA="mlx5_0",
    )  # fmt: skip
    r = launch(GB10, "--node-rank", 3, "--python", exe, env=env)
    assert r.returncode == 0, r.stderr
    started = json.loads(record.read_text())
    assert started["env"]["SGLANG_HOST_IP"] == "192.168.100.13"
    assert started["env"]["GLOO_SOCKET_IFNAME"] == "enp1s0"
    # A flag wins over the variable.
    r = launch(GB10, "--node-rank", 3, "--nic", "eth9", "--python", exe, env=env)
    assert json.loads(record.read_text())["env"]["NCCL_SOCKET_IFNAME"] == "eth9"


def test_single_node_recipe_needs_no_rank_or_address(standin_python):
    exe, record = standin_python
    r = launch("mimo-v2.5-h200x8", "--python", exe)
    assert r.returncode == 0, r.stderr
    argv = json.loads(record.read_text())["argv"]
    assert "--nnodes" not in argv and "--dist-init-addr" not in argv
    assert argv[argv.index("--model-path") + 1] == "XiaomiMiMo/MiMo-V2.5"


BAD_INPUT = [
    ("unknown recipe", ["mimo-v9", "--node-rank", 0], "unknown recipe 'mimo-v9'; known recipes: "),
    ("rank too high", [GB10, *_rank_args(4)], "--node-rank 4 is outside 0..3"),
    ("negative rank", [GB10, *_rank_args(-1)], "--node-rank -1 is outside 0..3"),
    ("rank on one node", ["mimo-v2.5-h200x8", "--node-rank", 1], "outside 0..0"),
    ("no rank, multi-node", [GB10, "--rank-addr", "10.0.0.1", *GB10_HEAD, *GB10_SITE],
     "give --node-rank 0..3"),
    ("head without port", [GB10, "--node-rank", 0, "--rank-addr", "10.0.0.1",
                           "--head-addr", "10.0.0.1", *GB10_SITE], "is not HOST:PORT"),
    ("head port too big", [GB10, "--node-rank", 0, "--rank-addr", "10.0.0.1",
                           "--head-addr", "10.0.0.1:70000", *GB10_SITE], "outside 1..65535"),
    ("head bad host", [GB10, "--node-rank", 0, "--rank-addr", "10.0.0.1",
                       "--head-addr", "10.0.0.300:29500", *GB10_SITE], "not an IP address"),
    ("rank addr malformed", [GB10, "--node-rank", 0, "--rank-addr", "10.0.0.1:29500",
                             *GB10_HEAD, *GB10_SITE], "--rank-addr: '10.0.0.1:29500'"),
    ("head missing", [GB10, "--node-rank", 0, "--rank-addr", "10.0.0.1", *GB10_SITE],
     "--head-addr HOST:PORT"),
    ("nic missing", [GB10, "--node-rank", 1, "--rank-addr", "10.0.0.2", *GB10_HEAD,
                     "--ib-hca", "roceP2p1s0f0"], "--nic / $SGLANG_MIMO_NIC"),
    ("rank addr missing", [GB10, "--node-rank", 1, *GB10_HEAD, *GB10_SITE],
     "--rank-addr / $SGLANG_MIMO_RANK_ADDR"),
    ("nic with a space", [GB10, "--node-rank", 1, "--rank-addr", "10.0.0.2", *GB10_HEAD,
                          "--nic", "eth 0", "--ib-hca", "x"], "not an interface"),
    ("rank list wrong length", [GB10, "--render", "docker", "--rank-addr", "10.0.0.1,10.0.0.2",
                                *GB10_HEAD, *GB10_SITE], "lists 2 addresses"),
    ("rank 0 is not the head", [GB10, "--node-rank", 0, "--rank-addr", "192.168.100.11",
                                *GB10_HEAD, *GB10_SITE],
     "rank 0's --rank-addr 192.168.100.11 differs from the --head-addr host 192.168.100.10"),
    ("rank 1 gives the head's address", [GB10, "--node-rank", 1, "--rank-addr",
                                         "192.168.100.10", *GB10_HEAD, *GB10_SITE],
     "rank 1's --rank-addr 192.168.100.10 is the --head-addr host"),
    ("head not in the rank list", [GB10, "--render", "docker", "--rank-addr",
                                   "192.168.100.11,192.168.100.12,192.168.100.13,192.168.100.14",
                                   *GB10_HEAD, *GB10_SITE],
     "--head-addr host 192.168.100.10 is not in --rank-addr"),
    ("head not first in the rank list", [GB10, "--node-rank", 3, "--rank-addr",
                                         "192.168.100.11,192.168.100.10,192.168.100.12,192.168.100.13",
                                         *GB10_HEAD, *GB10_SITE, "--dry-run"],
     "is rank 1's address in --rank-addr"),
    ("one address twice", [GB10, "--render", "docker", "--rank-addr",
                           "192.168.100.10,192.168.100.11,192.168.100.11,192.168.100.13",
                           *GB10_HEAD, *GB10_SITE],
     "192.168.100.11 is given for rank 1 and rank 2"),
    ("json without dry-run", ["--json"], "--json needs --dry-run"),
    ("nothing to do", [], "give a recipe"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_refused_and_nothing_runs(case, standin_python):
    _, args, message = case
    exe, record = standin_python
    r = launch(*args, "--python", exe)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr, r.stderr
    assert r.stderr.startswith("launch: error:")
    assert not record.exists()


def test_unknown_recipe_lists_the_known_ones():
    r = launch("nope", "--node-rank", 0)
    for name in R.known_recipes():
        assert name in r.stderr


def test_recipe_failing_its_schema_is_refused(tmp_path, standin_python):
    exe, record = standin_python
    data = yaml.safe_load(R.known_recipes()["mimo-v2.5-h200x8"].read_text())
    data["image"]["target"] = "sm100"
    data.pop("hardware")
    bad = tmp_path / "mimo-v2.5-h200x8.yaml"
    bad.write_text(yaml.safe_dump(data))
    r = launch(bad, "--python", exe)
    assert r.returncode == 3, r.stderr
    assert "fails validation" in r.stderr
    assert (
        "image/target" in r.stderr and "'hardware' is a required property" in r.stderr
    )
    assert not record.exists()
    # Same for a recipe that breaks a project rule (attention DP, no DP encoder).
    data = yaml.safe_load(R.known_recipes()["mimo-v2.5-h200x8"].read_text())
    data["server_args"].remove("--mm-enable-dp-encoder")
    bad.write_text(yaml.safe_dump(data))
    r = launch(bad, "--dry-run", "--json")
    assert r.returncode == 3 and "--mm-enable-dp-encoder" in r.stderr and r.stdout == ""


def test_a_bad_recipe_in_the_directory_fails_the_whole_dry_run(tmp_path):
    for name, path in R.known_recipes().items():
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "broken.yaml").write_text("name: broken\n")
    r = launch("--dry-run", "--json", "--recipes-dir", tmp_path)
    assert r.returncode == 3 and "broken.yaml" in r.stderr and r.stdout == ""


def _docker_lines(stdout):
    cmds = [
        c
        for c in stdout.replace("\\\n", " ").splitlines()
        if c.startswith("docker run ")
    ]
    return [shlex.split(c) for c in cmds]


def test_docker_lines_per_rank():
    addrs = ",".join(f"192.168.100.{10 + i}" for i in range(4))
    r = launch(GB10, "--render", "docker", "--rank-addr", addrs, *GB10_HEAD, *GB10_SITE,
               "--model-path", "/models/mimo-v2.5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = _docker_lines(r.stdout)
    assert len(lines) == 4
    image = f"sglang-mimo:{paths.load_pin()['distribution']}-sm121a"
    for rank, argv in enumerate(lines):
        # No --rm: a crashed rank keeps its container and logs.
        assert argv[:5] == ["docker", "run", "-d", "--restart", "no"]
        assert "--rm" not in argv
        assert argv[argv.index("--name") + 1] == f"{GB10}-rank{rank}"
        assert ("--no-healthcheck" in argv) == (rank >= 1)
        for needle in (["--gpus", "all"], ["--ipc=host"], ["--network", "host"],
                       ["--shm-size", "32g"], ["--device", "/dev/infiniband"],
                       ["-v", "/models/mimo-v2.5:/models/mimo-v2.5:ro"]):  # fmt: skip
            i = argv.index(needle[0])
            assert argv[i : i + len(needle)] == needle
        envs = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-e")
        cmd = argv[argv.index(image) + 1 :]
        dry = launch(GB10, *_rank_args(rank), "--model-path", "/models/mimo-v2.5",
                     "--dry-run", "--json")  # fmt: skip
        (want,) = json.loads(dry.stdout)
        assert cmd == ["python3", "-m", "sglang.launch_server", *want["argv"]]
        assert envs == want["env"]


def test_docker_line_for_a_hub_model_mounts_the_cache():
    r = launch("mimo-v2.5-h200x8", "--render", "docker")
    (argv,) = _docker_lines(r.stdout)
    assert "${HOME}/.cache/huggingface:/root/.cache/huggingface" in argv
    assert f"sglang-mimo:{paths.load_pin()['distribution']}-sm90" in argv
    assert "/dev/infiniband" not in argv


def test_kubernetes_leaderworkerset_manifest():
    r = launch(GB10, "--render", "k8s", *GB10_SITE, "--model-path", "/models/mimo-v2.5",
               "--image", "registry.example/sglang-mimo:sm121a")  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = yaml.safe_load(r.stdout)
    assert (
        m["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
        and m["kind"] == "LeaderWorkerSet"
    )
    lwt = m["spec"]["leaderWorkerTemplate"]
    assert lwt["size"] == 4
    for role in ("leaderTemplate", "workerTemplate"):
        (c,) = lwt[role]["spec"]["containers"]
        assert c["image"] == "registry.example/sglang-mimo:sm121a"
        # Host network: the pod reads its fabric address on its node (test_k8s_render.py).
        assert c["command"][:2] == ["python3", "-c"]
        args = c["args"]
        assert args[args.index("--nnodes") + 1] == "$(LWS_GROUP_SIZE)"
        assert args[args.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"
        assert (
            args[args.index("--dist-init-addr") + 1]
            == f"$(LWS_LEADER_ADDRESS):{R.HEAD_PORT}"
        )
        env = {e["name"]: e for e in c["env"]}
        assert env["SGLANG_HOST_IP"]["value"] == "{rank_addr}"
        assert (
            "worker-index"
            in env["LWS_WORKER_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
        )
        assert env["NCCL_SOCKET_IFNAME"]["value"] == "enP2p1s0f0np0"
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert lwt[role]["spec"]["hostNetwork"] is True
        # RDMA for NCCL: the devices, IPC_LOCK (locked memory), one RDMA device resource.
        assert c["resources"]["limits"]["rdma/rdma_shared_device_a"] == 1
        assert c["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts["infiniband"] == "/dev/infiniband"
        vols = {v["name"]: v for v in lwt[role]["spec"]["volumes"]}
        assert vols["infiniband"]["hostPath"]["path"] == "/dev/infiniband"
        assert vols["model"]["hostPath"]["path"] == "/models/mimo-v2.5"
    (leader,) = lwt["leaderTemplate"]["spec"]["containers"]
    assert leader["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "ray" not in r.stdout.lower()
    assert "&id" not in r.stdout  # plain YAML, no anchors/aliases


def test_kubernetes_manifest_needs_the_site_values():
    r = launch(GB10, "--render", "k8s", "--nic", "eth0")
    assert r.returncode == 2 and "--ib-hca / $SGLANG_MIMO_IB_HCA" in r.stderr


def test_list_and_help():
    r = launch("--list")
    assert r.returncode == 0
    assert [ln.split()[0] for ln in r.stdout.splitlines()] == list(R.known_recipes())
    h = launch("--help")
    assert h.returncode == 0 and "--node-rank" in h.stdout and "Exit codes" in h.stdout


def test_without_jsonschema_a_clear_error_and_nothing_launched(tmp_path):
    """A host without the jsonschema package: exit 2 naming it, no traceback."""
    blocker = tmp_path / "block" / "jsonschema"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked for this test')\n")
    env = clean_env(PYTHONPATH=str(tmp_path / "block"))
    r = launch("--dry-run", "--json", env=env)
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert "needs the jsonschema package" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr


def test_scripts_launch_is_executable():
    import subprocess

    r = subprocess.run(
        [str(LAUNCH), "--list"], capture_output=True, text=True, env=clean_env()
    )
    assert r.returncode == 0, r.stderr


# ------------------------------------------------------------------- operator fixes


def _manifest(*args):
    r = launch(*args)
    assert r.returncode == 0, r.stderr
    m = yaml.safe_load(r.stdout)
    lwt = m["spec"]["leaderWorkerTemplate"]
    return [
        (lwt[t]["spec"], lwt[t]["spec"]["containers"][0])
        for t in ("leaderTemplate", "workerTemplate")
        if t in lwt
    ]


def test_kubernetes_honours_the_head_port_not_a_head_host():
    for spec, c in _manifest(GB10, "--render", "k8s", *GB10_SITE, "--head-addr",
                             "192.168.100.10:31234"):  # fmt: skip
        args = c["args"]
        assert args[args.index("--dist-init-addr") + 1] == "$(LWS_LEADER_ADDRESS):31234"
    bad = launch(
        GB10, "--render", "k8s", *GB10_SITE, "--rank-addr", "10.0.0.1,10.0.0.2"
    )
    assert bad.returncode == 2 and "takes no --rank-addr" in bad.stderr


def test_kubernetes_hub_id_gets_a_hugging_face_cache_volume():
    for spec, c in _manifest("mimo-v2.5-h200x8", "--render", "k8s"):
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts["hf-cache"] == "/root/.cache/huggingface"
        vols = {v["name"]: v for v in spec["volumes"]}
        assert vols["hf-cache"]["hostPath"]["type"] == "DirectoryOrCreate"
        assert "model" not in vols and "infiniband" not in vols
        assert "securityContext" not in c  # no RDMA on this recipe


def test_relative_model_path_is_a_local_directory_not_a_hub_id(tmp_path):
    model = tmp_path / "x"
    model.mkdir()
    r = subprocess_launch_in(tmp_path, "mimo-v2.5-h200x8", "--render", "docker",
                             "--model-path", "./x")  # fmt: skip
    (argv,) = _docker_lines(r.stdout)
    assert ["-v", f"{model}:{model}:ro"] == argv[
        argv.index("-v") : argv.index("-v") + 2
    ]
    assert argv[argv.index("--model-path") + 1] == str(model)
    assert "${HOME}/.cache/huggingface:/root/.cache/huggingface" not in argv


def subprocess_launch_in(cwd, *args):
    import subprocess

    r = subprocess.run([sys.executable, str(LAUNCH), *map(str, args)], capture_output=True,
                       text=True, env=clean_env(), cwd=cwd, timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r


def test_a_missing_local_model_path_is_reported_before_launch(standin_python, tmp_path):
    exe, record = standin_python
    missing = tmp_path / "no-such-checkpoint"
    r = launch("mimo-v2.5-h200x8", "--model-path", missing, "--python", exe)
    assert (
        r.returncode == 2 and f"--model-path {missing}: no such directory" in r.stderr
    )
    assert not record.exists()
    dry = launch("mimo-v2.5-h200x8", "--model-path", missing, "--dry-run")
    assert (
        dry.returncode == 0
        and "warning" in dry.stderr
        and "no such directory" in dry.stderr
    )


def test_docker_lines_keep_the_container_and_replace_it_when_asked():
    r = launch("mimo-v2-flash-h200x8", "--render", "docker")
    (argv,) = _docker_lines(r.stdout)
    # A stopped or crashed rank keeps its container (and logs) under its name.
    assert "--rm" not in argv and argv[argv.index("--restart") + 1] == "no"
    assert argv[argv.index("--name") + 1] == "mimo-v2-flash-h200x8-rank0"
    assert "--no-healthcheck" not in argv and "docker rm" not in r.stdout
    r = launch("mimo-v2-flash-h200x8", "--render", "docker", "--replace",
               "--restart", "on-failure:3")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stdout.splitlines() if not x.startswith("#")]
    # The name is freed first, so the same lines run again after a crash.
    assert lines[0] == "docker rm -f mimo-v2-flash-h200x8-rank0 2>/dev/null"
    (argv,) = _docker_lines(r.stdout)
    assert argv[argv.index("--restart") + 1] == "on-failure:3"
    for bad in ("sometimes", "always:3", "on-failure:x"):
        r = launch("mimo-v2-flash-h200x8", "--render", "docker", "--restart", bad)
        assert r.returncode == 2 and f"--restart {bad}: give no" in r.stderr


def test_dry_run_shows_reasons_beside_flags_and_the_memory_table():
    r = launch("mimo-v2.5-h200x8", "--dry-run")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    reason = next(ln for ln in lines if ln.startswith("#   --attn-dp-size 2 "))
    assert "effective attention TP 8/2 = 4" in reason
    i = lines.index(
        "# memory per GPU (sglang_mimo.sizing, from the model's config.json):"
    )
    # tables.render's plain table: header, a dashed rule, the rows.
    head, rule, row = lines[i + 1].split(), lines[i + 2], lines[i + 3].split()
    assert head[1] == "recipe" and set(rule) == {"#", " ", "-"}
    assert row[1] == "mimo-v2.5-h200x8"
    assert "recipes/configs/MiMo-V2.5/config.json" in lines[i + 3]
    assert " yes " in lines[i + 3]


def test_one_head_port_everywhere():
    """README, docs/, docker/README.md, the launcher and the k8s render use one head port."""
    import re

    from recipe_helpers import REPO

    ports = set()
    docs = ["README.md", "docker/README.md", "recipes/README.md"]
    docs += [f"docs/{p.name}" for p in sorted((REPO / "docs").glob("*.md"))]
    for doc in docs:
        text = (REPO / doc).read_text()
        for m in re.finditer(
            r"(?:HEAD_ADDR=|--head-addr |--dist-init-addr )[\w.\[\]:-]*?:(\d+)", text
        ):
            ports.add(int(m.group(1)))
    assert ports == {R.HEAD_PORT}, ports
    assert K.placeholder_head_addr().endswith(f":{R.HEAD_PORT}")


# ------------------------------------------------------- a checkpoint's config.json


def _released(**edits):
    config = R.paths.RECIPES / "configs" / "MiMo-V2.5" / "config.json"
    cfg = json.loads(config.read_text())
    for key, value in edits.items():
        section, _, field = key.partition("__")
        target = cfg[section] if field else cfg
        name = field or section
        if value is None:
            del target[name]
        else:
            target[name] = value
    return json.dumps(cfg)


LLAMA = json.dumps({
    "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
    "vocab_size": 128256, "max_position_embeddings": 8192,
})  # fmt: skip
BAD_CONFIGS = [
    ("partial", '{"hidden_size": 4096}',
     "missing fields 'architectures', 'num_hidden_layers', 'num_attention_heads'"),
    ("corrupt", '{"hidden_size": 40', "not valid JSON (line 1, column 19"),
    ("not an object", "[]", "not a JSON object (a list)"),
    ("foreign", LLAMA, "field 'architectures' is ['LlamaForCausalLM'], not this recipe's "
     "'MiMoV2ForCausalLM' (another model's checkpoint?); missing field 'head_dim'"),
    ("no head_dim", _released(head_dim=None), "missing field 'head_dim'"),
    # Found by sizing (--dry-run); a launch checks only the top-level fields.
    ("no vision depth", _released(vision_config__depth=None),
     "missing field 'vision_config.depth'"),
    ("hidden_size a string", _released(hidden_size="4096"),
     "field 'hidden_size' is '4096', not a positive integer"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_a_bad_config_json_is_one_line_naming_file_and_field(
    case, tmp_path, standin_python
):
    _, text, message = case
    model = tmp_path / "MiMo-V2.5"
    model.mkdir()
    (model / "config.json").write_text(text)
    exe, record = standin_python
    runs = [["--dry-run"], ["--dry-run", "--json"]]
    if "vision_config." not in message:
        runs.append(["--python", exe])  # refused before the server would start
        runs.append(["--render", "docker"])  # and before a docker line is printed
    for extra in runs:
        r = launch("mimo-v2.5-h200x8", "--model-path", model, *extra)
        assert r.returncode == 2, (extra, r.returncode, r.stderr)
        (line,) = r.stderr.splitlines()
        assert line.startswith(f"launch: error: {model / 'config.json'}: ")
        assert message in line
        assert "Traceback" not in r.stderr and r.stdout == ""
    assert not record.exists()


def test_a_bad_audio_tokenizer_config_is_named(tmp_path):
    model = tmp_path / "MiMo-V2.5"
    (model / "audio_tokenizer").mkdir(parents=True)
    (model / "config.json").write_text(_released())
    (model / "audio_tokenizer" / "config.json").write_text('{"d_model": 1280}')
    r = launch("mimo-v2.5-h200x8", "--model-path", model, "--dry-run")
    assert r.returncode == 2 and r.stdout == ""
    path = model / "audio_tokenizer" / "config.json"
    assert r.stderr.strip() == f"launch: error: {path}: missing field 'encoder_ffn_dim'"


def test_a_good_local_config_is_sized_from_the_checkpoint(tmp_path):
    model = tmp_path / "MiMo-V2.5"
    model.mkdir()
    (model / "config.json").write_text(_released())
    r = launch("mimo-v2.5-h200x8", "--model-path", model, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert str(model / "config.json") in r.stdout.splitlines()[-1]
