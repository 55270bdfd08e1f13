"""export-pr: turn patch N of the series into an upstream SGLang branch and PR body.

On a clean git checkout of upstream SGLang (python/sglang/...), create branch
``mimo/<patch stem>`` at HEAD (or --base) holding two commits:

1. the patch itself, committed by ``scripts/apply_patches.sh --commit`` with a
   one-patch series (``git am --keep-non-patch``: the patch's own author, date
   and message, the bracket tag kept), so ``git format-patch`` of it gives the
   carried patch file back byte for byte;
2. its regression tests (every test in tests/regression marked
   ``fixes(<patch N>)``, plus the unmarked tests of the same file, which pin
   behaviour that must not change) moved into upstream's layout
   ``test/registered/unit/<module>/test_<topic>.py``: tests of other patches
   and the ``fixes`` markers are removed, the file registers itself with
   ``register_cpu_ci`` (``register_cuda_ci`` as well for tests that need a
   GPU) and runs under ``python3 FILE``.

The test is a second commit so that the first one stays identical to the patch
the series carries (one source of truth; reviewers can diff them), and so that
checking out the first commit's parent plus the test shows the test failing.
Upstream squash-merges a PR, so it lands as one commit either way.

A PR body following SGLang's template (Motivation, Modifications, Accuracy
Tests, Benchmarking and Profiling, Checklist) is written from the patch message
and the moved test to --out (default build/pr/<patch stem>.md). With --verify,
the moved test is run (PYTHONPATH=<checkout>/python, --python) on the base and
on the branch, and the outcome goes into the body.

Exit codes: 0 done; 1 the patch does not apply to the checkout, or --verify
found the test not failing before / not passing after; 2 usage (no such patch,
no fixes-test, a Backport: upstream's own fix, or Inappropriate: not to be sent); 3 DIR is not a git checkout of SGLang; 4 the checkout is not
clean or the branch exists.
"""

import ast
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sglang_mimo import paths, series, trees

REGRESSION = paths.REPO / "tests" / "regression"
CPU_REGISTER = 'register_cpu_ci(est_time={t}, suite="base-a-test-cpu")'
CUDA_REGISTER = (
    'register_cuda_ci(est_time={t}, stage="base-a", runner_config="1-gpu-small")'
)


@dataclass
class MovedTest:
    source: Path  # tests/regression/test_x.py (or a helper module it imports)
    dest: str  # test/registered/unit/.../test_x.py (checkout-relative)
    text: str
    fixes_tests: list = field(default_factory=list)
    other_tests: list = field(default_factory=list)
    cuda: list = field(default_factory=list)  # tests that need a CUDA GPU
    partial: list = field(default_factory=list)  # fixes only some of their cases

    @property
    def is_test(self):
        return Path(self.dest).name.startswith("test_")


def find_patch(spec):
    """The series patch named by a number (1, 0001) or a file name."""
    names = series.read_series()
    spec = str(spec)
    if spec.isdigit():
        hits = [n for n in names if n.startswith(f"{int(spec):04d}-")]
    else:
        hits = [n for n in names if n == spec or n == spec + ".patch"]
    if len(hits) != 1:
        raise trees.ToolError(f"no patch {spec!r} in patches/series", 2)
    return series.parse_patch(paths.PATCHES / hits[0])


def _dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


PATCH_NAME = re.compile(r"^\d{4}-[\w.-]+\.patch$")


def _fixes_value(dec, marks, consts=None):
    """The patch a ``pytest.mark.fixes(...)`` decorator (or a name bound to one) names."""
    if isinstance(dec, ast.Call) and _dotted(dec.func) == "pytest.mark.fixes":
        if dec.args and isinstance(dec.args[0], ast.Constant):
            return dec.args[0].value
        if dec.args and isinstance(dec.args[0], ast.Name):
            return (consts or {}).get(dec.args[0].id)
    if isinstance(dec, ast.Name) and dec.id in marks:
        return marks[dec.id]
    return None


