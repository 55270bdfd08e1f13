"""Read patches/series and the patch headers: the one parser every tool uses.

A patch is ``git format-patch`` output. Its commit message carries all of the
patch's metadata: the subject (with SGLang's bracket tag), a body with
``Motivation:`` and ``Modifications:`` sections, and a last paragraph of git
trailers in DEP-3 terms (Yocto's ``Upstream-Status`` words):

- ``Upstream-Status``:

  - ``Pending``: this project's code, not sent upstream yet;
  - ``Submitted [url]``: this project's code, open upstream as PR ``url``, a PR this
    project opened (listed in pyproject.toml ``[tool.sglang-mimo]
    own-upstream-prs``; ``Origin: vendor``). Only for our own PRs: someone else's
    open PR the series carries is a Backport;
  - ``Backport [url]``: upstream's own fix, carried adapted to the pinned release,
    under its upstream author's name (``From:``). ``url`` is either the upstream
    commit (``.../sglang/commit/<sha>``: merged after the pin) or the upstream PR
    (``.../sglang/pull/<n>``: open, not merged yet; the message says so, ``#<n>
    (open``);
  - ``Inappropriate [why]``: this project's code, not to be sent upstream, e.g. its
    stand-in while upstream's own fix, named in ``Related``, is open and its diff
    unreadable;

- ``Origin``: where the code came from: ``vendor`` (this project, and then
  ``From:`` is this project, VENDOR_AUTHOR: Pending, Submitted, Inappropriate);
  ``upstream, <commit url>`` (a merged upstream commit carried as it is) or
  ``backport, <commit url>`` / ``backport, <PR url>`` (upstream's merged commit or
  open PR, adapted): a Backport, with the same url. Code that is not this
  project's keeps its upstream author in ``From:``;
- ``Bug`` (any number): the upstream issue the patch fixes;
- ``Related`` (any number): other upstream PRs, ``<url> (<why>)``: the change
  that caused the bug, closed attempts, competing PRs;
- ``Breaks-Without``: what fails without the patch;
- ``Regression-Test`` (one or more): the patch's regression test file, at the
  path it has upstream (``test/registered/unit/.../test_*.py``), kept in this
  repository under ``tests/regression/`` (``test/`` becomes ``tests/regression/``):
  every test in it fails without the patch and passes with it, and
  ``scripts/dev export-pr`` sends it as it is.

What a header must satisfy is checked by ``sglang_mimo.lint``.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sglang_mimo import diffs, paths

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
    r"^https://github\.com/sgl-project/sglang/commit/([0-9a-f]{7,40})$"
)
# DEP-3's "other" parses (for a clear lint message) but the series has no use for it.
ORIGIN = re.compile(r"^(vendor|(upstream|backport|other), (\S+))$")
# The ``From:`` of this project's own code.
VENDOR_AUTHOR = "sglang-mimo <sglang-mimo@users.noreply.github.com>"
RELATED = re.compile(r"^(\S+) \((.+)\)$")
REGRESSION_TEST = re.compile(r"^test/registered/(?:[\w.-]+/)*test_\w+\.py$")


def own_upstream_prs(pyproject: str | os.PathLike[str] | None = None) -> list[str]:
    """The upstream PRs this project opened itself (pyproject.toml
    ``[tool.sglang-mimo] own-upstream-prs``): the Submitted targets of its own code."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    path = Path(pyproject) if pyproject else paths.REPO / "pyproject.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return list(data.get("tool", {}).get("sglang-mimo", {}).get("own-upstream-prs", []))


