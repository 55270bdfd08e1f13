"""The one table renderer of the tools: Markdown (README, status, rebase) or plain text
(smoke, launch's memory table)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def render(
    header: Sequence[str],
    rows: Iterable[Iterable[object]],
    markdown: bool = True,
    align: str | None = None,
) -> str:
    """A table of ``header`` and ``rows`` (lists of cells; str() is applied).

    Markdown: ``| a | b |`` lines under a ``|---|---|`` rule. Plain: columns padded
    to their widest cell, two spaces apart, a dashed rule under the header;
    ``align`` is a string of "l"/"r", one per column (default: all left).
    """
    cells = [[str(c) for c in r] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
    aligns = align or "l" * len(header)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *cells)]

    def line(row: Sequence[str]) -> str:
        out = [
            c.rjust(w) if a == "r" else c.ljust(w)
            for c, w, a in zip(map(str, row), widths, aligns)
        ]
        return "  ".join(out).rstrip()

    return "\n".join(
        [line(header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
        + [line(r) for r in cells]
    )
