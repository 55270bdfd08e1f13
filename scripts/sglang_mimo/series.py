"""Read patches/series and the patch headers: the one parser every tool uses.

A patch is ``git format-patch`` output. Its commit message carries all of the
patch's metadata: the subject (with SGLang's bracket tag), a body with
``Motivation:`` and ``Modifications:`` sections, and a last paragraph of git
trailers in DEP-3 terms:

- ``Upstream-Status``: Yocto's ``Pending``, ``Submitted [url]`` (a PR this project
  opened upstream: only those listed in pyproject.toml ``[tool.sglang-mimo]
  own-upstream-prs``), ``Backport [url]`` (upstream's own fix, merged or an open
  PR, carried adapted) or ``Inappropriate [why]`` (not to be sent upstream, e.g.
  this project's stand-in while upstream's own fix, named in ``Related``, is
  open and its diff unreadable);
- ``Origin``: where the code came from: ``vendor`` (this project, and then
  ``From:`` is this project, VENDOR_AUTHOR) or ``backport, <url>`` (the upstream
  PR or commit of a Backport, and ``From:`` its author);
- ``Bug`` (any number): the upstream issue the patch fixes;
- ``Related`` (any number): other upstream PRs, ``<url> (<why>)``: the change
  that caused the bug, closed attempts, competing PRs;
- ``Breaks-Without``: what fails without the patch;
- ``Regression-Test`` (one or more): the patch's regression test file, at the
  path it has upstream (``test/registered/unit/.../test_*.py``), kept in this
  repository under ``tests/regression/`` (``test/`` becomes ``tests/regression/``):
  every test in it fails without the patch and passes with it, and
  ``sglang-mimo export-pr`` sends it as it is.

The old mixed ``Upstream-PR`` trailer is rejected.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from sglang_mimo import diffs, paths, tables

REQUIRED_TRAILERS = ("Upstream-Status", "Origin", "Breaks-Without")
KNOWN_TRAILERS = REQUIRED_TRAILERS + ("Bug", "Related", "Regression-Test")
FORBIDDEN_TRAILERS = {
    "Upstream-PR": "mixes causes, closed attempts and fixes: use Origin, Bug or Related",
}
REQUIRED_SECTIONS = ("Motivation", "Modifications")
UPSTREAM_STATUS = re.compile(
    r"^(Pending|Submitted \[(\S+)\]|Backport \[(\S+)\]|Inappropriate \[(.+)\])$"
)
PR_URL = re.compile(r"^https://github\.com/sgl-project/sglang/pull/(\d+)$")
ISSUE_URL = re.compile(r"^https://github\.com/sgl-project/sglang/issues/(\d+)$")
COMMIT_URL = re.compile(
    r"^https://github\.com/sgl-project/sglang/commit/[0-9a-f]{7,40}$"
)
ORIGIN = re.compile(r"^(vendor|backport, (\S+))$")
# The ``From:`` of this project's own code.
VENDOR_AUTHOR = "sglang-mimo <sglang-mimo@users.noreply.github.com>"
RELATED = re.compile(r"^(\S+) \((.+)\)$")
REGRESSION_TEST = re.compile(r"^test/registered/(?:[\w.-]+/)*test_\w+\.py$")


def own_upstream_prs(pyproject=None):
    """The upstream PRs this project opened itself (pyproject.toml
    ``[tool.sglang-mimo] own-upstream-prs``): the only valid Submitted targets."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    path = Path(pyproject) if pyproject else paths.REPO / "pyproject.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return list(data.get("tool", {}).get("sglang-mimo", {}).get("own-upstream-prs", []))


def pr_number(url):
    m = PR_URL.match(url or "")
    return int(m.group(1)) if m else None


