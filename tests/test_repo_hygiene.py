"""Small promises about the repository's own text: one apply implementation, comments
that agree with the pin, no pointers to documents the project does not ship."""

import re
import subprocess
from pathlib import Path

from conftest import project_lines
from sglang_mimo import paths

REPO = paths.REPO


def test_install_sh_names_the_pinned_nccl_floor():
    """docker/install.sh's comments name the floor of patches/pin.json, no other."""
    nccl = paths.load_pin()["nccl"]
    comments = "\n".join(
        line
        for line in (REPO / "docker" / "install.sh").read_text().splitlines()
        if line.lstrip().startswith("#")
    )
    assert nccl["min_version"] in comments
    named = set(re.findall(r"\b2\.\d+\.\d+\b", comments))
    # 2.28.9: the release with the deadlock the floor is about.
    assert named <= {"2.28.9", nccl["min_version"], nccl["version"]}, named


def test_apply_script_is_only_an_entry_point():
    """No second copy of the apply logic: the bash script only starts the module."""
    text = (REPO / "scripts" / "apply_patches.sh").read_text()
    assert "sglang_mimo.apply" in text
    for logic in ("git apply", "patch -p1", "git am", "pip download", "eval"):
        assert logic not in text, logic


def test_tools_call_the_engine_not_the_script():
    """No tool runs apply_patches.sh and reads what it prints: they call
    sglang_mimo.engine in-process (the script is the users' entry point)."""
    tools = sorted((REPO / "scripts" / "sglang_mimo").glob("*.py"))
    for path in [p for p in tools if p.name != "paths.py"]:  # paths names it
        text = path.read_text()
        assert "APPLY_SCRIPT" not in text, path.name
        assert not re.search(r"/\s*[\"']apply_patches\.sh", text), path.name


def test_no_pointer_to_unshipped_notes():
    """Nothing points at the development machine's notes or paths."""
    hits = project_lines(
        r"shared/notes|/work/(?:main|shared|coord)",
        skip={"test_repo_hygiene.py"},
        flags=0,
    )
    assert not hits, "\n".join(hits)