def _mark_names(tree):
    """Module-level ``PATCH = "000N-....patch"`` constants and ``FIX = pytest.mark.fixes(...)``
    names: (marks {name: patch}, consts {name: patch}, their statements)."""
    marks, consts, stmts = {}, {}, []
    for stmt in tree.body:
        if not (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            continue
        name = stmt.targets[0].id
        if isinstance(stmt.value, ast.Constant) and PATCH_NAME.match(
            str(stmt.value.value)
        ):
            consts[name] = stmt.value.value
            stmts.append(stmt)
        elif _fixes_value(stmt.value, {}, consts) is not None:
            marks[name] = _fixes_value(stmt.value, {}, consts)
            stmts.append(stmt)
    return marks, consts, stmts


def _strip_param_marks(src, patch_name):
    """Handle ``pytest.param(..., marks=FIX)``: keep this patch's cases without the
    mark, drop other patches' cases. Returns (src, names of the test functions that
    have a case of this patch)."""
    tree = ast.parse(src)
    marks, consts, _ = _mark_names(tree)
    starts = [0]
    for line in src.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))

    def at(lineno, col):
        return starts[lineno - 1] + col

    edits, mine_names = [], set()
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and _dotted(call.func) == "pytest.param"):
            continue
        kw = next((k for k in call.keywords if k.arg == "marks"), None)
        if kw is None:
            continue
        names = (
            kw.value.elts if isinstance(kw.value, (ast.List, ast.Tuple)) else [kw.value]
        )
        values = [_fixes_value(n, marks, consts) for n in names]
        if not any(values) or not all(values):
            continue
        if patch_name in values:
            prev = [*call.args, *[k for k in call.keywords if k is not kw]]
            prev = [
                n
                for n in prev
                if (n.end_lineno, n.end_col_offset) <= (kw.lineno, kw.col_offset)
            ]
            start = (
                at(prev[-1].end_lineno, prev[-1].end_col_offset)
                if prev
                else at(kw.lineno, kw.col_offset)
            )
            edits.append((start, at(kw.end_lineno, kw.end_col_offset), ""))
            mine_names.add(call)
        else:
            end = at(call.end_lineno, call.end_col_offset)
            if src[end : end + 1] == ",":
                end += 1
            edits.append((at(call.lineno, call.col_offset), end, ""))
    for start, end, new in sorted(edits, reverse=True):
        src = src[:start] + new + src[end:]
    # Which tests have a case of this patch: directly, or via a module-level list.
    holders = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(
            c in mine_names for c in ast.walk(stmt.value)
        ):
            holders |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    tests = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                inner = list(ast.walk(d))
                if any(c in mine_names for c in inner) or any(
                    isinstance(n, ast.Name) and n.id in holders for n in inner
                ):
                    tests.add(node.name)
    return src, tests


def upstream_test_source(src, patch_name):
    """Rewrite a tests/regression file for upstream.

    Returns (text, fixes_tests, other_tests, cuda_tests, partial): the tests of
    ``patch_name``, the unmarked tests kept with them, which of both need CUDA, and
    the fixes-tests of which only some parametrized cases are marked.
    """
    src, param_level = _strip_param_marks(src, patch_name)
    tree = ast.parse(src)
    lines = src.splitlines(keepends=True)
    drop = set()  # 0-based line numbers to delete
    replace = {}  # 0-based line -> new text
    marks, consts, stmts = _mark_names(tree)
    for stmt in stmts:
        drop.update(range(stmt.lineno - 1, stmt.end_lineno))
    fixes_tests, others, cuda = [], [], []

    def visit(node, inherited=False, prefix="", inherited_cuda=False):
        decs = node.decorator_list
        needs_cuda = inherited_cuda or any(
            _dotted(d) == "pytest.mark.cuda" for d in decs
        )
        values = {_fixes_value(d, marks, consts) for d in decs} - {None}
        start = min([d.lineno for d in decs] + [node.lineno]) - 1
        if values and patch_name not in values:
            drop.update(range(start, node.end_lineno))
            return
        mine = inherited or patch_name in values or node.name in param_level
        for d in decs:
            if _fixes_value(d, marks, consts) is not None:
                drop.update(range(d.lineno - 1, d.end_lineno))
            elif _dotted(d) == "pytest.mark.cuda":
                indent = lines[d.lineno - 1][: d.col_offset - 1]
                replace[d.lineno - 1] = f"{indent}@requires_cuda\n"
        if isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    visit(sub, mine, f"{node.name}::", needs_cuda)
            return
        if node.name.startswith("test"):
            (fixes_tests if mine else others).append(prefix + node.name)
            if needs_cuda:
                cuda.append(prefix + node.name)

    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            visit(stmt)
    out = [replace.get(i, l) for i, l in enumerate(lines) if i not in drop]
    text = "".join(out)
    text = re.sub(r"\s*\((?:patch|patches) \d{4}[^)]*\)", "", text, count=1)
    text = _drop_unused_imports(text)
    text = _register(text, bool(cuda), bool(others or fixes_tests))
    partial = [t for t in fixes_tests if t.split("::")[-1] in param_level]
    return text, fixes_tests, others, cuda, partial


