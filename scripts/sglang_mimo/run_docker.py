"""The docker runner: one ``docker run`` line per rank of a recipe."""

from __future__ import annotations

from sglang_mimo import paths
from sglang_mimo.errors import RecipeError
from sglang_mimo.rank import RankLaunch, argv_value
from sglang_mimo.recipes import Recipe, is_local_path

HF_CACHE_MOUNT = "${HOME}/.cache/huggingface:/root/.cache/huggingface"


def image_name(recipe: Recipe, repository: str = "sglang-mimo") -> str:
    """Image of the recipe's target: ``<repository>:<distribution>-<target>``."""
    return f"{repository}:{paths.load_pin()['distribution']}-{recipe.image.target}"


def container_name(recipe: Recipe, node_rank: int) -> str:
    return f"{recipe.name}-rank{node_rank}"


def docker_argv(
    recipe: Recipe, launch: RankLaunch, image: str, restart: str = "no"
) -> list[str]:
    """``docker run`` argv for one rank (the container runs the server directly).

    No ``--rm``: a rank that stops or crashes keeps its container and its logs
    (``docker logs NAME``); the name is freed by ``docker rm -f NAME`` before the next
    run (``launch --render docker --replace`` prints it). ``restart`` is docker's
    ``--restart`` policy (no, on-failure[:N], unless-stopped, always)."""
    img = recipe.image
    argv = [
        "docker", "run", "-d", "--restart", restart,
        "--name", container_name(recipe, launch.node_rank),
        "--gpus", "all", "--ipc=host", "--network", "host",
        "--shm-size", img.shm_size,
    ]  # fmt: skip
    if launch.node_rank >= 1:
        # Only rank 0 serves HTTP; the image's HEALTHCHECK would mark the others unhealthy.
        argv.append("--no-healthcheck")
    if img.rdma:
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


RESTART_POLICIES = ("no", "on-failure", "unless-stopped", "always")


def check_restart(policy: str) -> str:
    """docker's --restart values: no, on-failure[:N], unless-stopped, always."""
    name, sep, count = policy.partition(":")
    if name not in RESTART_POLICIES or (
        sep and (name != "on-failure" or not count.isdigit())
    ):
        raise RecipeError(
            f"--restart {policy}: give no, on-failure[:N], unless-stopped or always"
        )
    return policy
