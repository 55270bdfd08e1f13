"""audit: prove on an SGLang tree that the two topics dropped from the series stay fixed.

Checks (static: the tree's Python is parsed, never imported, so any release works):

arch-names   every place in sglang/ that names one MiMo-V2 text architecture
             (a string or class in a list, tuple, set, dict, call or comparison)
             names both MiMoV2ForCausalLM and MiMoV2FlashForCausalLM, except the
             places listed in EXEMPT (multimodal-only by design);
alias        models/mimo_v2.py still defines MiMoV2FlashForCausalLM as a subclass
             of MiMoV2ForCausalLM and lists both in EntryClass;
mtp          configs/model_config.py still maps a draft of either name to
             MiMoV2MTP, and models/mimo_v2_nextn.py still defines it;
audio-kernel models/mimo_audio.py, and the attention layers it builds on, import
             no Hopper-only kernel (flash_attn, fa3, sgl_kernel.flash_attn)
             unconditionally at module level.

A gap is printed as ``FILE:LINE: check: what is wrong`` (FILE relative to the
directory holding sglang/). Exit codes: 0 no gap; 1 a gap; 3 TREE is not an
SGLang tree; 5 the pinned wheel could not be fetched.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sglang_mimo import trees

TEXT_ARCHS = ("MiMoV2ForCausalLM", "MiMoV2FlashForCausalLM")
# Places that name only MiMoV2ForCausalLM on purpose, keyed by file and scope
# (enclosing class/function, then the assigned name), never by line number, so
# that they are recognised on every release.
EXEMPT = {
    ("sglang/srt/configs/model_config.py", "MIMO_V2_MULTIMODAL_ARCHS"): (
        "multimodal-only: the architectures whose checkpoints carry the vision and "
        "audio towers; MiMoV2FlashForCausalLM names text-only checkpoints"
    ),
    (
        "sglang/srt/arg_groups/pd_disaggregation_hook.py",
        "handle_encoder_disaggregation",
    ): "multimodal-only: encoder disaggregation moves the vision/audio encoder",
    ("sglang/srt/multimodal/processors/mimo_v2.py", "MiMoV2Processor.models"): (
        "multimodal-only: the omni processor is registered for the multimodal class"
    ),
    (
        "sglang/srt/entrypoints/openai/transcription_adapters/mimo_v2.py",
        "MiMoV2Adapter",
    ): (
        "multimodal-only: transcription needs the audio tower (added by patch 0004; "
        "audited on patched trees)"
    ),
    ("sglang/srt/arg_groups/model_hook.py", "handle_model_specific_adjustments"): (
        "nested in the branch that names both; checks the fused-qkv TP layout of "
        "the multimodal checkpoints (a no-op for split layouts)"
    ),
}
HOPPER_MODULE = re.compile(
    r"(^|\.)(flash_attn\w*|fa3\w*|vllm_flash_attn|flash_attention_v3)(\.|$)"
)
HOPPER_NAME = re.compile(r"^(flash_attn\w*|fa3\w*)$")

# (file, line, scope, the text architectures named there)
Place = tuple[str, int, str, set[str]]
# (file, line, scope, why EXEMPT excuses it)
Exempted = tuple[str, int, str, str]


@dataclass
class Finding:
    file: str
    line: int
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.check}: {self.message}"


def _parse(pkg: str | Path, rel: str) -> ast.Module:
    path = Path(pkg) / rel
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _with_parents(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child._parent = node  # type: ignore[attr-defined]
    return tree


def _parent(node: ast.AST) -> ast.AST | None:
    """The node ``_with_parents`` recorded as holding ``node`` (None at the top)."""
    parent: ast.AST | None = getattr(node, "_parent", None)
    return parent


def _scope(node: ast.AST) -> str:
    """Enclosing class/function names, then the name the statement assigns."""
    names: list[str] = []
    assigned: str | None = None
    cur: ast.AST = node
    while (up := _parent(cur)) is not None:
        cur = up
        if isinstance(cur, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(cur.name)
        elif assigned is None and isinstance(cur, (ast.Assign, ast.AnnAssign)):
            targets = cur.targets if isinstance(cur, ast.Assign) else [cur.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                assigned = targets[0].id
    return ".".join(list(reversed(names)) + ([assigned] if assigned else []))


def _arch_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and node.value in TEXT_ARCHS:
        return node.value
    if isinstance(node, ast.Name) and node.id in TEXT_ARCHS:
        return node.id
    return None


def _group(node: ast.AST) -> ast.expr | None:
    """The list/tuple/set/dict/call/comparison a name occurs in, or None."""
    parent = _parent(node)
    if isinstance(parent, (ast.Tuple, ast.List, ast.Set)):
        return parent
    if isinstance(node, ast.Name):
        return None  # class references count only inside registries (lists)
    if isinstance(parent, ast.Dict) and any(k is node for k in parent.keys):
        return parent
    if isinstance(parent, ast.Call):
        return parent
    if isinstance(parent, ast.Compare):
        group: ast.expr = parent
        while isinstance(up := _parent(group), ast.BoolOp):
            group = up
        return group
    return None


def arch_name_places(pkg: str | Path) -> list[Place]:
    """[(file, line, scope, names)] for every place naming a MiMo-V2 text arch."""
    pkg = Path(pkg)
    places: list[Place] = []
    for path in sorted((pkg / "sglang").rglob("*.py")):
        rel = path.relative_to(pkg).as_posix()
        if rel.startswith("sglang/test/"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if not any(a in text for a in TEXT_ARCHS):
            continue
        try:
            tree = _with_parents(ast.parse(text, filename=str(path)))
        except SyntaxError:
            continue
        groups: dict[int, tuple[ast.expr, set[str]]] = {}
        for node in ast.walk(tree):
            arch = _arch_of(node)
            if arch is None:
                continue
            group = _group(node)
            if group is None:
                continue
            entry = groups.setdefault(id(group), (group, set()))
            entry[1].add(arch)
        for group, names in groups.values():
            places.append((rel, group.lineno, _scope(group), names))
    return sorted(places, key=lambda p: (p[0], p[1]))


def check_arch_names(
    pkg: str | Path, exempt: Mapping[tuple[str, str], str] | None = None
) -> tuple[list[Finding], list[Exempted], list[tuple[str, int, str]]]:
    """(findings, exempted, covered): gaps, places excused by EXEMPT, places naming both."""
    exempt = EXEMPT if exempt is None else exempt
    findings: list[Finding] = []
    exempted: list[Exempted] = []
    covered: list[tuple[str, int, str]] = []
    for rel, line, scope, names in arch_name_places(pkg):
        if len(names) == len(TEXT_ARCHS):
            covered.append((rel, line, scope))
            continue
        reason = exempt.get((rel, scope))
        if reason and names == {"MiMoV2ForCausalLM"}:
            exempted.append((rel, line, scope, reason))
            continue
        missing = ", ".join(sorted(set(TEXT_ARCHS) - names))
        findings.append(
            Finding(
                rel,
                line,
                "arch-names",
                f"names {', '.join(sorted(names))} but not {missing}"
                + (f" (in {scope})" if scope else ""),
            )
        )
    return findings, exempted, covered


def _class_defs(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _entry_names(tree: ast.Module) -> tuple[ast.Assign | None, set[str]]:
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "EntryClass" for t in n.targets
        ):
            return n, {e.id for e in ast.walk(n.value) if isinstance(e, ast.Name)}
    return None, set()


def check_alias(pkg: str | Path) -> list[Finding]:
    rel = "sglang/srt/models/mimo_v2.py"
    if not (Path(pkg) / rel).exists():
        return [Finding(rel, 0, "alias", "file is missing")]
    tree = _parse(pkg, rel)
    findings = []
    classes = _class_defs(tree)
    alias = classes.get("MiMoV2FlashForCausalLM")
    if alias is None:
        findings.append(
            Finding(rel, 1, "alias", "class MiMoV2FlashForCausalLM is not defined")
        )
    elif not any(
        isinstance(b, ast.Name) and b.id == "MiMoV2ForCausalLM" for b in alias.bases
    ):
        findings.append(
            Finding(
                rel,
                alias.lineno,
                "alias",
                "MiMoV2FlashForCausalLM does not subclass MiMoV2ForCausalLM",
            )
        )
    node, names = _entry_names(tree)
    for arch in TEXT_ARCHS:
        if arch not in names:
            findings.append(
                Finding(
                    rel,
                    node.lineno if node else 1,
                    "alias",
                    f"EntryClass does not list {arch}",
                )
            )
    return findings


def _names_in(node: ast.AST) -> set[str]:
    out: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.add(n.id)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            out.add(n.value)
    return out


def check_mtp(pkg: str | Path) -> list[Finding]:
    rel = "sglang/srt/configs/model_config.py"
    findings: list[Finding] = []
    tree = _with_parents(_parse(pkg, rel))
    consts: dict[str, set[str]] = {}
    for s in tree.body:
        if isinstance(s, ast.Assign) and len(s.targets) == 1:
            t = s.targets[0]
            if isinstance(t, ast.Name):
                consts[t.id] = _names_in(s.value)
    mapped = False
    for n in ast.walk(tree):
        if not (
            isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Constant)
            and n.value.value == "MiMoV2MTP"
        ):
            continue
        cur: ast.AST | None = n
        while cur is not None and not isinstance(cur, ast.If):
            cur = _parent(cur)
        if not isinstance(cur, ast.If):
            continue
        named = _names_in(cur.test)
        for name in list(named):
            named |= consts.get(name, set())
        if "is_draft_model" in named and set(TEXT_ARCHS) <= named:
            mapped = True
    if not mapped:
        findings.append(
            Finding(
                rel,
                1,
                "mtp",
                "no branch maps a draft of MiMoV2ForCausalLM and "
                "MiMoV2FlashForCausalLM to MiMoV2MTP",
            )
        )
    rel = "sglang/srt/models/mimo_v2_nextn.py"
    tree = _parse(pkg, rel)
    if "MiMoV2MTP" not in _class_defs(tree):
        findings.append(Finding(rel, 1, "mtp", "class MiMoV2MTP is not defined"))
    node, names = _entry_names(tree)
    if "MiMoV2MTP" not in names:
        findings.append(
            Finding(
                rel, node.lineno if node else 1, "mtp", "EntryClass lacks MiMoV2MTP"
            )
        )
    return findings


def _hopper_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, what) for unconditional module-level imports of Hopper-only kernels."""
    out: list[tuple[int, str]] = []
    for stmt in tree.body:  # module level only; if/try/def bodies are conditional
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                if HOPPER_MODULE.search(a.name):
                    out.append((stmt.lineno, f"import {a.name}"))
        elif isinstance(stmt, ast.ImportFrom):
            mod = stmt.module or ""
            bad = [a.name for a in stmt.names if HOPPER_NAME.match(a.name)]
            if HOPPER_MODULE.search(mod) or bad:
                out.append(
                    (
                        stmt.lineno,
                        f"from {mod} import {', '.join(a.name for a in stmt.names)}",
                    )
                )
    return out