@dataclass
class Patch:
    name: str
    path: Path
    author: str
    date: str
    subject: str
    body: str
    trailers: list = field(default_factory=list)  # [(key, value)] in order
    files: list = field(default_factory=list)  # checkout-layout paths
    preimages: dict = field(default_factory=dict)  # path -> blob before the patch

    def trailer(self, key):
        """The first value of trailer ``key``, or None."""
        return next((v for k, v in self.trailers if k == key), None)

    def trailer_all(self, key):
        return [v for k, v in self.trailers if k == key]

    @property
    def tag(self):
        m = re.match(r"^\[([^\]]+)\]", self.subject)
        return m.group(1) if m else None

    @property
    def title(self):
        """The subject without its bracket tag."""
        return re.sub(r"^\[[^\]]+\]\s*", "", self.subject)

    @property
    def status_url(self):
        """The URL of ``Submitted [url]`` or ``Backport [url]``, or None."""
        m = UPSTREAM_STATUS.match(self.trailer("Upstream-Status") or "")
        return (m.group(2) or m.group(3)) if m else None

    @property
    def origin_url(self):
        """The upstream URL the code came from (``Origin: backport, <url>``), or None."""
        m = ORIGIN.match(self.trailer("Origin") or "")
        return m.group(2) if m else None

    @property
    def bugs(self):
        return self.trailer_all("Bug")

    @property
    def related(self):
        """[(url, why)] of the Related trailers."""
        out = []
        for value in self.trailer_all("Related"):
            m = RELATED.match(value)
            out.append((m.group(1), m.group(2)) if m else (value, ""))
        return out

    @property
    def fix_pr(self):
        """Upstream's PR for this fix (the Backport's or our Submitted one), or None."""
        return pr_number(self.status_url)

    @property
    def related_prs(self):
        """[(number, why)] of the Related PRs."""
        return [(pr_number(u), why) for u, why in self.related if pr_number(u)]

    @property
    def upstream_prs(self):
        """Every upstream PR the header names: the fix's first, then the Related ones."""
        nums = [self.fix_pr] if self.fix_pr else []
        return nums + [n for n, _ in self.related_prs if n not in nums]

    @property
    def regression_tests(self):
        """Upstream paths of the ``Regression-Test`` files (test/registered/...)."""
        return self.trailer_all("Regression-Test")

    def section(self, name):
        """The text of body section ``name:`` up to the next section or the trailers."""
        m = re.search(rf"^{name}:\n(.*?)(?=^\w[\w -]*:\n|\Z)", self.body, re.M | re.S)
        return m.group(1).strip() if m else None


def read_series(series_file: str | os.PathLike[str] = paths.SERIES) -> list[str]:
    """The patch file names of the series, in order."""
    names: list[str] = []
    for line in Path(series_file).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.split()[0])
    return names


def parse_patch(path):
    """Parse one ``git format-patch`` file into a Patch (an mbox message: its
    headers through the stdlib ``email`` parser, the message up to ``---``)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    msg = email.parser.Parser(policy=email.policy.default).parsestr(text)
    message, sep, rest = msg.get_payload().partition("\n---\n")
    if not sep:
        raise ValueError(f"{path.name}: no '---' line after the commit message")
    subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", str(msg.get("Subject", "")))
    message = message.strip("\n")
    paragraphs = message.split("\n\n")
    trailers = []
    last = paragraphs[-1].splitlines() if paragraphs else []
    if last and all(re.match(r"^[A-Za-z][\w-]*: ", l) for l in last):
        trailers = [tuple(l.split(": ", 1)) for l in last]
        message = "\n\n".join(paragraphs[:-1])
    diff = diffs.parse(rest)
    files = [f.old for f in diff]
    preimages = {f.old: f.old_blob for f in diff if f.old_blob is not None}
    return Patch(
        name=path.name,
        path=path,
        author=str(msg.get("From", "")),
        date=str(msg.get("Date", "")),
        subject=subject,
        body=message,
        trailers=trailers,
        files=files,
        preimages=preimages,
    )


def load_series(series_file=paths.SERIES):
    """Every patch of the series, parsed, in order."""
    folder = Path(series_file).parent
    return [parse_patch(folder / name) for name in read_series(series_file)]


def header_problems(patch):
    """What is missing or malformed in a patch header (empty list: none)."""
    problems = []
    if not patch.tag:
        problems.append("subject has no SGLang bracket tag such as [VLM]")
    for name in REQUIRED_SECTIONS:
        if not patch.section(name):
            problems.append(f"no '{name}:' section in the message")
    for key in REQUIRED_TRAILERS:
        if not patch.trailer(key):
            problems.append(f"no {key} trailer")
    problems += provenance_problems(patch)
    if not patch.files:
        problems.append("touches no file")
    for f in patch.files:
        if not f.startswith("python/sglang/"):
            problems.append(f"{f} is not in the upstream layout (python/sglang/...)")
    return problems


def provenance_problems(patch, own_prs=None):
    """Where the DEP-3 provenance trailers contradict each other or DEP-3."""
    own = own_upstream_prs() if own_prs is None else own_prs
    problems = []
    for key, _ in patch.trailers:
        if key in FORBIDDEN_TRAILERS:
            problems.append(f"{key} trailer: {FORBIDDEN_TRAILERS[key]}")
        elif key not in KNOWN_TRAILERS:
            problems.append(f"unknown trailer {key!r}")
    status = patch.trailer("Upstream-Status")
    word = status_word(patch)
    if status and not UPSTREAM_STATUS.match(status):
        problems.append(f"Upstream-Status not Yocto-style: {status!r}")
    origin = patch.trailer("Origin")
    if origin and not ORIGIN.match(origin):
        problems.append(f"Origin is neither 'vendor' nor 'backport, <url>': {origin!r}")
    url = patch.status_url
    if word in ("Submitted", "Backport") and url and not PR_URL.match(url):
        if not (word == "Backport" and COMMIT_URL.match(url)):
            problems.append(f"{word} [{url}] is not an sgl-project/sglang PR URL")
    if word == "Submitted" and url and url not in own:
        problems.append(
            f"Submitted [{url}]: not a PR of this project (pyproject.toml "
            "[tool.sglang-mimo] own-upstream-prs); upstream's own fix is a Backport, "
            "anything else Related"
        )
    if word == "Backport" and origin and patch.origin_url != url:
        problems.append(f"Backport [{url}] but Origin is {origin!r}: name the same url")
    if word in ("Pending", "Submitted") and origin and origin != "vendor":
        problems.append(f"{word} patch with Origin {origin!r}: ours is 'vendor'")
    if origin == "vendor" and patch.author != VENDOR_AUTHOR:
        problems.append(
            f"Origin vendor (this project's code) but From: {patch.author!r}: "
            f"our code is From: {VENDOR_AUTHOR}"
        )
    if origin and origin != "vendor" and patch.author == VENDOR_AUTHOR:
        problems.append(
            f"Origin {origin!r} but From: this project: a backport keeps its author"
        )
    for bug in patch.bugs:
        if not ISSUE_URL.match(bug):
            problems.append(f"Bug is not an sgl-project/sglang issue URL: {bug!r}")
    for value in patch.trailer_all("Related"):
        m = RELATED.match(value)
        if not m or not PR_URL.match(m.group(1)):
            problems.append(f"Related is not '<sglang PR url> (<why>)': {value!r}")
        elif m.group(1) == url:
            problems.append(f"Related repeats the Upstream-Status url {url}")
    return problems


def regression_test_file(upstream_path, repo=None):
    """Where this repository keeps the test upstream has at ``upstream_path``:
    ``test/registered/...`` -> ``tests/regression/registered/...``."""
    rel = Path(upstream_path).relative_to("test")
    return Path(repo or paths.REPO) / "tests" / "regression" / rel


def regression_test_problems(patch, repo=None):
    """What is wrong with a patch's ``Regression-Test`` trailers (empty: none)."""
    tests = patch.regression_tests
    if not tests:
        return ["no Regression-Test trailer (test/registered/unit/.../test_*.py)"]
    problems = []
    for t in tests:
        if not REGRESSION_TEST.match(t):
            problems.append(
                f"Regression-Test is not test/registered/.../test_*.py: {t!r}"
            )
        elif not regression_test_file(t, repo).is_file():
            problems.append(f"Regression-Test {t}: no {regression_test_file(t, repo)}")
    return problems


