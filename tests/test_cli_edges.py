"""The command line's edges: --version, a mistyped flag, a command in the wrong place."""

import pytest
from cli_helpers import run_cli
from sglang_mimo import paths


def test_version_names_the_distribution_and_its_sglang():
    pin = paths.load_pin()
    r = run_cli("--version", check_rc=0)
    assert r.stdout == f"sglang-mimo {pin['distribution']} (SGLang {pin['version']})\n"


@pytest.mark.parametrize(
    "args, unknown",
    [
        (["launch", "mimo-v2.5-h200x8", "--dry-rnu"], "--dry-rnu"),
        (["smoke", "--url", "http://127.0.0.1:9", "--recpie", "x"], "--recpie x"),
        (["status", "--jsno"], "--jsno"),
    ],
    ids=["launch", "smoke", "status"],
)
def test_a_mistyped_flag_shows_that_commands_usage(args, unknown):
    r = run_cli(*args, check_rc=2)
    assert r.stderr.startswith(f"usage: sglang-mimo {args[0]} "), r.stderr
    assert (
        f"sglang-mimo {args[0]}: error: unrecognized arguments: {unknown}" in r.stderr
    )
    assert r.stdout == ""


def test_launch_smoke_points_at_the_smoke_command():
    r = run_cli("launch", "smoke", "--url", "http://127.0.0.1:9", check_rc=2)
    assert r.stderr.startswith("usage: sglang-mimo launch ")
    assert "'smoke' is not a recipe" in r.stderr
    assert "sglang-mimo smoke --url URL" in r.stderr


def test_users_and_maintainers_have_their_own_command_lines():
    """`sglang-mimo` lists the users' commands only; `scripts/dev` the maintainers'."""
    from sglang_mimo import cli

    user = run_cli("--help", module="sglang_mimo.cli", check_rc=0).stdout
    dev = run_cli("--help", module="sglang_mimo.dev", check_rc=0).stdout
    assert user.startswith("usage: sglang-mimo ") and dev.startswith(
        "usage: scripts/dev "
    )
    for name in cli.USER_COMMANDS:
        assert name in user and name not in dev.split("positional arguments")[1]
    for name in cli.MAINTAINER_COMMANDS:
        assert name in dev and name not in user.split("positional arguments")[1]


@pytest.mark.parametrize(
    "command", ["docs", "changelog", "audit", "rebase", "export-pr"]
)
def test_a_maintainer_command_under_sglang_mimo_points_at_scripts_dev(command):
    r = run_cli(command, "--help", module="sglang_mimo.cli", check_rc=2)
    assert f"{command} is a maintainer command" in r.stderr
    assert f"scripts/dev {command}" in r.stderr and r.stdout == ""


def test_scripts_dev_runs_from_the_checkout():
    import subprocess
    import sys

    from cli_helpers import REPO

    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "dev"), "changelog", "--check"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert r.returncode == 0, r.stderr


def test_a_tool_error_ends_the_command_with_its_message_and_code(tmp_path):
    """cli.dispatch catches ToolError once: PROG COMMAND: error: MESSAGE, its code."""
    r = run_cli("status", tmp_path, check_rc=3)
    assert r.stderr.startswith(f"sglang-mimo status: error: {tmp_path}"), r.stderr
    r = run_cli("audit", tmp_path, check_rc=3)
    assert r.stderr.startswith(f"scripts/dev audit: error: {tmp_path}"), r.stderr
