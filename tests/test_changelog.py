"""scripts/dev changelog: CHANGELOG.md and the series agree, and the check can fail."""

import json
import re

from cli_helpers import REPO, repo_copy, run_cli
from sglang_mimo import changelog, paths, series


def test_changelog_agrees_with_the_series():
    assert changelog.problems() == []
    run_cli("changelog", "--check", check_rc=0)


def test_the_two_topics_fixed_upstream_are_recorded_as_dropped():
    text = (REPO / "CHANGELOG.md").read_text()
    current = changelog.section_text(text, paths.load_pin()["distribution"])
    entries = changelog.dropped_entries(current)
    dropped = "\n".join(entries)
    sdpa = next(e for e in entries if "SDPA varlen audio fallback" in e)
    assert "#31343" in sdpa and "0.5.16" in sdpa and "#24497" in sdpa
    arch = next(e for e in entries if "renamed architecture branches" in e)
    assert "#23808" in arch and "#23811" in arch and "0.5.11" in arch
    carried = {p.subject for p in series.load_series()}
    assert not any(s in dropped for s in carried)


def test_check_fails_when_changelog_and_series_disagree(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    log = repo / "CHANGELOG.md"
    good = log.read_text()
    first = series.load_series()[0]

    # a carried patch missing from the generated list
    log.write_text("".join(l for l in good.splitlines(True) if first.subject not in l))
    proc = run_cli("changelog", "--check", repo=repo, check_rc=1)
    assert "does not match the series headers" in proc.stdout
    run_cli("changelog", "--write", repo=repo, check_rc=0)
    assert log.read_text() == good

    # a carried patch listed as dropped
    log.write_text(
        good.replace("### Dropped\n\n", f"### Dropped\n\n- {first.subject} — gone\n", 1)
    )
    proc = run_cli("changelog", "--check", repo=repo, check_rc=1)
    assert f"{first.name} is carried but listed under Dropped" in proc.stdout


def test_a_new_release_gets_its_own_section(tmp_path):
    repo = repo_copy(tmp_path / "repo")
    pin_file = repo / "patches" / "pin.json"
    pin = json.loads(pin_file.read_text())
    old = pin["distribution"]
    pin["distribution"] = old.rsplit(".", 1)[0] + ".2"
    pin_file.write_text(json.dumps(pin, indent=2) + "\n")
    proc = run_cli("changelog", "--check", repo=repo, check_rc=1)
    assert f"no section for the current release [{pin['distribution']}]" in proc.stdout
    run_cli("changelog", "--write", repo=repo, check_rc=0)
    run_cli("changelog", "--check", repo=repo, check_rc=0)
    text = (repo / "CHANGELOG.md").read_text()
    new, previous = (
        changelog.section_text(text, pin["distribution"]),
        changelog.section_text(text, old),
    )
    assert "<!-- patches:begin -->" in new and "<!-- patches:begin -->" not in previous
    for p in series.load_series():
        assert p.subject in new and p.subject in previous  # the old list stays
    assert text.index(f"## [{pin['distribution']}]") < text.index(f"## [{old}]")
    assert re.search(r"^### Dropped", previous, re.M)