def pr_number(url: str | None) -> int | None:
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
    trailers: list[tuple[str, str]] = field(default_factory=list)  # in order
    files: list[str] = field(default_factory=list)  # checkout-layout paths
    # path -> blob before the patch
    preimages: dict[str, str] = field(default_factory=dict)

    def trailer(self, key: str) -> str | None:
        """The first value of trailer ``key``, or None."""
        return next((v for k, v in self.trailers if k == key), None)

    def trailer_all(self, key: str) -> list[str]:
        return [v for k, v in self.trailers if k == key]

    @property
    def tag(self) -> str | None:
        m = re.match(r"^\[([^\]]+)\]", self.subject)
        return m.group(1) if m else None

    @property
    def title(self) -> str:
        """The subject without its bracket tag."""
        return re.sub(r"^\[[^\]]+\]\s*", "", self.subject)

    @property
    def author_name(self) -> str:
        """The name of ``From:`` (without the address)."""
        return self.author.split(" <", 1)[0].strip()

    @property
    def status_url(self) -> str | None:
        """The URL of ``Submitted [url]`` or ``Backport [url]``, or None."""
        m = UPSTREAM_STATUS.match(self.trailer("Upstream-Status") or "")
        return (m.group(2) or m.group(3)) if m else None

    @property
    def origin_kind(self) -> str | None:
        """'vendor', 'upstream', 'backport' or 'other' (None: no valid Origin)."""
        m = ORIGIN.match(self.trailer("Origin") or "")
        return (m.group(2) or m.group(1)) if m else None

    @property
    def origin_url(self) -> str | None:
        """The upstream URL the code came from (``Origin: <kind>, <url>``), or None."""
        m = ORIGIN.match(self.trailer("Origin") or "")
        return m.group(3) if m else None

    @property
    def is_ours(self) -> bool:
        """This project's own code (``Origin: vendor``): what export-pr may send."""
        return self.origin_kind == "vendor"

    @property
    def bugs(self) -> list[str]:
        return self.trailer_all("Bug")

    @property
    def related(self) -> list[tuple[str, str]]:
        """[(url, why)] of the Related trailers."""
        out = []
        for value in self.trailer_all("Related"):
            m = RELATED.match(value)
            out.append((m.group(1), m.group(2)) if m else (value, ""))
        return out

    @property
    def fix_pr(self) -> int | None:
        """The upstream PR of this patch's code (Submitted: ours; Backport: upstream's
        open PR carried), or None (a Backport of a commit names no PR)."""
        return pr_number(self.status_url)

    @property
    def backports_open_pr(self) -> bool:
        """A Backport of upstream's open PR (its url a PR, not a merged commit)."""
        return status_word(self) == "Backport" and self.fix_pr is not None

    @property
    def related_prs(self) -> list[tuple[int, str]]:
        """[(number, why)] of the Related PRs."""
        out = []
        for url, why in self.related:
            n = pr_number(url)
            if n:
                out.append((n, why))
        return out

    @property
    def upstream_prs(self) -> list[int]:
        """Every upstream PR the header names: the fix's first, then the Related ones."""
        nums = [self.fix_pr] if self.fix_pr else []
        return nums + [n for n, _ in self.related_prs if n not in nums]

    @property
    def regression_tests(self) -> list[str]:
        """Upstream paths of the ``Regression-Test`` files (test/registered/...)."""
        return self.trailer_all("Regression-Test")

    def section(self, name: str) -> str | None:
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


def parse_patch(path: str | os.PathLike[str]) -> Patch:
    """Parse one ``git format-patch`` file into a Patch (an mbox message: its
    headers through the stdlib ``email`` parser, the message up to ``---``)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    msg = email.parser.Parser(policy=email.policy.default).parsestr(text)
    payload = msg.get_payload()
    assert isinstance(payload, str)  # a format-patch file is one text part
    message, sep, rest = payload.partition("\n---\n")
    if not sep:
        raise ValueError(f"{path.name}: no '---' line after the commit message")
    subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", str(msg.get("Subject", "")))
    message = message.strip("\n")
    paragraphs = message.split("\n\n")
    trailers: list[tuple[str, str]] = []
    last = paragraphs[-1].splitlines() if paragraphs else []
    if last and all(re.match(r"^[A-Za-z][\w-]*: ", line) for line in last):
        for line in last:
            key, value = line.split(": ", 1)
            trailers.append((key, value))
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


def load_series(series_file: str | os.PathLike[str] = paths.SERIES) -> list[Patch]:
    """Every patch of the series, parsed, in order."""
    folder = Path(series_file).parent
    return [parse_patch(folder / name) for name in read_series(series_file)]


def regression_test_file(
    upstream_path: str, repo: str | os.PathLike[str] | None = None
) -> Path:
    """Where this repository keeps the test upstream has at ``upstream_path``:
    ``test/registered/...`` -> ``tests/regression/registered/...``."""
    rel = Path(upstream_path).relative_to("test")
    return Path(repo or paths.REPO) / "tests" / "regression" / rel


def status_word(patch: Patch) -> str:
    """'Pending', 'Submitted', 'Backport' or 'Inappropriate'."""
    return (patch.trailer("Upstream-Status") or "").split(" ", 1)[0]


def inappropriate_reason(patch: Patch) -> str:
    """The ``[why]`` of ``Inappropriate [why]`` ('' for another status)."""
    m = UPSTREAM_STATUS.match(patch.trailer("Upstream-Status") or "")
    return (m.group(4) if m else None) or ""
