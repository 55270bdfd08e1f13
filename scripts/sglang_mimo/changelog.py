"""changelog: CHANGELOG.md's per-release patch lists, derived from the patch headers.

Every release has a section ``## [<SGLang version>-mimo.<N>]``. The current
release (patches/pin.json "distribution") lists its carried patches between
``<!-- patches:begin -->`` and ``<!-- patches:end -->``, rendered from the
headers here (``render_patches``); older releases keep their lists as written when
they were current. Patches and topics that went upstream are recorded under a
``### Dropped`` heading of the release that stopped carrying them.

--check (default) exits 1 when CHANGELOG and series disagree: the current
release has no section, its generated list is missing, misplaced or stale, or a
patch of the series is listed under the current release's Dropped heading.
--write creates the current release's section when the pin has moved (the
markers move into it; the previous list stays as plain text) and regenerates
the list. This is the one writer of CHANGELOG.md: ``docs --write`` calls it,
``rebase --write`` uses its functions.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from sglang_mimo import blocks, paths, series

CHANGELOG = paths.REPO / "CHANGELOG.md"
BEGIN, END = "<!-- patches:begin -->", "<!-- patches:end -->"
SECTION = re.compile(r"^## \[(?P<release>[^\]]+)\].*$", re.M)


def render_patches(patches: list[series.Patch]) -> str:
    """The current release's list of carried patches (Markdown), from the headers."""
    out = []
    for p in patches:
        word = series.status_word(p)
        line = f"- {p.subject} — {word}"
        if word == "Backport" and p.backports_open_pr:
            line += f" of #{p.fix_pr} (open PR) by {p.author_name}"
        elif word == "Backport" and p.status_url:
            line += f" of {p.status_url.rsplit('/', 1)[1][:10]} by {p.author_name}"
        elif p.fix_pr:
            line += f" as #{p.fix_pr}"
        if word == "Inappropriate":
            line += f" ({series.inappropriate_reason(p)})"
        line += "."
        if p.bugs:
            line += (
                " Fixes " + ", ".join(f"#{u.rsplit('/', 1)[1]}" for u in p.bugs) + "."
            )
        if p.related_prs:
            line += " Related: " + ", ".join(
                f"#{n} ({why})" for n, why in p.related_prs
            )
            line += "."
        out.append(line)
    return "\n".join(out)


def sections(text: str) -> list[tuple[str, int, int]]:
    """[(release, start, end)] of every ``## [release]`` section, in file order."""
    heads = list(SECTION.finditer(text))
    return [
        (
            m["release"],
            m.start(),
            heads[i + 1].start() if i + 1 < len(heads) else len(text),
        )
        for i, m in enumerate(heads)
    ]


def section_text(text: str, release: str) -> str | None:
    for name, start, end in sections(text):
        if name == release:
            return text[start:end]
    return None


def dropped_entries(section: str) -> list[str]:
    """The items under the section's ``### Dropped`` heading, one string each."""
    m = re.search(r"^### Dropped\n(.*?)(?=^### |^## |\Z)", section, re.M | re.S)
    items = []
    for line in (m.group(1) if m else "").splitlines():
        if line.startswith("- "):
            items.append(line)
        elif items and line.startswith(" ") and line.strip():
            items[-1] += " " + line.strip()
    return items


def problems(
    text: str | None = None,
    patches: list[series.Patch] | None = None,
    pin: dict[str, Any] | None = None,
) -> list[str]:
    """Where CHANGELOG.md and the series disagree (empty list: they agree)."""
    text = CHANGELOG.read_text(encoding="utf-8") if text is None else text
    patches = series.load_series() if patches is None else patches
    pin = pin or paths.load_pin()
    release = pin["distribution"]
    found = []
    current = section_text(text, release)
    if current is None:
        return [f"CHANGELOG.md has no section for the current release [{release}]"]
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        found.append("CHANGELOG.md needs exactly one patches:begin/end marker pair")
    elif BEGIN not in current:
        found.append(f"the generated patch list is not in the [{release}] section")
    else:
        block = current.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")
        want = render_patches(patches)
        if block != want:
            found.append(
                f"the [{release}] patch list does not match the series headers:\n"
                f"--- CHANGELOG\n{block}\n--- series\n{want}"
            )
    dropped = dropped_entries(current)
    for p in patches:
        if any(p.subject in line for line in dropped):
            found.append(f"{p.name} is carried but listed under Dropped in [{release}]")
    return found