def check_audio_kernel(pkg: str | Path) -> list[Finding]:
    rel = "sglang/srt/models/mimo_audio.py"
    pkg = Path(pkg)
    if not (pkg / rel).exists():
        return [Finding(rel, 0, "audio-kernel", "file is missing")]
    tree = _parse(pkg, rel)
    files = [(rel, tree)]
    for stmt in tree.body:  # the attention layers mimo_audio builds on
        if isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith(
            "sglang.srt.layers.attention"
        ):
            dep = (stmt.module or "").replace(".", "/") + ".py"
            if (pkg / dep).exists():
                files.append((dep, _parse(pkg, dep)))
    findings: list[Finding] = []
    for f, t in files:
        for line, what in _hopper_imports(t):
            via = "" if f == rel else f" (imported by {rel})"
            findings.append(
                Finding(
                    f,
                    line,
                    "audio-kernel",
                    f"`{what}` is a Hopper-only kernel imported unconditionally "
                    f"at module level{via}",
                )
            )
    return findings


def audit(
    tree: str | Path,
) -> tuple[list[Finding], list[Exempted], list[tuple[str, int, str]]]:
    """(findings, exempted, covered) for an SGLang tree of either layout."""
    pkg = trees.package_dir(tree)
    findings, exempted, covered = check_arch_names(pkg)
    findings += check_alias(pkg) + check_mtp(pkg) + check_audio_kernel(pkg)
    return findings, exempted, covered


def report(tree: str | Path, out: Callable[[str], object] = print) -> list[Finding]:
    """Print the audit of ``tree``; return the findings."""
    findings, exempted, covered = audit(tree)
    for f in findings:
        out(str(f))
    for rel, line, scope, reason in exempted:
        out(f"{rel}:{line}: arch-names: exempt ({scope}): {reason}")
    out(
        f"audit: {len(findings)} gap(s) in {tree}: {len(covered)} places name both "
        f"MiMo-V2 text architectures, {len(exempted)} exempt; alias class, MTP draft "
        "mapping and mimo_audio kernel imports checked"
    )
    return findings


def run(args: argparse.Namespace) -> int:
    tree = args.tree or trees.pinned_tree()
    findings = report(tree)
    return 1 if findings else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        help="prove the dropped topics (arch aliases, FA3 import) stay fixed",
        description=__doc__,
    )
    p.add_argument("tree", nargs="?", help="SGLang tree (default: the pinned base)")
    p.set_defaults(func=run)
