"""Read patches/series and the patch headers: the one parser every tool uses.

A patch is ``git format-patch`` output. Its commit message carries all of the
patch's metadata: the subject (with SGLang's bracket tag), a body with
``Motivation:`` and ``Modifications:`` sections, and a last paragraph of git
trailers (``Upstream-Status``, ``Upstream-PR``, ``Breaks-Without``).
"""

import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from pathlib import Path

from sglang_mimo import paths, tables

REQUIRED_TRAILERS = ("Upstream-Status", "Upstream-PR", "Breaks-Without")
REQUIRED_SECTIONS = ("Motivation", "Modifications")
UPSTREAM_STATUS = re.compile(
    r"^(Pending|Submitted \[(\S+)\]|Backport \[(\S+)\]|Inappropriate \[(.+)\])$"
)
PR_URL = re.compile(r"^https://github\.com/sgl-project/sglang/pull/(\d+)$")


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
    def upstream_prs(self):
        return [
            int(PR_URL.match(u).group(1))
            for u in self.trailer_all("Upstream-PR")
            if PR_URL.match(u)
        ]

    def section(self, name):
        """The text of body section ``name:`` up to the next section or the trailers."""
        m = re.search(rf"^{name}:\n(.*?)(?=^\w[\w -]*:\n|\Z)", self.body, re.M | re.S)
        return m.group(1).strip() if m else None


def read_series(series_file=paths.SERIES):
    """The patch file names of the series, in order."""
    names = []
    for line in Path(series_file).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.split()[0])
    return names


def parse_patch(path):
    """Parse one ``git format-patch`` file into a Patch."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    head, sep, rest = text.partition("\n---\n")
    if not sep:
        raise ValueError(f"{path.name}: no '---' line after the commit message")
    lines = head.split("\n")
    headers, i = {}, 1  # line 0 is the mbox "From <sha> ..." line
    while i < len(lines) and lines[i]:
        key, _, value = lines[i].partition(":")
        i += 1
        while i < len(lines) and lines[i].startswith((" ", "\t")):
            value += lines[i]
            i += 1
        headers[key] = str(make_header(decode_header(value.strip())))
    subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", headers.get("Subject", ""))
    message = "\n".join(lines[i + 1 :]).strip("\n")
    paragraphs = message.split("\n\n")
    trailers = []
    last = paragraphs[-1].splitlines() if paragraphs else []
    if last and all(re.match(r"^[A-Za-z][\w-]*: ", l) for l in last):
        trailers = [tuple(l.split(": ", 1)) for l in last]
        message = "\n\n".join(paragraphs[:-1])
    files = re.findall(r"^diff --git a/(\S+) b/\S+$", rest, re.M)
    preimages = {}
    for f, old in re.findall(
        r"^diff --git a/(\S+) b/\S+\n(?:.*\n)*?index ([0-9a-f]+)\.\.", rest, re.M
    ):
        preimages[f] = old
    return Patch(
        name=path.name,
        path=path,
        author=headers.get("From", ""),
        date=headers.get("Date", ""),
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
    status = patch.trailer("Upstream-Status")
    if status and not UPSTREAM_STATUS.match(status):
        problems.append(f"Upstream-Status not Yocto-style: {status!r}")
    for url in patch.trailer_all("Upstream-PR"):
        if not PR_URL.match(url):
            problems.append(f"Upstream-PR is not an sgl-project/sglang PR URL: {url!r}")
    if not patch.files:
        problems.append("touches no file")
    for f in patch.files:
        if not f.startswith("python/sglang/"):
            problems.append(f"{f} is not in the upstream layout (python/sglang/...)")
    return problems


def status_word(patch):
    """'Pending', 'Submitted', 'Backport' or 'Inappropriate'."""
    return (patch.trailer("Upstream-Status") or "").split(" ", 1)[0]


def render_patch_table(patches):
    """The README's patch table (Markdown), derived from the headers."""
    rows = []
    for p in patches:
        prs = ", ".join(
            f"[#{num}](https://github.com/sgl-project/sglang/pull/{num})"
            for num in p.upstream_prs
        )
        rows.append(
            [p.name.split("-", 1)[0], p.subject, status_word(p), prs]
            + [p.trailer("Breaks-Without")]
        )
    header = ["#", "patch", "upstream status", "upstream PR", "what breaks without it"]
    return tables.render(header, rows)
