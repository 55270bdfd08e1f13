"""Small promises about the repository's own text: one apply implementation, comments
that agree with the pin, no pointers to documents the project does not ship."""

import re
import subprocess

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
