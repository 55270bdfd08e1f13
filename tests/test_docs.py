"""The operator docs: what they cite exists, and their names agree with the tools."""

import re

from conftest import project_lines
from sglang_mimo import paths

REPO = paths.REPO


def test_no_citation_of_unshipped_reports():
    """Recipes and docs give their reasons themselves: no text cites a report or seed
    document that the repository does not ship."""
    hits = project_lines(
        r"bring-up report|shared/seeds|seeds/0\d\d", skip={"test_docs.py"}
    )
    assert not hits, "\n".join(hits)


# ------------------------------------------------------------------ one set of names

DOCS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    REPO / "docker" / "README.md",
    REPO / "recipes" / "README.md",
]
RECIPE_FILES = sorted((REPO / "recipes").glob("*.yaml"))
MODEL_DIRS = {"MiMo-V2.5", "MiMo-V2.5-Pro", "MiMo-V2-Flash"}


def _code_blocks(path):
    """(language, text) of each fenced block of a Markdown file."""
    return re.findall(r"^```(\w*)\n(.*?)^```", path.read_text(), re.S | re.M)


def _shell_lines(path):
    """The shell commands of a file's bash blocks: continuations joined, comments cut,
    with the $NAME / ${NAME} the block assigns before them expanded."""
    out = []
    for lang, block in _code_blocks(path):
        if lang != "bash":
            continue
        values = {}
        for raw in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", raw).strip()
            if not line or line.startswith("#"):
                continue
            for name, value in re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=(\S+)", line):
                if line.startswith(("export ", name)):
                    values[name] = value.strip("\"'")
            line = re.sub(
                r"\$\{?([A-Z_][A-Z0-9_]*)\}?",
                lambda m: values.get(m.group(1), m.group(0)),
                line,
            )
            out.append((line, dict(values)))
    return out


def test_one_model_directory_spelling():
    hits = []
    for path in DOCS + RECIPE_FILES:
        for m in re.finditer(r"/models/(\w[\w.-]*)", path.read_text()):
            if m.group(1) not in MODEL_DIRS | {"allreduce.py"}:
                hits.append(f"{path.relative_to(REPO)}: /models/{m.group(1)}")
    assert not hits, "\n".join(hits)


def test_addresses_are_documentation_addresses():
    """Examples use RFC 5737's 192.0.2.0/24 (and loopback / any), nothing that could be
    someone's real network."""
    import ipaddress

    allowed = ipaddress.ip_network("192.0.2.0/24")
    hits = []
    for path in DOCS + RECIPE_FILES:
        for m in re.finditer(
            r"(?<![\w.])(\d+\.\d+\.\d+\.\d+)(?![\w.])", path.read_text()
        ):
            addr = ipaddress.ip_address(m.group(1))
            if addr not in allowed and str(addr) not in {"127.0.0.1", "0.0.0.0"}:
                hits.append(f"{path.relative_to(REPO)}: {addr}")
    assert not hits, "\n".join(hits)


def _rank_container_names():
    from sglang_mimo import recipes as R

    names = set()
    for name in R.known_recipes():
        for rank in range(R.load_recipe(name).hardware.nodes):
            names.add(f"{name}-rank{rank}")
    return names


def test_container_names_are_the_rendered_ones():
    """`docker inspect NAME` and friends work with the containers the docs start: every
    name is the one `launch --render docker` gives (RECIPE-rankN)."""
    names = _rank_container_names()
    hits = []
    for path in DOCS:
        for line, _ in _shell_lines(path):
            for m in re.finditer(r"--name\s+(\S+)", line):
                if m.group(1) not in names:
                    hits.append(f"{path.relative_to(REPO)}: --name {m.group(1)}")
            m = re.match(r"docker (inspect|logs|stop|rm|restart|exec)\b(.*)", line)
            if m:
                args = re.sub(r"'[^']*'", "", m.group(2)).split()
                target = [a for a in args if not a.startswith("-")]
                if target and ":" not in target[-1] and target[-1] not in names:
                    hits.append(f"{path.relative_to(REPO)}: {line}")
    assert not hits, "\n".join(hits)


def test_image_tags_are_ones_a_release_or_build_produces():
    pin = paths.load_pin()
    tags = {
        f"{prefix}-{target}"
        for prefix in (pin["distribution"], pin["version"], "latest")
        for target in ("sm90", "sm121a")
    }
    hits = []
    for path in DOCS:
        for m in re.finditer(r"sglang-mimo:([^\s\"'`)|]+)", path.read_text()):
            tag = m.group(1)
            if tag not in tags and not tag.startswith(("$", "<")):
                hits.append(f"{path.relative_to(REPO)}: sglang-mimo:{tag}")
    assert not hits, "\n".join(hits)


