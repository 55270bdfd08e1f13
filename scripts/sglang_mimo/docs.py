"""docs: regenerate what README.md and CHANGELOG.md derive from the patch headers.

The README's patch table and the CHANGELOG's list of carried patches for the
current release (patches/pin.json "distribution") sit between marker comments.
``--write`` rewrites the README table from the headers and hands CHANGELOG.md
to ``sglang-mimo changelog --write``, its one writer; ``--check`` exits 1 when
either is stale.
"""

import re

from sglang_mimo import paths, series

README = paths.REPO / "README.md"
CHANGELOG = paths.REPO / "CHANGELOG.md"


def render_changelog_patches(patches):
    out = []
    for p in patches:
        line = f"- {p.subject} — {series.status_word(p)}"
        if p.fix_pr:
            line += (
                f" {'of' if series.status_word(p) == 'Backport' else 'as'} #{p.fix_pr}"
            )
        if series.status_word(p) == "Inappropriate":
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


def replace_block(text, name, body):
    pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"no <!-- {name}:begin/end --> markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text, count=1)


def rendered():
    """{README: its text with the patch table regenerated}."""
    patches = series.load_series()
    return {
        README: replace_block(
            README.read_text(), "patch-table", series.render_patch_table(patches)
        ),
    }


def run(args):
    from sglang_mimo import changelog

    stale = [p for p, text in rendered().items() if p.read_text() != text]
    if args.write:
        for p, text in rendered().items():
            p.write_text(text)
        for p in stale:
            print(f"updated {p.relative_to(paths.REPO)}")
        return changelog.write()
    # What is stale is the check's report (stdout, like changelog's and audit's).
    for p in stale:
        print(f"{p.relative_to(paths.REPO)} is stale: run `sglang-mimo docs --write`")
    found = changelog.problems()
    for p in found:
        print(f"CHANGELOG.md: {p}")
    return 1 if stale or found else 0


def add_parser(sub):
    p = sub.add_parser(
        "docs",
        help="regenerate the README patch table and (through changelog) the CHANGELOG list",
        description=__doc__,
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="rewrite the generated blocks")
    g.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a generated block is stale (default)",
    )
    p.set_defaults(func=run)