def _drop_unused_imports(text):
    tree = ast.parse(text)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {
        _dotted(n).split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    }
    lines = text.splitlines(keepends=True)
    edits = {}
    for stmt in tree.body:
        if not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        keep = [
            a
            for a in stmt.names
            if (a.asname or a.name).split(".")[0] in used or a.name == "*"
        ]
        if len(keep) == len(stmt.names):
            continue
        new = ""
        if keep:
            names = ", ".join(
                a.name + (f" as {a.asname}" if a.asname else "") for a in keep
            )
            if isinstance(stmt, ast.Import):
                new = f"import {names}\n"
            else:
                new = f"from {'.' * stmt.level}{stmt.module or ''} import {names}\n"
        edits[stmt.lineno - 1] = (stmt.end_lineno, new)
    out, i = [], 0
    while i < len(lines):
        if i in edits:
            end, new = edits[i]
            out.append(new)
            i = end
        else:
            out.append(lines[i])
            i += 1
    return "".join(out)


def _register(text, cuda, any_tests, est_time=30):
    """Add the CI registration after the imports, requires_cuda, and a main block."""
    tree = ast.parse(text)
    imports = [s for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    at = imports[-1].end_lineno if imports else 0
    lines = text.splitlines(keepends=True)
    names = {(a.asname or a.name) for s in imports for a in s.names}
    head = []
    for mod in ("sys", "pytest") + (("torch",) if cuda else ()):
        if mod not in names:
            head.append(f"import {mod}\n")
    block = ["from sglang.test.ci.ci_register import register_cpu_ci\n"]
    if cuda:
        block.append("from sglang.test.ci.ci_register import register_cuda_ci\n")
    block.append("\n")
    block.append(CPU_REGISTER.format(t=est_time) + "\n")
    if cuda:
        block.append(CUDA_REGISTER.format(t=est_time) + "\n")
        block.append(
            "\nrequires_cuda = pytest.mark.skipif(\n"
            '    not torch.cuda.is_available(), reason="needs a CUDA GPU"\n)\n'
        )
    lines[at:at] = head + block
    body = "".join(lines).rstrip("\n")
    body += '\n\n\nif __name__ == "__main__":\n    sys.exit(pytest.main([__file__, "-v"]))\n'
    return body


def _format(text):
    """black + isort, when the running interpreter has them."""
    for cmd in (
        [
            sys.executable,
            "-m",
            "isort",
            "--profile",
            "black",
            "-p",
            "sglang",
            "-q",
            "-",
        ],
        [sys.executable, "-m", "black", "-q", "-"],
    ):
        proc = subprocess.run(cmd, input=text, capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout:
            text = proc.stdout
    return text


def test_dir_for(patch):
    """Upstream's unit-test folder mirroring the first source file the patch touches."""
    src = next((f for f in patch.files if f.endswith(".py")), patch.files[0])
    rel = src.removeprefix("python/sglang/").removeprefix("srt/")
    return Path("test/registered/unit") / Path(rel).parent


def local_imports(text):
    """Sibling modules of tests/regression that a test file imports (not conftest)."""
    found = []
    for stmt in ast.parse(text).body:
        names = []
        if isinstance(stmt, ast.ImportFrom) and not stmt.level and stmt.module:
            names = [stmt.module]
        elif isinstance(stmt, ast.Import):
            names = [a.name for a in stmt.names]
        for n in names:
            path = REGRESSION / f"{n}.py"
            if "." not in n and n != "conftest" and path.exists():
                found.append(path)
    return found


def moved_tests(patch, checkout):
    out = []
    for path in sorted(REGRESSION.glob("test_*.py")):
        src = path.read_text(encoding="utf-8")
        if patch.name not in src:
            continue
        text, fixes, others, cuda, partial = upstream_test_source(src, patch.name)
        if not fixes:
            continue
        folder = test_dir_for(patch)
        dest = folder / path.name
        if (Path(checkout) / dest).exists():
            stem = re.sub(r"^\d{4}-", "", patch.name.removesuffix(".patch"))
            dest = folder / f"test_{stem.replace('-', '_')}.py"
        out.append(
            MovedTest(
                path, dest.as_posix(), _format(text), fixes, others, cuda, partial
            )
        )
        for helper in local_imports(text):  # e.g. mimo_helpers.py beside the tests
            hdest = (folder / helper.name).as_posix()
            if hdest not in {m.dest for m in out}:
                out.append(MovedTest(helper, hdest, _format(helper.read_text())))
    if not out:
        raise trees.ToolError(
            f"no test in tests/regression is marked fixes({patch.name!r})", 2
        )
    return out


def run_moved_test(checkout, dests, python):
    """pytest on the moved files with PYTHONPATH=<checkout>/python: (rc, output)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(checkout) / "python"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("SGLANG_MIMO_TREE", None)
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *dests],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=env,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _outcomes(output):
    """{test id: PASSED|FAILED|...} from pytest -rA's short summary."""
    found = {}
    for m in re.finditer(r"^(PASSED|FAILED|ERROR) (\S+::\S+)", output, re.M):
        found[m.group(2)] = m.group(1)
    return found


def verify(checkout, base, moved, python):
    """Run the moved tests on the base (a worktree) and on the branch."""
    dests = [m.dest for m in moved if m.is_test]
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = Path(tmp) / "base"
        trees.git(checkout, "worktree", "add", "-q", "--detach", before_tree, base)
        try:
            for m in moved:
                (before_tree / m.dest).parent.mkdir(parents=True, exist_ok=True)
                (before_tree / m.dest).write_text(m.text, encoding="utf-8")
            rc_before, out_before = run_moved_test(before_tree, dests, python)
        finally:
            trees.git(checkout, "worktree", "remove", "--force", before_tree)
    rc_after, out_after = run_moved_test(checkout, dests, python)
    return {
        "before": (rc_before, _outcomes(out_before), out_before),
        "after": (rc_after, _outcomes(out_after), out_after),
    }


def verified(moved, result):
    """Every fixes-test failed before (for ``partial`` ones: a case of it), and
    every moved test passed after."""
    before, after = result["before"][1], result["after"][1]
    for m in moved:
        for t in m.fixes_tests:
            ids = [
                k
                for k in before
                if k == f"{m.dest}::{t}" or k.startswith(f"{m.dest}::{t}[")
            ]
            if not ids and t in m.cuda:
                continue  # skipped without a GPU
            failed = [before[k] == "FAILED" for k in ids]
            if not ids or not (any(failed) if t in m.partial else all(failed)):
                return False
    return (
        result["after"][0] == 0
        and bool(after)
        and all(v == "PASSED" for v in after.values())
    )


def pr_body(patch, moved, result=None, stacked_on=(), base=None):
    test_files = ", ".join(f"`{m.dest}`" for m in moved if m.is_test)
    helpers = [m.dest for m in moved if not m.is_test]
    if helpers:
        test_files += f" (helpers: {', '.join(f'`{h}`' for h in helpers)})"
    fixes = [t for m in moved for t in m.fixes_tests]
    others = [t for m in moved for t in m.other_tests]
    cuda = {t for m in moved for t in m.cuda}
    model_side = [
        f
        for f in patch.files
        if f.startswith(("python/sglang/srt/models/", "python/sglang/srt/layers/"))
    ]
    lines = [
        f"<!-- title: {patch.subject} -->",
        "",
        "## Motivation",
        "",
        patch.section("Motivation"),
        "",
        f"Without this change: {patch.trailer('Breaks-Without')}.",
    ]
    if patch.bugs:
        lines += [
            "",
            "Fixes " + ", ".join(f"#{u.rsplit('/', 1)[1]}" for u in patch.bugs) + ".",
        ]
    if patch.related_prs:
        lines += [
            "",
            "Related: "
            + "; ".join(f"#{n} ({why})" for n, why in patch.related_prs)
            + ".",
        ]
    if stacked_on:
        lines += [
            "",
            "Stacked on: "
            + "; ".join(
                f"{p.subject}" + (f" (#{p.fix_pr})" if p.fix_pr else "")
                for p in stacked_on
            )
            + ". Review and merge that first.",
        ]
    elif base:
        lines += [
            "",
            f"Based on `{base}` (an earlier patch of the same series this one needs "
            "at run time); merge that first if it is not upstream yet.",
        ]
    lines += [
        "",
        "## Modifications",
        "",
        patch.section("Modifications"),
        "",
        f"Tests: {test_files} (no server, no model weights; registered with "
        f"`register_cpu_ci`{' and `register_cuda_ci`' if cuda else ''}).",
        "",
        "## Accuracy Tests",
        "",
    ]
    if model_side:
        lines += [
            "TODO before review: this change touches model-side code "
            f"({', '.join(f'`{f}`' for f in model_side)}); run the accuracy "
            "evaluation (https://docs.sglang.ai/references/accuracy_evaluation.html) "
            "on a MiMo checkpoint and paste the result here.",
            "",
        ]
    else:
        lines += [
            "No model, layer or kernel code changes, so no accuracy evaluation "
            "was run.",
            "",
        ]
    lines += ["Unit tests:", ""]
    gpu = " (needs a CUDA GPU)"
    lines += [
        f"- `{t}`: fails without this change, passes with it"
        + (gpu if t in cuda else "")
        for t in fixes
    ]
    lines += [
        f"- `{t}`: behaviour that must not change; passes with and without it"
        + (gpu if t in cuda else "")
        for t in others
    ]
    if result:
        rc_b, before, _ = result["before"]
        rc_a, after, _ = result["after"]
        nfail = sum(1 for v in before.values() if v == "FAILED")
        npass = sum(1 for v in after.values() if v == "PASSED")
        lines += [
            "",
            f"`python3 -m pytest {' '.join(m.dest for m in moved if m.is_test)}`: "
            "before this "
            f"change {nfail} failed of {len(before)}; after it {npass} passed of "
            f"{len(after)}.",
        ]
    lines += [
        "",
        "## Benchmarking and Profiling",
        "",
        (
            "TODO before review: benchmark the changed model path "
            "(https://docs.sglang.ai/references/benchmark_and_profiling.html)."
            if model_side
            else "Not run: no model, layer or kernel code changes (see Modifications)."
        ),
        "",
        "## Checklist",
        "",
        "- [x] Format your code according to the Format code with pre-commit.",
        "- [x] Add unit tests according to the Run and add unit tests.",
        "- [ ] Update documentation according to Write documentations.",
        "- [ ] Provide accuracy and speed benchmark results according to Test the "
        "accuracy and Benchmark the speed.",
        "",
    ]
    return "\n".join(lines)


def _why(patch, states, proc):
    """The apply script's reason, and which earlier patches this one stacks on."""
    if not states:
        return proc.stderr.strip()
    what = states[0].status + (f": {states[0].detail}" if states[0].detail else "")
    earlier = [
        p.name
        for p in series.load_series()[: series.read_series().index(patch.name)]
        if set(p.files) & set(patch.files)
    ]
    if earlier and states[0].status == "conflicts":
        what += (
            f"; it is stacked on {', '.join(earlier)} (same files): export those "
            "first and pass --base <their branch>"
        )
    return what


def export(
    spec, checkout, out=None, base=None, branch=None, do_verify=False, python=None
):
    patch = find_patch(spec)
    if series.status_word(patch) == "Backport":
        raise trees.ToolError(
            f"{patch.name} is a backport of upstream's own fix ({patch.status_url}): "
            "nothing to export; only our own (Pending) patches become PRs",
            2,
        )
    if series.status_word(patch) == "Inappropriate":
        raise trees.ToolError(
            f"{patch.name} is not to be sent upstream "
            f"({series.inappropriate_reason(patch)}): nothing to export; only our "
            "own (Pending) patches become PRs",
            2,
        )
    checkout = Path(checkout).resolve()
    if not (checkout / "python" / "sglang" / "__init__.py").exists():
        raise trees.ToolError(
            f"{checkout} is not a checkout of SGLang (python/sglang)", 3
        )
    if trees.git(checkout, "rev-parse", "--show-toplevel", check=False).strip() != str(
        checkout
    ):
        raise trees.ToolError(f"{checkout} is not the top of a git repository", 3)
    if trees.git(checkout, "status", "--porcelain", "--untracked-files=no").strip():
        raise trees.ToolError(f"{checkout} has uncommitted changes", 4)
    stem = patch.name.removesuffix(".patch")
    branch = branch or f"mimo/{stem}"
    if trees.git(
        checkout, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False
    ).strip():
        raise trees.ToolError(f"branch {branch} already exists in {checkout}", 4)
    base_sha = trees.git(checkout, "rev-parse", f"{base or 'HEAD'}^{{commit}}").strip()
    moved = moved_tests(patch, checkout)

    previous = trees.git(
        checkout, "symbolic-ref", "-q", "--short", "HEAD", check=False
    ).strip()
    with tempfile.TemporaryDirectory() as tmp:
        one = trees.single_patch_series(patch.path, Path(tmp) / "patches")
        trees.git(checkout, "checkout", "-q", "-b", branch, base_sha)
        try:
            states, proc = trees.check(checkout, series_file=one)
            if not states or states[0].status != "applies":
                raise trees.ToolError(
                    f"{patch.name} does not apply to {base or 'HEAD'} of {checkout}: "
                    f"{_why(patch, states, proc)}",
                    1,
                )
            proc = trees.run_apply("--commit", "--force", "--series", one, checkout)
            if proc.returncode != 0:
                raise trees.ToolError(
                    f"apply_patches.sh --commit: {proc.stderr.strip()}", 1
                )
            for m in moved:
                dest = checkout / m.dest
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(m.text, encoding="utf-8")
                trees.git(checkout, "add", m.dest)
            message = f"[{patch.tag}] Add unit test: {patch.title}\n\n" + "\n".join(
                f"{m.dest}: fails without the previous commit "
                f"({', '.join(m.fixes_tests)}), passes with it."
                for m in moved
                if m.is_test
            )
            env = None
            if not trees.git(checkout, "config", "user.email", check=False).strip():
                env = {
                    k: v
                    for k, v in trees.GIT_IDENT.items()
                    if k.startswith("GIT_COMMITTER")
                }
            trees.git(
                checkout,
                "commit",
                "-q",
                f"--author={patch.author}",
                f"--date={patch.date}",
                "-m",
                message + "\n",
                env=env,
            )
        except Exception:
            trees.git(
                checkout, "checkout", "-q", "-f", previous or base_sha, check=False
            )
            trees.git(checkout, "branch", "-D", branch, check=False)
            raise
    result = (
        verify(checkout, base_sha, moved, python or sys.executable)
        if do_verify
        else None
    )
    out = Path(out) if out else trees.BUILD / "pr" / f"{stem}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    stacked_on = []
    if base:
        stacked_on = [
            p
            for p in series.load_series()[: series.read_series().index(patch.name)]
            if set(p.files) & set(patch.files)
        ]
    out.write_text(pr_body(patch, moved, result, stacked_on, base), encoding="utf-8")
    return patch, branch, base_sha, moved, out, result


def run(args):
    try:
        patch, branch, base, moved, out, result = export(
            args.patch,
            args.checkout,
            args.out,
            args.base,
            args.branch,
            args.verify,
            args.python,
        )
    except trees.ToolError as e:
        print(f"sglang-mimo export-pr: error: {e}", file=sys.stderr)
        return e.code
    print(
        f"branch {branch} in {args.checkout}: {patch.name} + "
        f"{len(moved)} test file(s) on {base[:12]}"
    )
    for m in moved:
        print(
            f"  {m.dest}: {len(m.fixes_tests)} fixes-test(s), "
            f"{len(m.other_tests)} unchanged-behaviour test(s)"
            if m.is_test
            else f"  {m.dest}: helper module the tests import"
        )
    print(f"PR body: {out}")
    if result:
        before, after = result["before"][1], result["after"][1]
        ok = verified(moved, result)
        for label, got in (("before", before), ("after", after)):
            counts = {v: list(got.values()).count(v) for v in sorted(set(got.values()))}
            print(f"verify: {label} the patch: {counts}")
        if not ok:
            print(
                "verify: the moved test does not fail before and pass after the patch",
                file=sys.stderr,
            )
            return 1
    return 0


def add_parser(sub):
    p = sub.add_parser(
        "export-pr",
        help="make an upstream branch and PR body for patch N",
        description=__doc__,
    )
    p.add_argument("patch", help="patch number (1, 0001) or file name")
    p.add_argument("--checkout", required=True, help="git checkout of upstream SGLang")
    p.add_argument("--out", help="PR body file (default build/pr/<patch>.md)")
    p.add_argument("--base", help="start the branch here (default HEAD)")
    p.add_argument("--branch", help="branch name (default mimo/<patch stem>)")
    p.add_argument(
        "--verify", action="store_true", help="run the moved test before and after"
    )
    p.add_argument("--python", help="interpreter for --verify (default: this one)")
    p.set_defaults(func=run)