def test_the_smoke_command_is_spelt_as_it_runs():
    hits = project_lines(
        r"sglang-mimo launch smoke", skip={"test_docs.py", "CHANGELOG.md"}
    )
    assert not hits, "\n".join(hits)


# ------------------------------------------------------ the docs' commands, for real


def _sglang_mimo_lines(paths_, programs=("sglang-mimo ",)):
    for path in paths_:
        for line, env in _shell_lines(path):
            line = line.split(" | ")[0].strip()
            if not line.startswith(programs):
                continue
            if re.search(r"\[|\.\.\.|\bRECIPE\b|\bHOST\b", line):
                continue  # a synopsis with placeholders, not a command
            yield path, line, env


def test_every_documented_sglang_mimo_command_parses():
    """Each `sglang-mimo ...` (users') and `scripts/dev ...` (maintainers') line of the
    docs names a real subcommand of that command line and real flags."""
    import shlex

    from sglang_mimo import cli, dev

    parsers = {
        "sglang-mimo": cli.build_parser(),
        "scripts/dev": cli.build_parser(
            dev.PROG, list(cli.MAINTAINER_COMMANDS.values())
        ),
    }
    seen = 0
    for path, line, _ in _sglang_mimo_lines(DOCS, ("sglang-mimo ", "scripts/dev ")):
        program, *args = shlex.split(line)
        try:
            parsers[program].parse_args(args)
        except SystemExit as e:
            assert e.code == 0, f"{path.relative_to(REPO)}: {line}"
        seen += 1
    assert seen >= 10


GUIDES = [
    REPO / "README.md",
    *(REPO / "docs" / f"{n}.md" for n in ("operators", "gb10", "h200")),
]


def test_every_target_has_its_guide_and_the_guides_walk_every_recipe():
    """docs/gb10.md and docs/h200.md exist, link the shared guide, and between them
    launch (in a bash block) every recipe the repository ships."""
    from sglang_mimo import recipes as R

    launched = set()
    for guide in ("gb10", "h200"):
        path = REPO / "docs" / f"{guide}.md"
        assert "](operators.md" in path.read_text(), path
        for _, line, _ in _sglang_mimo_lines([path]):
            words = line.split()
            if words[1] in ("launch", "cluster"):
                launched.update(w for w in words if w in R.known_recipes())
    assert launched == set(R.known_recipes())


def test_the_documented_launches_run_in_dry_run_form():
    """Each `sglang-mimo launch RECIPE ...` of the README, the operator guide and the
    per-target guides, with the variables its block exports, renders (or dry-runs)
    without an error."""
    import shlex

    from recipe_helpers import clean_env, launch

    ran = 0
    for path, line, env in _sglang_mimo_lines(GUIDES):
        args = shlex.split(line)[1:]
        if args[0] != "launch" or "--list" in args:
            continue
        args = args[1:]
        if "--render" not in args and "--dry-run" not in args:
            args.append("--dry-run")
        r = launch(*args, env=clean_env(**env))
        assert r.returncode == 0, f"{path.relative_to(REPO)}: {line}\n{r.stderr}"
        ran += 1
    assert ran >= 8


def test_the_documented_allreduce_check_runs(tmp_path):
    """The operator guide's NCCL check, as written, run by torchrun: here two processes
    on the CPU (gloo) over loopback; on a cluster NCCL across the nodes."""
    import socket
    import subprocess
    import sys

    from recipe_helpers import clean_env

    text = (REPO / "docs" / "operators.md").read_text()
    block = text.split("<!-- allreduce:begin -->", 1)[1].split(
        "<!-- allreduce:end -->"
    )[0]
    script = tmp_path / "allreduce.py"
    script.write_text(block.split("```python\n", 1)[1].split("```", 1)[0])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = clean_env(ALLREDUCE_BACKEND="gloo", ALLREDUCE_MIB="4", GLOO_SOCKET_IFNAME="lo",
                    OMP_NUM_THREADS="1")  # fmt: skip
    run = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
           "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(port),
           str(script)]  # fmt: skip
    r = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "all_reduce of 4 MiB over 2 ranks: ok" in r.stdout, r.stdout


def _anchors(path):
    """GitHub's anchors of a Markdown file's headings."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", path.read_text(), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_links_between_the_docs_resolve():
    """Every relative link of the docs names a file the repository ships, and every
    #anchor a heading of that file."""
    hits = []
    for path in DOCS:
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            where = f"{path.relative_to(REPO)}: ({target})"
            if not dest.exists():
                hits.append(f"{where}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                hits.append(f"{where}: no such heading")
    assert not hits, "\n".join(hits)
