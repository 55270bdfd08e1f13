"""Recipes: schema, project rules, SGLang v0.5.23's own parser, env allow-list, ranks.

The argv of every recipe and node rank (from ``scripts/launch --dry-run --json``) is parsed
by the pinned SGLang's ``prepare_server_args`` in one subprocess (``sglang_mimo.argcheck``),
together with deliberately broken launches, so the import cost is paid once.
"""

import copy
import importlib.metadata
import importlib.util
import json
import mmap
import re
from functools import lru_cache
from pathlib import Path

import jsonschema
import pytest
import yaml
from recipe_helpers import REPO, R, argcheck, launch, paths

RECIPE_NAMES = sorted(R.known_recipes())
ISSUE_RECIPES = {
    "mimo-v2.5-gb10x4",
    "mimo-v2-flash-h200x8",
    "mimo-v2.5-h200x8",
    "mimo-v2.5-pro-h200x16",
}


def load(name):
    return R.load_recipe(name)


def raw(name):
    return yaml.safe_load(R.known_recipes()[name].read_text())


# ------------------------------------------------------------------ schema and rules


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(R.load_schema())


def test_issue_recipes_exist():
    assert ISSUE_RECIPES <= set(RECIPE_NAMES)


@pytest.mark.parametrize("name", RECIPE_NAMES)
def test_recipe_passes_schema_and_rules(name):
    data = raw(name)
    assert R.schema_errors(data) == []
    assert R.semantic_errors(data, name) == []


def test_gb10_recipe_is_the_bring_up_setup():
    r = load("mimo-v2.5-gb10x4")
    args = dict(R.server_arg_items(r))
    assert (r.image.target, r.hardware.nodes, r.hardware.gpus_per_node) == (
        "sm121a", 4, 1)  # fmt: skip
    assert args["--tp-size"] == 4
    assert args["--quantization"] == "fp8" and args["--kv-cache-dtype"] == "fp8_e4m3"
    assert args["--attention-backend"] == "triton"
    assert args["--mm-attention-backend"] == "triton_attn"
    assert args["--mem-fraction-static"] == 0.83
    assert {"text", "audio", "video", "transcription"} <= set(r.model.modalities)
    # The report's VLLM_HOST_IP and TORCH_NUM_THREADS are read by nothing (see below).
    env = {**r.env_common, **r.env_per_rank}
    assert "VLLM_HOST_IP" not in env and "TORCH_NUM_THREADS" not in env
    assert r.env_per_rank == {"SGLANG_HOST_IP": "{rank_addr}"}


def test_flash_recipe_is_attention_dp_2_tp_8_ep_with_mtp():
    r = load("mimo-v2-flash-h200x8")
    args = dict(R.server_arg_items(r))
    assert (args["--tp-size"], args["--attn-dp-size"], args["--ep-size"]) == (8, 2, 8)
    assert r.model.modalities == ("text",)
    assert r.speculative and r.image.target == "sm90"


def test_h200_v25_recipes_keep_attention_tp_at_the_qkv_interleave():
    """Attention TP (tp / attn-dp) = 4 for V2.5, 8 for V2.5-Pro (see test_startup.py
    for SGLang's own verdict)."""
    v25 = dict(R.server_arg_items(load("mimo-v2.5-h200x8")))
    pro = dict(R.server_arg_items(load("mimo-v2.5-pro-h200x16")))
    assert v25["--tp-size"] // v25["--attn-dp-size"] == 4
    assert pro["--tp-size"] // pro["--attn-dp-size"] == 8
    assert "--mm-enable-dp-encoder" in v25 and "--enable-dp-lm-head" in v25


def _broken(name, mutate):
    r = copy.deepcopy(raw(name))
    mutate(r)
    return r


def _add_arg(arg):
    return lambda r: r["server_args"].append(arg)


