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
