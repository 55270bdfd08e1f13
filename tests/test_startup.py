"""Every recipe x rank through what the pinned launch_server runs before it spawns workers.

``sglang_mimo.startup`` calls SGLang v0.5.23's own ``prepare_server_args``,
``ServerArgs.resolve_once()`` (all hooks and model overrides, which read the model's
config.json), ``check_server_args`` and ``resolve_auto_parsers``, with ``--model-path``
pointed at ``recipes/configs/<model>`` and torch's CUDA queries answered as the recipe's
GPUs (the one stand-in, there is no GPU here). SGLang is imported once per session.
"""

from pathlib import Path

import pytest
import yaml
from recipe_helpers import REPO, R
from sglang_mimo import rank as K
from sglang_mimo import startup

OLD = REPO / "tests" / "data" / "old_recipes"


@pytest.fixture(scope="session")
def sglang_startup():
    startup._sglang()  # the one import
    return startup


def ranks(recipe):
    for rank in range(recipe.hardware.nodes):
        yield K.render_rank(
            recipe, rank, K.placeholder_site(recipe, rank), K.placeholder_head_addr()
        )


CASES = [
    (name, rank)
    for name in sorted(R.known_recipes())
    for rank in range(R.load_recipe(name).hardware.nodes)
]


@pytest.mark.parametrize("name,rank", CASES, ids=[f"{n}-rank{k}" for n, k in CASES])
def test_sglang_starts_every_recipe_rank(sglang_startup, name, rank):
    recipe = R.load_recipe(name)
    launch = list(ranks(recipe))[rank]
    v = sglang_startup.check_rank(recipe, launch)
    assert v.ok, f"{name} rank {rank}: SGLang refuses: {v.message}"
    # SGLang's resolved layout is the recipe's.
    args = dict(R.server_arg_items(recipe))
    assert v.resolved["tp_size"] == args["--tp-size"]
    assert v.resolved["attn_dp_size"] == args.get("--attn-dp-size", 1)
    assert v.resolved["node_rank"] == rank
    assert v.resolved["nnodes"] == recipe.hardware.nodes


def _old(name):
    """An old recipe text as a Recipe; the model fields the schema has dropped since
    (V2.5-Pro's total_params_b, weight_bytes_per_param: sizing reads the config now)
    are left out."""
    data = yaml.safe_load((OLD / f"{name}.yaml").read_text())
    for dropped in ("total_params_b", "weight_bytes_per_param"):
        data["model"].pop(dropped, None)
    return R.Recipe.from_data(data)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("mimo-v2.5-h200x8", "requires effective attention TP size 4"),
        ("mimo-v2.5-pro-h200x16", "requires effective attention TP size 8"),
    ],
)
def test_old_h200_recipes_are_refused_by_sglang(sglang_startup, name, expected):
    """The texts shipped before this change (plain --tp-size 8 / 16): SGLang's own
    model hook refuses them, on every rank, with its own message."""
    old = _old(name)
    assert "--attn-dp-size" not in old.flags
    for launch in ranks(old):
        v = sglang_startup.check_rank(old, launch)
        assert not v.ok
        assert v.message.startswith(
            "ValueError: MiMoV2ForCausalLM " + expected
        ), v.message


def test_a_refusal_is_sglangs_message_for_argparse_errors_too(sglang_startup):
    recipe = R.load_recipe("mimo-v2.5-h200x8")
    (launch,) = ranks(recipe)
    launch.argv.append("--enable-mtp")
    v = sglang_startup.check_rank(recipe, launch)
    assert not v.ok and "unrecognized arguments: --enable-mtp" in v.message


def test_the_checkpoint_config_decides(sglang_startup, tmp_path):
    """The same argv is refused once the config's interleave (num_key_value_heads) is 2:
    attention TP 4 must divide it."""
    recipe = R.load_recipe("mimo-v2.5-h200x8")
    (launch,) = ranks(recipe)
    src = startup.config_dir(recipe.model.id)
    for f in src.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    import json

    cfg = json.loads((src / "config.json").read_text())
    cfg["num_key_value_heads"] = 2
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert sglang_startup.check_rank(recipe, launch).ok
    v = sglang_startup.check_rank(recipe, launch, model_dir=tmp_path)
    assert not v.ok and "requires effective attention TP size 2" in v.message


def test_the_gpu_stand_in_is_the_recipes_and_leaves_nothing_behind(sglang_startup):
    import torch
    from sglang.srt.utils.common import get_device_memory_capacity, get_device_sm

    gb10 = R.load_recipe("mimo-v2.5-gb10x4")
    with startup.GpuStandIn.for_recipe(gb10):
        assert get_device_sm() == 121
        assert get_device_memory_capacity("cuda") == 128 * 1024
    assert not torch.cuda.is_available()
    assert get_device_sm() == 0


@pytest.mark.parametrize("name", sorted(R.known_recipes()))
def test_every_departure_from_sglang_defaults_has_a_reason(sglang_startup, name):
    recipe = R.load_recipe(name)
    reasons = recipe.reasons
    for launch in ranks(recipe):
        missing = [f for f in startup.departures(launch.argv) if f not in reasons]
        assert not missing, f"{name}: no reason for {missing}"


def test_a_departure_without_reason_is_found(sglang_startup):
    recipe = R.load_recipe("mimo-v2.5-gb10x4")
    launch, *_ = ranks(recipe)
    found = startup.departures(launch.argv + ["--max-total-tokens", "4096"])
    assert "--max-total-tokens" in found
    assert "--model-path" not in found and "--node-rank" not in found
    # A flag given at SGLang's own default is no departure.
    assert "--schedule-conservativeness" not in startup.departures(
        launch.argv + ["--schedule-conservativeness", "1.0"]
    )


def test_startup_module_is_its_own(sglang_startup):
    """recipes.py stays SGLang-free: the startup checks live in startup.py."""
    text = Path(R.__file__).read_text()
    assert "prepare_server_args" not in text and "resolve_once" not in text
