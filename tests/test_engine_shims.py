"""The engine tier's CPU stand-ins never sit over code a carried patch changes.

``tests/engine/shims/sglang_mimo_cpu_shims.py`` lists in ``SHIMS`` every SGLang function
it wraps or replaces. Each must exist in the pinned release, and no patch of the series
may add, remove or change a line inside any of them (checked on both sides of every
hunk: removed lines against the unpatched file, added lines against the patched one).
"""

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from sglang_mimo import paths, series

SHIMS_FILE = Path(__file__).parent / "engine" / "shims" / "sglang_mimo_cpu_shims.py"
HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def load_shims():
    spec = importlib.util.spec_from_file_location("cpu_shims", SHIMS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SHIMS, module.ADDED


def functions_by_line(source):
    """{line number: qualified name of the innermost function holding it}."""
    out = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    for line in range(child.lineno, child.end_lineno + 1):
                        out[line] = name
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return out


def changed_lines(patch_text):
    """{file: (removed old-side line numbers, added new-side line numbers)}."""
    out, current, old, new = {}, None, 0, 0
    for line in patch_text.splitlines():
        if line.startswith("+++ "):
            current = line[4:].removeprefix("b/")
            out.setdefault(current, (set(), set()))
        elif line.startswith("--- "):
            continue
        elif m := HUNK.match(line):
            old, new = int(m.group(1)), int(m.group(2))
        elif current and line.startswith("+"):
            out[current][1].add(new)
            new += 1
        elif current and line.startswith("-"):
            out[current][0].add(old)
            old += 1
        elif current and line.startswith(" "):
            old += 1
            new += 1
    return out


def site_path(upstream_path):
    return upstream_path.removeprefix("python/")


def test_every_shim_names_a_function_of_the_pinned_release(pristine_tree):
    shims, added = load_shims()
    for (path, qualname), why in shims.items():
        source = (pristine_tree / site_path(path)).read_text()
        assert qualname in set(functions_by_line(source).values()), (
            f"{path}:{qualname} ({why}) is not a function of the pinned release"
        )
    for (path, qualname), why in added.items():
        source = (pristine_tree / site_path(path)).read_text()
        assert qualname not in set(functions_by_line(source).values()), (
            f"{path}:{qualname} exists in the pinned release: the stand-in that adds "
            f"it ({why}) would replace it"
        )


@pytest.mark.parametrize("patch", series.read_series())
def test_no_shim_replaces_a_function_the_patch_changes(patch, trees):
    shims, added = load_shims()
    text = (paths.PATCHES / patch).read_text()
    touched = set()
    for path, (removed, added) in changed_lines(text).items():
        for tree, lines in (("unpatched", removed), ("patched", added)):
            file = trees[tree] / site_path(path)
            if not lines or not file.exists():
                continue
            names = functions_by_line(file.read_text())
            touched |= {(path, names[n]) for n in lines if n in names}
    overlap = sorted((set(shims) | set(added)) & touched)
    assert not overlap, f"{patch} changes functions the CPU stand-ins replace: {overlap}"
