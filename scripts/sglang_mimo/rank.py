"""One node rank of a recipe: its environment and ``sglang.launch_server`` argv, as text.

Needs the recipe validated (``recipes.load_recipe``) and its per-site values resolved
(``recipes.resolve_site``). Pure: nothing runs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sglang_mimo.recipes import (
    HEAD_ADDR_INPUT,
    HEAD_PORT,
    PLACEHOLDER_RE,
    Recipe,
    RecipeError,
    check_head_addr,
    used_placeholders,
)

# Values used by ``--dry-run`` without a recipe: RFC 5737 documentation addresses.
PLACEHOLDER_HEAD_PORT = HEAD_PORT


def placeholder_rank_addr(rank: int) -> str:
    return f"192.0.2.{10 + rank}"


def substitute(text: object, values: Mapping[str, str]) -> str:
    return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], str(text))


@dataclass
class RankLaunch:
    recipe: str
    node_rank: int
    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "node_rank": self.node_rank,
            "env": self.env,
            "argv": self.argv,
        }


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def check_rank(recipe: Recipe, node_rank: int) -> None:
    n = recipe.hardware.nodes
    if not isinstance(node_rank, int) or not 0 <= node_rank < n:
        raise RecipeError(
            f"--node-rank {node_rank} is outside 0..{n - 1} "
            f"(recipe {recipe.name} runs on {n} node{'s' if n > 1 else ''})"
        )


def spec_args(recipe: Recipe) -> list[str]:
    spec = recipe.speculative
    if not spec:
        return []
    argv = [
        "--speculative-algorithm", spec.algorithm,
        "--speculative-num-steps", str(spec.num_steps),
        "--speculative-eagle-topk", str(spec.eagle_topk),
        "--speculative-num-draft-tokens", str(spec.num_draft_tokens),
    ]  # fmt: skip
    if spec.multi_layer_eagle:
        argv.append("--enable-multi-layer-eagle")
    return argv


def render_env(recipe: Recipe, values: Mapping[str, str]) -> dict[str, str]:
    env = {k: substitute(v, values) for k, v in recipe.env_common.items()}
    env.update({k: substitute(v, values) for k, v in recipe.env_per_rank.items()})
    return env


def render_argv(
    recipe: Recipe,
    values: Mapping[str, str],
    node_rank: int,
    head_addr: str | None,
    rank_flags: bool = True,
) -> list[str]:
    argv = []
    for flag, value in recipe.server_args:
        argv.append(flag)
        if value is not None:
            argv.append(substitute(_fmt(value), values))
    argv += spec_args(recipe)
    n = recipe.hardware.nodes
    if n > 1 and rank_flags:
        assert head_addr is not None, "render_rank checks the head address"
        argv += [
            "--nnodes",
            str(n),
            "--node-rank",
            str(node_rank),
            "--dist-init-addr",
            head_addr,
        ]
    return argv


def render_rank(
    recipe: Recipe,
    node_rank: int,
    values: Mapping[str, str],
    head_addr: str | None = None,
) -> RankLaunch:
    """Environment and ``sglang.launch_server`` argv of one node rank."""
    check_rank(recipe, node_rank)
    if recipe.hardware.nodes > 1:
        if not head_addr:
            flag, env = HEAD_ADDR_INPUT
            raise RecipeError(
                f"recipe {recipe.name} is multi-node: give {flag} HOST:PORT "
                f"(rank 0's address and a free port) or set ${env}"
            )
        head_addr = check_head_addr(head_addr)
    return RankLaunch(
        recipe=recipe.name,
        node_rank=node_rank,
        env=render_env(recipe, values),
        argv=render_argv(recipe, values, node_rank, head_addr),
    )


def placeholder_site(recipe: Recipe, node_rank: int) -> dict[str, str]:
    """Site values for a dry run without real inputs (documentation addresses)."""
    values = {}
    for key in used_placeholders(recipe):
        spec = recipe.site[key]
        if key == "rank_addr":
            values[key] = placeholder_rank_addr(node_rank)
        else:
            values[key] = spec.default or spec.example or f"<{key}>"
    return values


def placeholder_head_addr() -> str:
    return f"{placeholder_rank_addr(0)}:{PLACEHOLDER_HEAD_PORT}"


def argv_value(argv: list[str], flag: str) -> str | None:
    for i, tok in enumerate(argv[:-1]):
        if tok == flag:
            return argv[i + 1]
    return None


_ENV_ASSIGN_RE = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_SHELL_VAR_RE = re.compile(r"^\$\{[A-Z_]+\}[A-Za-z0-9_./:-]*$")


def shell_line(argv: list[str], breaks: Collection[int] = ()) -> str:
    """A copy-pasteable command: one flag (or VAR=value) per continuation line, and a
    line break before each token index in ``breaks``."""
    lines: list[list[str]] = [[]]
    prev = None
    for i, tok in enumerate(argv):
        brk = (
            i in breaks
            or tok.startswith("--")
            or tok in ("-e", "-v")
            or _ENV_ASSIGN_RE.match(tok)
        )
        if brk and lines[-1] and prev != "-e":
            lines.append([])
        # "${HOME}/..." stays expandable by the shell that runs the line.
        lines[-1].append(f'"{tok}"' if _SHELL_VAR_RE.match(tok) else shlex.quote(tok))
        prev = tok
    return " \\\n    ".join(" ".join(line) for line in lines)