def status_word(patch):
    """'Pending', 'Submitted', 'Backport' or 'Inappropriate'."""
    return (patch.trailer("Upstream-Status") or "").split(" ", 1)[0]


def render_patch_table(patches):
    """The README's patch table (Markdown), derived from the headers."""
    rows = []
    for p in patches:
        rows.append(
            [
                p.name.split("-", 1)[0],
                p.subject,
                status_cell(p),
                ", ".join(link(u) for u in p.bugs),
                ", ".join(f"{link(u)} ({why})" for u, why in p.related),
                p.trailer("Breaks-Without"),
            ]
        )
    header = [
        "#",
        "patch",
        "upstream status",
        "bug",
        "related upstream PRs",
        "what breaks without it",
    ]
    return tables.render(header, rows)


def link(url):
    """``[#N](url)`` for an sglang issue or PR URL, the URL itself otherwise."""
    m = re.search(r"/(?:pull|issues)/(\d+)$", url)
    return f"[#{m.group(1)}]({url})" if m else url


def status_cell(patch):
    """'Pending', 'Backport of [#N](url)', 'Submitted as [#N](url)', ..."""
    word, url = status_word(patch), patch.status_url
    if word == "Backport" and url:
        return f"Backport of {link(url)}"
    if word == "Submitted" and url:
        return f"Submitted as {link(url)}"
    if word == "Inappropriate":
        return f"Inappropriate: {inappropriate_reason(patch, link=True)}"
    return word


def inappropriate_reason(patch, link=False):
    """The ``[why]`` of ``Inappropriate [why]``; with ``link``, each ``#N`` it
    names is linked to the URL the header gives for it (Related or Bug)."""
    m = UPSTREAM_STATUS.match(patch.trailer("Upstream-Status") or "")
    why = (m.group(4) if m else None) or ""
    if not link:
        return why
    urls = {u.rsplit("/", 1)[1]: u for u, _ in patch.related} | {
        u.rsplit("/", 1)[1]: u for u in patch.bugs
    }
    return re.sub(
        r"#(\d+)", lambda n: f"[#{n[1]}]({urls[n[1]]})" if n[1] in urls else n[0], why
    )
