"""`pip install .` (not editable) gives a working `sglang-mimo`, away from the checkout.

The wheel is built the way `pip install .` and `pipx install .` build it (PEP 517,
setup.py's build step copies patches/, recipes/ and apply_patches.sh into the
package), here offline: no build isolation, the test environment's setuptools.
It is installed with --no-deps into a fresh virtual environment that sees the base
interpreter's site-packages (for pyyaml), then run from an empty directory without
PYTHONPATH or SGLANG_MIMO_REPO, as a user would after `pipx install .`.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from sglang_mimo import image as img  # noqa: E402
from sglang_mimo import paths, recipes  # noqa: E402


def run(cmd, check=True, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, env, cwd): sglang-mimo installed from a wheel of this checkout."""
    base = tmp_path_factory.mktemp("install")
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("PYTHONPATH", "SGLANG_MIMO_REPO", "SGLANG_MIMO_BUILD", "XDG_CACHE_HOME")
    }
    # A copy of the source: an in-tree build leaves build/ and *.egg-info behind.
    src = base / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "__pycache__", "*.egg-info", ".pytest_cache"
        ),
    )
    dist = base / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "--no-build-isolation", "--no-index", "-w", str(dist), str(src)],
        env={**env, "PIP_NO_CACHE_DIR": "1"},
    )  # fmt: skip
    (wheel,) = dist.glob("sglang_mimo-*.whl")
    venv = base / "venv"
    py = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q"]
    run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        env=env,
    )  # fmt: skip
    run([*pip, "--no-deps", "--no-index", str(wheel)], env=env)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["HOME"] = str(base / "home")  # the installed CLI's cache goes under ~/.cache
    if run([str(py), "-c", "import yaml"], check=False, env=env).returncode != 0:
        # The base interpreter has no pyyaml: the one dependency, from the index.
        run([*pip, "pyyaml"], env=env)
    cwd = base / "elsewhere"
    cwd.mkdir()
    return venv, env, cwd, wheel


def cli(installed, *args, check=True):
    venv, env, cwd, _ = installed
    return run(
        [str(venv / "bin" / "sglang-mimo"), *map(str, args)],
        check=check,
        env=env,
        cwd=cwd,
    )


def test_wheel_ships_series_pin_recipes_and_apply_script(installed):
    names = set(zipfile.ZipFile(installed[3]).namelist())
    shipped = "sglang_mimo/_dist/"
    for rel in ["patches/series", "patches/pin.json", "recipes/schema.json",
                "recipes/env-allowlist.yaml", "scripts/apply_patches.sh", "LICENSE", "NOTICE"]:  # fmt: skip
        assert shipped + rel in names, rel
    for name in img.series_patches():
        assert f"{shipped}patches/{name}" in names
    for recipe in (REPO / "recipes").glob("*.yaml"):
        assert f"{shipped}recipes/{recipe.name}" in names


def test_installed_cli_reads_its_own_copy(installed):
    venv, env, cwd, _ = installed
    where = run(
        [str(venv / "bin" / "python"), "-c",
         "from sglang_mimo import paths; print(paths.REPO, paths.INSTALLED, paths.BUILD)"],
        env=env, cwd=cwd,
    ).stdout.split()  # fmt: skip
    assert Path(where[0]).is_relative_to(venv) and where[0].endswith(
        "sglang_mimo/_dist"
    )
    assert where[1] == "True"
    assert where[2] == str(Path(env["HOME"]) / ".cache" / "sglang-mimo")
    assert os.access(Path(where[0]) / "scripts" / "apply_patches.sh", os.X_OK)


def test_shipped_apply_script_uses_the_user_cache(installed, series_tree):
    """The apply_patches.sh the package ships reads its own series and pin, and its
    downloads and default tree go where the installed CLI's go (~/.cache), not into
    site-packages."""
    venv, env, cwd, _ = installed
    (shipped,) = venv.glob("lib/python*/site-packages/sglang_mimo/_dist")
    where = run(
        ["python3", "-I", "-S", "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); from sglang_mimo import paths; "
         "print(paths.REPO, paths.INSTALLED, paths.BUILD)",
         str(shipped / "scripts")],
        env=env, cwd=cwd,
    ).stdout.split()  # fmt: skip
    assert where == [
        str(shipped),
        "True",
        str(Path(env["HOME"]) / ".cache" / "sglang-mimo"),
    ]
    proc = run([str(shipped / "scripts" / "apply_patches.sh"), "--check", str(series_tree)],
               env=env, cwd=cwd)  # fmt: skip
    assert proc.stdout.splitlines() == [f"{n}: applies" for n in img.series_patches()]


def test_help(installed):
    out = cli(installed, "--help").stdout
    for command in ("launch", "status", "image"):
        assert command in out


def test_launch_list(installed):
    listed = cli(installed, "launch", "--list").stdout.splitlines()
    names = [line.split()[0] for line in listed if line.strip()]
    assert names and names == sorted(recipes.known_recipes())


def test_image_bake_vars(installed):
    out = cli(installed, "image", "bake-vars").stdout
    import json

    assert json.loads(out) == img.bake_vars()


def test_status_on_an_unpatched_tree(installed, fresh_tree):
    """status runs the apply engine of the installed package against a tree."""
    proc = cli(installed, "status", "--json", fresh_tree)
    import json

    report = json.loads(proc.stdout)
    assert report["version"] == paths.load_pin()["version"]
    assert [r["patch"] for r in report["patches"]] == img.series_patches()
    assert {r["tree"] for r in report["patches"]} == {"needs"}


def test_checkout_only_command_says_what_to_do(installed):
    proc = cli(installed, "docs", check=False)
    assert proc.returncode == 2
    assert "needs a checkout of the sglang-mimo repository" in proc.stderr
    assert "SGLANG_MIMO_REPO" in proc.stderr
