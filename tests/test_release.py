"""The release workflow (.github/workflows/release.yml).

- actionlint (with shellcheck on the `run:` scripts) finds nothing;
- the matrix builds each bake target on a runner of its platform's architecture;
- the "Bake variables" step, run here as written, refuses a tag that is not
  v<distribution> and names the image <registry>/<namespace>/sglang-mimo in lower case;
- `docker buildx bake --print` with the push step's own environment (image-test only:
  needs buildx) shows what that step pushes: the platform, the tags and the
  SBOM + provenance attestations, and the "Plan" step prints exactly that.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from sglang_mimo import paths  # noqa: E402

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
BAKE_TARGETS = {"sm90": "linux/amd64", "sm121a": "linux/arm64"}
EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def job():
    return workflow()["jobs"]["image"]


def step(name):
    found = [s for s in job()["steps"] if s.get("name") == name or s.get("id") == name]
    assert len(found) == 1, f"no single step {name!r} in {WORKFLOW}"
    return found[0]


def expand(value, context):
    """Replace each ${{ expr }} by context[expr]; an unknown expression fails."""

    def sub(m):
        assert m[1] in context, f"expression not covered by the test: {m[0]}"
        return context[m[1]]

    return EXPR.sub(sub, str(value))


def tool(name):
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    assert os.access(found, os.X_OK), f"{name} not installed (tests/requirements.txt)"
    return found


def test_actionlint_clean():
    actionlint, shellcheck = tool("actionlint"), tool("shellcheck")
    env = {**os.environ, "PATH": f"{Path(shellcheck).parent}:{os.environ['PATH']}"}
    out = subprocess.run(
        [actionlint, "-shellcheck", shellcheck, str(WORKFLOW)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The check can fail: a misspelt step id and an unquoted expansion are found."""
    broken = WORKFLOW.read_text().replace(
        "steps.digest.outputs.digest", "steps.digets.outputs.digest"
    )
    broken = broken.replace(
        'cosign sign --yes "$IMAGE@$DIGEST"', "cosign sign --yes $IMAGE@$DIGEST"
    )
    f = tmp_path / ".github" / "workflows" / "release.yml"
    f.parent.mkdir(parents=True)
    f.write_text(broken)
    out = subprocess.run(
        [tool("actionlint"), "-shellcheck", tool("shellcheck"), str(f)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "digets" in out.stdout and "SC2086" in out.stdout


def test_triggers_runners_and_permissions():
    wf = workflow()
    assert wf[True]["push"] == {"tags": ["v*"]}  # YAML 1.1 reads `on` as True
    assert wf["permissions"] == {}
    j = job()
    assert j["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
    }
    matrix = j["strategy"]["matrix"]["include"]
    assert {m["target"]: m["platform"] for m in matrix} == BAKE_TARGETS
    for m in matrix:  # native runners: arm64 on GitHub's -arm images, no QEMU
        assert m["runner"].endswith("-arm") == (m["platform"] == "linux/arm64")
    assert j["runs-on"] == "${{ matrix.runner }}"
    assert j["env"] == {"TARGET": "${{ matrix.target }}"}
    env = wf["env"]
    assert env["REGISTRY"] == "${{ vars.IMAGE_REGISTRY || 'ghcr.io' }}"
    assert env["NAMESPACE"] == "${{ vars.IMAGE_NAMESPACE || github.repository_owner }}"


def run_vars_step(tmp_path, ref_name, registry="ghcr.io", namespace="Example-Org"):
    out_file = tmp_path / "github_output"
    out_file.write_text("")
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step("vars")["run"]],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={
            **os.environ,
            "GITHUB_REF_NAME": ref_name,
            "GITHUB_OUTPUT": str(out_file),
            "REGISTRY": registry,
            "NAMESPACE": namespace,
        },
    )
    outputs = dict(
        line.split("=", 1) for line in out_file.read_text().splitlines() if line
    )
    return proc, outputs


def test_vars_step_names_the_image_and_writes_bake_vars(tmp_path):
    dist = paths.load_pin()["distribution"]
    proc, outputs = run_vars_step(tmp_path, f"v{dist}", "GHCR.io", "Example-Org")
    assert proc.returncode == 0, proc.stderr
    assert outputs == {"image": "ghcr.io/example-org/sglang-mimo"}
    from sglang_mimo import image as img

    written = json.loads((REPO / "build" / "image-vars.json").read_text())
    assert written == img.bake_vars()


def test_vars_step_refuses_another_tag(tmp_path):
    proc, outputs = run_vars_step(tmp_path, "v0.5.23-mimo.0")
    assert proc.returncode == 1 and outputs == {}
    dist = paths.load_pin()["distribution"]
    assert f"::error::tag v0.5.23-mimo.0 is not v{dist}" in proc.stdout


def test_plan_step_prints_what_the_push_step_builds():
    plan, push = step("Plan"), step("Build and push")
    assert plan["env"] == push["env"]
    words = shlex.split(push["run"])
    i = words.index("--metadata-file")
    assert words[i + 1] == "build/metadata.json"
    assert "--push" in words
    del words[i : i + 2]
    words[words.index("--push")] = "--print"
    assert shlex.split(plan["run"]) == words
    # The digest step reads the file the push step wrote; the signing step signs it.
    assert "build/metadata.json" in step("digest")["run"]
    sign = step("Sign by digest")
    assert sign["env"]["DIGEST"] == "${{ steps.digest.outputs.digest }}"
    assert 'cosign sign --yes "$IMAGE@$DIGEST"' in sign["run"]


@pytest.mark.skipif(
    os.environ.get("SGLANG_MIMO_IMAGE_TEST") != "1",
    reason="needs docker buildx: run `make image-test`",
)
@pytest.mark.parametrize("target", BAKE_TARGETS)
def test_bake_print_with_release_variables_is_what_the_workflow_pushes(
    target, tmp_path
):
    dist = paths.load_pin()["distribution"]
    version = paths.load_pin()["version"]
    proc, outputs = run_vars_step(tmp_path, f"v{dist}")
    assert proc.returncode == 0, proc.stderr
    image = outputs["image"]
    context = {"steps.vars.outputs.image": image, "matrix.target": target}
    push = step("Build and push")
    env = {k: expand(v, context) for k, v in push["env"].items()}
    env["TARGET"] = expand(job()["env"]["TARGET"], context)
    plan = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step("Plan")["run"]],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
    )
    assert plan.returncode == 0, plan.stderr
    printed = json.loads(plan.stdout)
    assert list(printed["target"]) == [target]
    t = printed["target"][target]
    assert t["platforms"] == [BAKE_TARGETS[target]]
    assert t["tags"] == [
        f"{image}:{dist}-{target}",
        f"{image}:{version}-{target}",
        f"{image}:latest-{target}",
    ]
    assert t["attest"] == ["type=sbom", "type=provenance,mode=max"]
    assert t["args"]["DISTRIBUTION"] == dist and t["args"]["GPU_TARGET"] == target
    # docker/README.md documents these tags.
    doc = (REPO / "docker" / "README.md").read_text()
    for tag in t["tags"]:
        assert tag.replace(image, "ghcr.io/OWNER/sglang-mimo") in doc, tag
