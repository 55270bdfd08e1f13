"""The generated blocks of README.md and CHANGELOG.md: text between
``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` marker comments."""

from __future__ import annotations

import re


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:begin -->\n)(.*?)(<!-- {name}:end -->)", re.S)


def block(text: str, name: str) -> str | None:
    """The body of block ``name`` (without its trailing newline), or None."""
    m = _pattern(name).search(text)
    return m.group(2).removesuffix("\n") if m else None


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the body of block ``name`` replaced by ``body``."""
    pattern = _pattern(name)
    if not pattern.search(text):
        raise SystemExit(f"no <!-- {name}:begin/end --> markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text, count=1)
