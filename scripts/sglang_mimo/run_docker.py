"""The docker runner: one ``docker run`` line per rank of a recipe."""

from sglang_mimo import paths
from sglang_mimo.rank import argv_value
from sglang_mimo.recipes import is_local_path

HF_CACHE_MOUNT = "${HOME}/.cache/huggingface:/root/.cache/huggingface"


def image_name(recipe, repository="sglang-mimo"):
    """Image of the recipe's target: ``<repository>:<distribution>-<target>``."""
    return (
        f"{repository}:{paths.load_pin()['distribution']}-{recipe['image']['target']}"
    )


def docker_argv(recipe, launch, image):
    """``docker run`` argv for one rank (the container runs the server directly)."""
    img = recipe["image"]
    # --rm: a stopped or crashed rank frees its name, so the same line runs again.
    argv = [
        "docker", "run", "-d", "--rm",
        "--name", f"{recipe['name']}-rank{launch.node_rank}",
        "--gpus", "all", "--ipc=host", "--network", "host",
        "--shm-size", img.get("shm_size", "32g"),
    ]  # fmt: skip
    if launch.node_rank >= 1:
        # Only rank 0 serves HTTP; the image's HEALTHCHECK would mark the others unhealthy.
        argv.append("--no-healthcheck")
    if img.get("rdma"):
        argv += ["--device", "/dev/infiniband", "--cap-add", "IPC_LOCK",
                 "--ulimit", "memlock=-1"]  # fmt: skip
    model = argv_value(launch.argv, "--model-path")
    if model and is_local_path(model):
        argv += ["-v", f"{model}:{model}:ro"]
    else:
        argv += ["-v", HF_CACHE_MOUNT]
    for k, v in launch.env.items():
        argv += ["-e", f"{k}={v}"]
    argv += [image, "python3", "-m", "sglang.launch_server", *launch.argv]
    return argv
