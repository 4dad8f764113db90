"""HTML -> a readable text/plain alternative, on the stdlib ``html.parser``.

Written here because the well-known converter (html2text) is GPL. Deliberately small: block
elements become line breaks, links keep their target (``text (url)``), list items get ``- ``
or ``1. ``, ``<br>`` breaks, ``<pre>`` keeps its whitespace, ``<blockquote>`` lines get
``> ``, scripts/styles/heads are dropped, entities are decoded by the parser. Elsewhere
whitespace collapses as a browser would.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = frozenset(
    "address article aside div dl dt dd fieldset figure footer form h1 h2 h3 h4 h5 h6 header "
    "hr main nav ol p section table tr ul li pre blockquote".split()
)
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})
_SPACE = re.compile(r"[ \t\r\n\f]+")


def _is_blank(line: str) -> bool:
    return not line.replace(">", "").strip()


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []  # finished lines
        self.current: list[str] = []  # the line being built, in pieces
        self.has_text = False  # the current line has something besides blanks
        self.skip = 0
        self.pre = 0
        self.quote = 0
        self.lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self.links: list[str | None] = []
        self.link_text: list[int] = []  # len(current) when each <a> opened: where its label starts

    # -- line handling
    def _text_so_far(self) -> str:
        return "".join(self.current)

    def _append(self, text: str) -> None:
        """Add to the current line; state is kept incrementally so long lines stay linear."""
        if text:
            self.current.append(text)
            self.has_text = self.has_text or bool(text.strip())

    def _break(self, blank: bool = False) -> None:
        line = self._text_so_far().rstrip(" ")
        self.current = []
        self.has_text = False
        if line.strip():
            self.lines.append("> " * self.quote + line)
        if blank and self.lines and not _is_blank(self.lines[-1]):
            self.lines.append(("> " * self.quote).rstrip())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        if tag == "br":
            self._break()
            return
        if tag in ("p", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "ul", "ol", "table"):
            self._break(blank=not self.lists)
        elif tag in _BLOCKS:
            self._break()
        if tag == "blockquote":
            self.quote += 1
        elif tag == "pre":
            self.pre += 1
        elif tag in ("ul", "ol"):
            self.lists.append([tag == "ol", 0])
        elif tag == "li":
            indent = "  " * max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0]:
                self.lists[-1][1] += 1
                self._append(f"{indent}{self.lists[-1][1]}. ")
            else:
                self._append(f"{indent}- ")
        elif tag == "hr":
            self.lines.append("-" * 20)
        elif tag in ("td", "th") and self.has_text:
            self._append(" ")
        elif tag == "a":
            href = dict(attrs).get("href")
            self.links.append(href)
            self.link_text.append(len(self.current))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.handle_data(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr", "img"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(self.skip - 1, 0)
            return
        if tag == "a" and self.links:
            href = self.links.pop()
            start = self.link_text.pop()
            label = "".join(self.current[start:]).strip()
            if href and not href.lower().startswith(("javascript:", "cid:", "#")) and href != label:
                target = href[7:] if href.lower().startswith("mailto:") else href
                if target != label:
                    self._append(f" ({target})" if label else target)
            return
        if tag == "blockquote":
            self._break()
            while self.lines and _is_blank(self.lines[-1]) and self.lines[-1]:
                self.lines.pop()  # no quoted blank line at the end of a quote
            self.quote = max(self.quote - 1, 0)
            self._break(blank=True)
        elif tag == "pre":
            self._break(blank=True)
            self.pre = max(self.pre - 1, 0)
        elif tag in ("ul", "ol"):
            self._break(blank=len(self.lists) == 1)
            if self.lists:
                self.lists.pop()
        elif tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6", "table"):
            self._break(blank=not self.lists)
        elif tag in _BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            parts = data.split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._break()
                self._append(part)
            return
        text = _SPACE.sub(" ", data.replace("\xa0", " "))
        if not self.has_text or self.current[-1].endswith(" "):
            text = text.lstrip(" ")
        if text:
            self._append(text)

    def result(self) -> str:
        self._break()
        while self.lines and _is_blank(self.lines[-1]):
            self.lines.pop()
        return "\n".join(self.lines) + ("\n" if self.lines else "")


def html_to_text(html: str) -> str:
    """A text/plain rendering of ``html`` for the alternative part (never raises on bad HTML)."""
    converter = _Converter()
    converter.feed(html)
    converter.close()
    return converter.result()
