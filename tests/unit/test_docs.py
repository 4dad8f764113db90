"""Docs stay true: every error code has a troubleshooting section."""

from __future__ import annotations

import re
from pathlib import Path

from mailport.errors import all_error_classes

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_error_code_has_a_troubleshooting_section():
    headings = set(re.findall(r"^## (\S+)\s*$", (DOCS / "troubleshooting.md").read_text(), re.M))
    missing = sorted({cls.code for cls in all_error_classes()} - headings)
    assert not missing, f"docs/troubleshooting.md lacks sections for: {missing}"


def test_every_shell_example_is_run_or_excluded_with_a_reason():
    """tests/e2e/test_docs_examples.py runs every example without a skip marker; the rest
    must say why, and the markers must be understood (a typo would silently exclude)."""
    from tests.fixtures.docs_examples import examples

    found = examples()
    assert len(found) >= 15
    problems = {e.id: e.problems for e in found if e.problems}
    assert not problems, problems
    for example in found:
        if example.skip is not None:
            assert len(example.skip) >= 10, f"{example.id}: say why it cannot run"


def test_examples_use_one_set_of_variables():
    from tests.fixtures.docs_examples import examples

    for example in examples():
        scripts = "\n".join(c.script for c in example.commands()).splitlines()
        commands = "\n".join(line for line in scripts if not line.lstrip().startswith("#"))
        old = re.findall(r"\$(?:\{)?(KEY|MAILPORT|MAILPORT_API_KEY|API_KEY|TOKEN)\b", commands)
        assert not old, f"{example.id}: use $MAILPORT_URL / $MAILPORT_KEY, not ${old[0]}"
        if example.skip is None:
            assert "127.0.0.1:8025" not in commands, f"{example.id}: use $MAILPORT_URL"


def test_the_example_conventions():
    from tests.fixtures.docs_examples import examples_in, missing_output

    doc = "\n".join(
        [
            "<!-- docs-test: setup=mailbox -->",
            "```sh",
            'curl -s "$MAILPORT_URL/v1/x"',
            '# {"id": "mbx_…", "n": 3, …}',
            "```",
            "",
            "```",
            "$ mailport db purge --dry-run   # a comment",
            "events: 118",
            "…",
            "$ mailport db status",
            "```",
            "<!-- docs-test: skip -->",
            "```bash",
            "make run",
            "```",
            "<!-- docs-test: setup=mailbox fails=not_found -->",
            "```sh",
            'curl -s "$MAILPORT_URL/v1/mailboxes/mbx_0"',
            "```",
            "<!-- docs-test: sertup=mailbox -->",
            "```console",
            "$ true",
            "```",
            "```json",
            '{"not": "an example"}',
            "```",
        ]
    )
    sh, console, skipped, failing, typo = examples_in("doc.md", doc)
    assert failing.fails == "not_found" and failing.setups == ("mailbox",) and not failing.problems
    assert sh.setups == ("mailbox",) and sh.skip is None and not sh.problems
    assert [c.expected for c in sh.commands()] == [('{"id": "mbx_…", "n": 3, …}',)]
    assert [(c.script, c.expected) for c in console.commands()] == [
        ("mailport db purge --dry-run   # a comment", ("events: 118", "…")),
        ("mailport db status", ()),
    ]
    assert skipped.problems and typo.problems  # a skip without a reason, an unknown option
    url = "http://127.0.0.1:40123"
    assert missing_output(sh.commands()[0].expected, '{"id":"mbx_01x","n":12,"z":1}', url) == []
    assert missing_output(("events: 118",), "raw: 1\nevents: 0\n", url) == []
    assert missing_output(("events: 118",), "raw: 1\n", url) == ["events: 118"]
    shown = ('{"url": "http://127.0.0.1:8025/link/…"}',)
    assert missing_output(shown, '{"url":"http://127.0.0.1:40123/link/abc"}', url) == []