RULE_CASES = [
    ("attn-dp without dp encoder", "mimo-v2.5-h200x8",
     lambda r: r["server_args"].remove("--mm-enable-dp-encoder"), "--mm-enable-dp-encoder"),
    ("reason for an absent flag", "mimo-v2.5-gb10x4",
     lambda r: r["reasons"].__setitem__("--ep-size", "why not"),
     "reasons: --ep-size is not a flag of this recipe"),
    ("no context length", "mimo-v2.5-gb10x4",
     lambda r: r["server_args"].remove({"--context-length": 65536}), "needs --context-length"),
    ("mtp without speculative", "mimo-v2.5-h200x8", lambda r: r.pop("speculative"),
     "add the speculative block"),
    ("launcher-owned flag", "mimo-v2.5-gb10x4", _add_arg({"--node-rank": 0}),
     "set by the launcher"),
    ("spec flag in server_args", "mimo-v2.5-h200x8",
     _add_arg({"--speculative-num-steps": 3}), "speculative' block"),
    ("deprecated dp attention", "mimo-v2-flash-h200x8", _add_arg("--enable-dp-attention"),
     "deprecated"),
    ("qwen3 reasoning parser", "mimo-v2.5-h200x8",
     lambda r: r["server_args"].__setitem__(
         [i for i, a in enumerate(r["server_args"])
          if isinstance(a, dict) and "--reasoning-parser" in a][0],
         {"--reasoning-parser": "qwen3"}), "--reasoning-parser must be mimo"),
    ("tp does not match gpus", "mimo-v2.5-h200x8",
     lambda r: r["hardware"].__setitem__("gpus_per_node", 4), "hardware has 4 GPUs"),
    ("unlisted env var", "mimo-v2.5-gb10x4",
     lambda r: r["env"]["per_rank"].__setitem__("VLLM_HOST_IP", "{rank_addr}"),
     "VLLM_HOST_IP is not in recipes/env-allowlist.yaml"),
    ("unknown placeholder", "mimo-v2.5-h200x8",
     lambda r: r["env"]["common"].__setitem__("NCCL_SOCKET_IFNAME", "{iface}"),
     "{iface} is not a per-site value"),
    ("multi-node without rank address", "mimo-v2.5-gb10x4",
     lambda r: (r["env"]["per_rank"].clear(), r["site"].pop("rank_addr")),
     'SGLANG_HOST_IP: "{rank_addr}"'),
    ("name differs from file", "mimo-v2.5-h200x8", lambda r: r.__setitem__("name", "other"),
     "must equal the file name"),
]  # fmt: skip