def test_apply_module_needs_only_the_standard_library():
    """apply_patches.sh runs it with ``python3 -I -S``: no site-packages at all."""
    proc = subprocess.run(
        [
            "python3",
            "-I",
            "-S",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import sglang_mimo.apply",
            str(REPO / "scripts"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------ text that points outside the tree
#
# The project's text (docs, recipes, comments and docstrings of the code, test
# comments) names only what the repository holds: a repo-relative path must exist, a
# document named by its file name must be one of the tree's, and an issue or pull
# request is named upstream-qualified (`sglang#37059`, `sgl-project/sglang#37059`, or a
# link to github.com/sgl-project/sglang/...), never by a bare number sign and number or
# as the word issue and a number (a tracker the repository does not carry). Code's other string literals are data (the
# tests' made-up paths) and are not read.

TOP_DIRS = ("docker", "docs", "patches", "recipes", "scripts", "tests")
_SEGMENT = r"[\w.@+*<>{}-]*"
REPO_PATH = re.compile(
    rf"(?<![\w./~$@-])((?:{'|'.join(TOP_DIRS)})/{_SEGMENT}(?:/{_SEGMENT})*)"
)
DOC_NAME = re.compile(r"(?<![\w./-])([\w-]+\.md)\b")
ISSUE_WORD = re.compile(
    r"(?i:\bissues?)\s+#?\d+\b|\b(?:PRs?|[Pp]ull requests?)\s+#?\d+\b"
)
BARE_NUMBER = re.compile(r"(?<![\w/&])#\d{3,}\b")
UPSTREAM_LINK = re.compile(
    r"\[[^\]]*\]\(https://github\.com/sgl-project/sglang/[^)]*\)"
)
# Placeholders in paths: NAME, NAME.py, NNNN-what.patch, <model>, {x}, *.py, a/.../b.
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(?:\.\w+)?$|^NNNN|[<>{}*]|\.\.\.")
# Not the project's own prose: upstream's tests, exported to SGLang byte for byte;
# fixtures that keep texts as they were shipped.
NOT_PROSE = ("tests/regression/", "tests/data/")
# Blocks rendered from the patch headers (docs.py, changelog.py): the series lint
# checks the headers they come from.
GENERATED = (
    ("<!-- patch-table:begin -->", "<!-- patch-table:end -->"),
    ("<!-- patches:begin -->", "<!-- patches:end -->"),
)


def prose_lines(path, text):
    """(line number, text) of a file's prose: for Python its comments and docstrings,
    for other text every line outside the generated blocks."""
    if path.suffix == ".py" or text.startswith("#!/usr/bin/env python"):
        return _python_prose(text)
    out, generated = [], None
    for n, line in enumerate(text.splitlines(), 1):
        if generated is None:
            generated = next((e for b, e in GENERATED if b in line), None)
            if generated is None:
                out.append((n, line))
        elif generated in line:
            generated = None
    return out


def _python_prose(text):
    import io
    import tokenize

    out, prev = [], tokenize.NEWLINE
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return list(enumerate(text.splitlines(), 1))
    for tok in tokens:
        docstring = tok.type == tokenize.STRING and prev in (
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENCODING,
        )
        if tok.type == tokenize.COMMENT or docstring:
            for i, line in enumerate(tok.string.splitlines()):
                out.append((tok.start[0] + i, line))
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            prev = tok.type
    return out


def outside_pointers(rel, text, tree_names, exists):
    """``rel:line: what`` for each pointer of a file's prose that leaves the tree.

    ``tree_names``: the file names the tree holds; ``exists(path)``: whether a
    repo-relative path is in it."""
    hits = []
    for n, line in prose_lines(Path(rel), text):
        if re.search(r"^\s*-?\s*uses:", line):  # a GitHub Action (owner/name@ref)
            continue
        for m in REPO_PATH.finditer(line):
            path = m.group(1).rstrip(".-/")
            parts = path.split("/")
            if any(PLACEHOLDER.search(p) for p in parts) or len(parts) < 2:
                continue
            if not exists(path):
                hits.append(f"{rel}:{n}: {path} is not in the repository")
        for m in DOC_NAME.finditer(line):
            if m.group(1) not in tree_names:
                hits.append(f"{rel}:{n}: {m.group(1)} is not in the repository")
        plain = UPSTREAM_LINK.sub("", line)
        for m in [*ISSUE_WORD.finditer(plain), *BARE_NUMBER.finditer(plain)]:
            hits.append(
                f"{rel}:{n}: {m.group(0)!r} cites an issue or PR without saying "
                "whose (sglang#N, or a github.com/sgl-project/sglang link)"
            )
    return hits


def _project_texts():
    from conftest import project_files

    for path in project_files():
        rel = path.relative_to(REPO).as_posix()
        if path.suffix in {".patch", ".mp4", ".whl"} or rel.startswith(NOT_PROSE):
            continue
        try:
            yield rel, path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


def test_no_text_points_outside_the_repository():
    from conftest import project_files

    names = {p.name for p in project_files()}
    hits = []
    for rel, text in _project_texts():
        hits += outside_pointers(rel, text, names, lambda p: (REPO / p).exists())
    assert not hits, "\n".join(hits)


def test_the_outside_pointer_check_can_fail():
    """Each kind of pointer is found, and what is allowed stays allowed."""
    names = {"README.md", "operators.md"}
    tree = {"docs/operators.md", "scripts/dev", "tests/regression"}

    def hits(text, rel="docs/x.md"):
        return outside_pointers(rel, text, names, lambda p: p in tree)

    assert hits("see docs/bring-up-report.md") == [
        "docs/x.md:1: docs/bring-up-report.md is not in the repository"
    ]
    assert len(hits("as KINDS.md says")) == 1
    assert len(hits("goal of issue 12")) == 1
    assert len(hits("Goal (issue #12)")) == 1
    assert len(hits("fixed by #37060")) == 1
    assert len(hits("a follow-up PR 4")) == 1
    bad_py = '"""Doc cites issue 7."""\nx = "tests/nope.py"  # and #12345\n'
    assert len(hits(bad_py, "scripts/x.py")) == 2  # the string literal is data
    fine = (
        "run scripts/dev, read docs/operators.md and README.md; tests/regression/; "
        "sgl-project/sglang#37059, sglang#37060, "
        "[#37060](https://github.com/sgl-project/sglang/pull/37060), "
        "patches/NNNN-name.patch, recipes/configs/<model>, tests/NAME.py, hunk #2, "
        "export-pr 4"
    )
    assert hits(fine) == []
    table = (
        "<!-- patch-table:begin -->\n| superseded by #26278 |\n<!-- patch-table:end -->"
    )
    assert hits(table, "README.md") == []
