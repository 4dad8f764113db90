"""The text/plain part generated from HTML."""

from __future__ import annotations

import pytest

from mailport.sending import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Hello</p><p>World</p>", "Hello\n\nWorld\n"),
        ("Line one<br>Line two<br/>three", "Line one\nLine two\nthree\n"),
        (
            "<p>Fish &amp; chips &lt;3 &eacute;t&eacute; &#8364;5 &#x263A;&nbsp;ok</p>",
            "Fish & chips <3 été €5 ☺ ok\n",
        ),
        ('<a href="https://x.org/a?b=1&amp;c=2">the docs</a>', "the docs (https://x.org/a?b=1&c=2)\n"),
        ('<a href="https://x.org/">https://x.org/</a>', "https://x.org/\n"),
        ('<a href="mailto:help@x.org">help@x.org</a>', "help@x.org\n"),
        ('<a href="mailto:help@x.org">write to us</a>', "write to us (help@x.org)\n"),
        ('<a href="javascript:alert(1)">click</a>', "click\n"),
        ('<a href="https://x.org/"><img src="x.png"></a>', "https://x.org/\n"),
        ("<ul><li>one</li><li>two</li></ul>", "- one\n- two\n"),
        ("<ol><li>first</li><li>second</li></ol>", "1. first\n2. second\n"),
        ("<ul><li>a<ul><li>a1</li></ul></li><li>b</li></ul>", "- a\n  - a1\n- b\n"),
        ("<h1>Title</h1><p>text</p>", "Title\n\ntext\n"),
        ("<blockquote><p>quoted</p><p>more</p></blockquote><p>after</p>", "> quoted\n>\n> more\n\nafter\n"),
        ("<pre>  indented\n    code</pre>", "  indented\n    code\n"),
        ("<p>a    lot\n\n of   space</p>", "a lot of space\n"),
        (
            "<html><head><title>T</title><style>p{color:red}</style></head><body><p>x</p>"
            "<script>var y = '<p>';</script></body></html>",
            "x\n",
        ),
        (
            "<table><tr><td>Name</td><td>Zoë</td></tr><tr><td>Order</td><td>42</td></tr></table>",
            "Name Zoë\nOrder 42\n",
        ),
        ("<p>before</p><hr><p>after</p>", "before\n\n--------------------\n\nafter\n"),
        ('<img src="cid:logo" alt="Our logo">', "Our logo\n"),
        ("<div>one</div><div>two</div>", "one\ntwo\n"),
        ("<blockquote>a<blockquote>b</blockquote>c</blockquote>", "> a\n>\n> > b\n>\n> c\n"),
        ("", ""),
        ("<p>unclosed <b>bold", "unclosed bold\n"),
        ("<p>bad &bogus; entity & ampersand</p>", "bad &bogus; entity & ampersand\n"),
        ("<p>x</p><!-- comment --><p>y</p>", "x\n\ny\n"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_large_html_is_converted_in_linear_time() -> None:
    # 50,000 tags on one line: a converter re-joining the line per piece would take minutes
    html = "<p>" + "<b>word</b> " * 50_000 + '<a href="https://x.org/">' + "<i>y</i>" * 1000 + "</a></p>"
    text = html_to_text(html)
    assert text.startswith("word word")
    assert text.endswith("y (https://x.org/)\n")
    assert text.count("word") == 50_000