@pytest.mark.parametrize("case", RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_rule_violations_are_named(case):
    _, name, mutate, expected = case
    r = _broken(name, mutate)
    assert R.schema_errors(r) == []
    errs = R.semantic_errors(r, name)
    assert any(expected in e for e in errs), errs


SCHEMA_CASES = [
    ("unknown target", lambda r: r["image"].__setitem__("target", "sm100"), "image/target"),
    ("missing model", lambda r: r.pop("model"), "'model' is a required property"),
    ("bad flag spelling", lambda r: r["server_args"].append("-tp"), "server_args"),
    ("two flags in one item", lambda r: r["server_args"].append({"--a": 1, "--b": 2}),
     "server_args"),
    ("draft tokens as text", lambda r: r["speculative"].__setitem__("num_draft_tokens", "4"),
     "speculative/num_draft_tokens"),
    ("lower-case env name", lambda r: r["env"]["common"].__setitem__("nccl_debug", "INFO"),
     "env/common"),
    ("unknown top-level key", lambda r: r.__setitem__("ray", True), "ray"),
    ("reserved name", lambda r: r.__setitem__("name", "smoke"), "name"),
]  # fmt: skip


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_violations_are_named(case):
    _, mutate, expected = case
    errs = R.schema_errors(_broken("mimo-v2.5-gb10x4", mutate))
    assert any(expected in e for e in errs), errs


# -------------------------------------------------- rendered argv vs SGLang's parser


def _with_flag_replaced(argv, old, new):
    return [new if a == old else a for a in argv]


@pytest.fixture(scope="module")
def dry_run():
    r = launch("--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def broken_launches(tmp_path_factory):
    """Launches SGLang v0.5.23 must reject, each with the flag the message must name."""
    tmp = tmp_path_factory.mktemp("broken")
    # A recipe in a file, rendered by the launcher like any other: it passes the schema
    # and the project rules (they do not know SGLang's flags), the parser must catch it.
    r = raw("mimo-v2-flash-h200x8")
    r["server_args"].append("--enable-mtp")
    (tmp / "mimo-v2-flash-h200x8.yaml").write_text(yaml.safe_dump(r, sort_keys=False))
    out = launch(tmp / "mimo-v2-flash-h200x8.yaml", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    (rendered,) = json.loads(out.stdout)
    good = launch("mimo-v2.5-h200x8", "--dry-run", "--json")
    (base,) = json.loads(good.stdout)
    return [
        dict(rendered, expect="--enable-mtp", sglang_says="unrecognized arguments: --enable-mtp"),
        # The GB10 report's spelling: argparse would expand the abbreviation silently.
        dict(base, argv=_with_flag_replaced(base["argv"], "--tp-size", "--tp"), expect="--tp"),
        # The LMSYS V2-Flash spelling.
        dict(base, argv=base["argv"] + ["--dp-size", "2", "--enable-dp-attention"],
             expect="--enable-dp-attention"),  # fmt: skip
        dict(base, argv=_with_flag_replaced(base["argv"], "mimo", "qwen3_moe_nonexistent"),
             expect="--reasoning-parser", sglang_says="invalid choice"),  # fmt: skip
    ]


@pytest.fixture(scope="module")
def parsed(dry_run, broken_launches):
    """One SGLang import: every recipe rank plus the broken launches."""
    rc, results = argcheck(dry_run + broken_launches)
    assert rc == 1  # the broken ones fail
    n = len(dry_run)
    return results[:n], results[n:]


def test_dry_run_json_has_one_object_per_recipe_and_rank(dry_run):
    want = [(n, k) for n in RECIPE_NAMES for k in range(load(n).hardware.nodes)]
    assert [(x["recipe"], x["node_rank"]) for x in dry_run] == want
    for x in dry_run:
        assert set(x) == {"recipe", "node_rank", "env", "argv"}
        assert all(isinstance(a, str) for a in x["argv"])
        assert all(
            isinstance(k, str) and isinstance(v, str) for k, v in x["env"].items()
        )


def test_every_rendered_argv_parses_with_pinned_sglang(parsed):
    good, _ = parsed
    for x in good:
        assert x["sglang"] == paths.load_pin()["version"]
        assert x["ok"], (x["recipe"], x["node_rank"], x["problems"])


def test_parsed_values_match_the_recipe(parsed):
    good, _ = parsed
    for x in good:
        r = load(x["recipe"])
        args = dict(R.server_arg_items(r))
        p = x["parsed"]
        assert p["tp_size"] == args["--tp-size"]
        assert p["attn_dp_size"] == args.get("--attn-dp-size", 1)
        assert p["ep_size"] == args.get("--ep-size", 1)
        assert p["model_path"] == r.site["model_path"].default
        assert p["reasoning_parser"] == "mimo" and p["tool_call_parser"] == "mimo"


def test_mtp_recipes_render_the_speculative_block(parsed):
    good, _ = parsed
    for x in good:
        if not load(x["recipe"]).model.mtp:
            continue
        p = x["parsed"]
        assert (p["speculative_algorithm"], p["speculative_num_steps"],
                p["speculative_eagle_topk"], p["speculative_num_draft_tokens"],
                p["enable_multi_layer_eagle"]) == ("EAGLE", 3, 1, 4, True)  # fmt: skip
        assert "SGLANG_ENABLE_SPEC_V2" not in x["env"]  # read by nothing in v0.5.23


def test_attention_dp_with_audio_needs_patch_0006(monkeypatch):
    """Audio under attention DP hangs v0.5.23 (sglang#37059) unless the series carries
    the backport of sglang#37060: without 0006 in patches/series the V2.5 H200 recipe is refused.
    """
    r = raw("mimo-v2.5-h200x8")
    assert R.AUDIO_UNDER_ATTN_DP_PATCH in R.series_names()
    assert R.semantic_errors(r, r["name"]) == []
    without = [n for n in R.series_names() if n != R.AUDIO_UNDER_ATTN_DP_PATCH]
    monkeypatch.setattr(R, "series_names", lambda: without)
    errs = R.semantic_errors(r, r["name"])
    assert any("#37059" in e and R.AUDIO_UNDER_ATTN_DP_PATCH in e for e in errs), errs
    # The text-only Flash recipe has attention DP without needing it.
    assert R.semantic_errors(raw("mimo-v2-flash-h200x8"), "mimo-v2-flash-h200x8") == []


def test_audio_recipes_with_attention_dp_parse_as_dp_attention(parsed):
    good, _ = parsed
    for x in good:
        r = load(x["recipe"])
        if (
            R.AUDIO_MODALITIES & set(r.model.modalities)
            and x["parsed"]["attn_dp_size"] > 1
        ):
            assert R.AUDIO_UNDER_ATTN_DP_PATCH in R.series_names(), x["recipe"]


def test_multi_node_ranks_are_consistent(parsed):
    good, _ = parsed
    by_recipe = {}
    for x in good:
        by_recipe.setdefault(x["recipe"], []).append(x["parsed"])
    for name, ranks in by_recipe.items():
        n = load(name).hardware.nodes
        assert sorted(p["node_rank"] for p in ranks) == list(range(n)), name
        assert {p["nnodes"] for p in ranks} == {n}, name
        addrs = {p["dist_init_addr"] for p in ranks}
        assert len(addrs) == 1, (name, addrs)
        if n > 1:
            (addr,) = addrs
            R.check_head_addr(addr)
            # Everything but the rank flag is identical across ranks.
            argvs = [x["argv"] for x in good if x["recipe"] == name]
            strip = [[a for i, a in enumerate(v) if i == 0 or v[i - 1] != "--node-rank"]
                     for v in argvs]  # fmt: skip
            assert all(s == strip[0] for s in strip), name
        else:
            assert addrs == {None}, name


def test_unknown_deprecated_and_invalid_flags_are_named(parsed):
    _, broken = parsed
    for x in broken:
        assert not x["ok"]
        text = "\n".join(x["problems"])
        assert x["expect"] in text, text
        if "sglang_says" in x:
            assert x["sglang_says"] in text, text


# -------------------------------------------------------------- environment allow-list


@pytest.fixture(scope="module")
def allowlist():
    return R.load_allowlist()


def test_recipes_set_only_allow_listed_variables(dry_run, allowlist):
    for x in dry_run:
        for key in x["env"]:
            assert key in allowlist, (x["recipe"], key)


@lru_cache(maxsize=None)
def _package_dir(name):
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent


@lru_cache(maxsize=None)
def _py_text(package):
    return "\n".join(
        p.read_text(errors="replace")
        for p in sorted(_package_dir(package).rglob("*.py"))
    )


def _in_py(package, name):
    return re.search(
        rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", _py_text(package)
    )


def _in_binaries(files, name):
    needle = name.encode() + b"\x00"
    for f in files:
        with (
            open(f, "rb") as fh,
            mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        ):
            i = mm.find(needle)
            while i != -1:
                if i == 0 or not (chr(mm[i - 1]).isalnum() or mm[i - 1] == ord("_")):
                    return True
                i = mm.find(needle, i + 1)
    return False


def _torch_libs():
    return sorted((_package_dir("torch") / "lib").glob("*.so*"))


def _nccl_libs():
    return sorted(
        (_package_dir("torch").parent / "nvidia" / "nccl" / "lib").glob("libnccl.so*")
    )


def test_installed_sglang_is_the_pin():
    assert importlib.metadata.version("sglang") == paths.load_pin()["version"]


@pytest.mark.parametrize("var", sorted(R.load_allowlist()))
def test_allow_list_claim_holds_in_the_pinned_stack(var, allowlist):
    reader = allowlist[var]["reader"]
    assert allowlist[var]["purpose"].strip()
    if reader == "sglang":
        assert _in_py("sglang", var), f"{var}: not read by the installed sglang"
    elif reader == "inert":
        assert not _in_py("sglang", var), f"{var} is read by sglang now: reclassify it"
        sgl_bins = sorted(_package_dir("sglang").rglob("*.so"))
        assert not _in_binaries(sgl_bins, var)
    elif reader == "torch":
        assert _in_py("torch", var) or _in_binaries(_torch_libs(), var), var
    elif reader == "nccl":
        libs = _nccl_libs()
        if not libs:
            pytest.skip("no libnccl.so in this environment (nvidia-nccl wheel)")
        assert _in_binaries(libs, var), f"{var}: not in {libs[0].name}"
    else:
        pytest.fail(f"{var}: unknown reader {reader!r}")


@pytest.mark.parametrize("var", ["VLLM_HOST_IP", "TORCH_NUM_THREADS"])
def test_bring_up_report_variables_are_read_by_nothing(var):
    """Why the GB10 recipe drops them: neither SGLang nor torch (nor NCCL) reads them."""
    assert not _in_py("sglang", var)
    assert not _in_py("torch", var)
    assert not _in_binaries(_torch_libs() + _nccl_libs(), var)


def test_readme_documents_parsers_and_pro_hardware():
    text = (REPO / "recipes" / "README.md").read_text()
    for needle in ("explicit_enable_thinking", "qwen3_coder", "MiMoDetector", "V2.5-Pro",
                   "#37059"):  # fmt: skip
        assert needle in text, needle