def ensure_release_section(text: str, pin: dict[str, Any]) -> str:
    """Add the section of pin["distribution"] (with the markers) if it is missing."""
    release = pin["distribution"]
    if section_text(text, release) is not None:
        return text
    # Freeze the previous list as plain text: drop the markers around it.
    text = text.replace(BEGIN + "\n", "").replace(END + "\n", "")
    head = (
        f"## [{release}] - unreleased\n\n"
        f"Base: SGLang {pin['version']} (tag {pin['tag']}), pinned with the sha256 "
        "of its x86_64 cp311/cp312 and aarch64 cp312 wheels in `patches/pin.json`.\n\n"
        f"### Carried patches\n\n{BEGIN}\n{END}\n\n"
    )
    first = SECTION.search(text)
    at = first.start() if first else len(text)
    return text[:at] + head + text[at:]


def add_dropped(text: str, release: str, entry: str) -> str:
    """Add the bullet ``entry`` under ``### Dropped`` in the ``release`` section."""
    for name, start, end in sections(text):
        if name != release:
            continue
        sec = text[start:end]
        if entry in sec:
            return text
        m = re.search(r"^### Dropped\n\n?", sec, re.M)
        if m:
            sec = sec[: m.end()] + entry + "\n" + sec[m.end() :]
        else:
            sec = sec.rstrip("\n") + f"\n\n### Dropped\n\n{entry}\n\n"
        return text[:start] + sec + text[end:]
    raise ValueError(f"CHANGELOG.md has no section [{release}]")


def dropped_entry(patch: series.Patch, version: str) -> str:
    """The Dropped line for a patch found upstream in SGLang ``version``."""
    fix = f" (#{patch.fix_pr})" if patch.fix_pr else ""
    return (
        f"- {patch.subject} — upstream in SGLang {version}{fix}; dropped from the series "
        f"(was {patch.name})"
    )


def render(
    text: str | None = None,
    patches: list[series.Patch] | None = None,
    pin: dict[str, Any] | None = None,
) -> str:
    """CHANGELOG.md with the current release's section and list regenerated."""
    text = CHANGELOG.read_text(encoding="utf-8") if text is None else text
    patches = series.load_series() if patches is None else patches
    text = ensure_release_section(text, pin or paths.load_pin())
    return blocks.replace_block(text, "patches", render_patches(patches))


def write() -> int:
    """Regenerate CHANGELOG.md (section and list); report what is still wrong: exit code."""
    before = CHANGELOG.read_text(encoding="utf-8")
    after = render(before)
    if after != before:
        CHANGELOG.write_text(after, encoding="utf-8")
        print("updated CHANGELOG.md")
    found = problems()
    for p in found:
        print(f"CHANGELOG.md: {p}")
    return 1 if found else 0


def run(args: argparse.Namespace) -> int:
    if args.write:
        return write()
    found = problems()
    for p in found:
        print(f"CHANGELOG.md: {p}")
    if found:
        print(
            "run `scripts/dev changelog --write` (or fix the Dropped list by hand)",
            file=sys.stderr,
        )
    return 1 if found else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "changelog",
        help="check or regenerate CHANGELOG.md's per-release patch lists",
        description=__doc__,
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="regenerate the lists")
    g.add_argument("--check", action="store_true", help="exit 1 when stale (default)")
    p.set_defaults(func=run)
