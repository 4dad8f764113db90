"""The sanitizer's policy holds against hostile HTML: every output is walked with the stdlib's
parser and checked against the allow-lists (tags, attributes, URL schemes, style properties),
for a list of known XSS vectors (OWASP's filter evasion cheat sheet, mutation XSS, DOM
clobbering, tracking pixels) and for mail that must survive (tables, fonts, inline images)."""

# ruff: noqa: E501  (the vectors are quoted as published)
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from mailport.messages.sanitize import ATTRIBUTES, STYLE_PROPERTIES, TAGS, content_id, sanitize_html

INLINE = {"logo@example.com": "https://mp.example/v1/mailboxes/mbx_1/messages/ref_x/attachments/1"}


class _Walk(HTMLParser):
    def __init__(self, remote_images: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.remote_images = remote_images
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            self.problems.append(f"tag {tag}")
        allowed = ATTRIBUTES["*"] | ATTRIBUTES.get(tag, set()) | {"rel", "target"}
        for name, value in attrs:
            value = value or ""
            if name not in allowed or name.startswith("on"):
                self.problems.append(f"attribute {tag}.{name}")
            lowered = "".join(value.split()).lower()
            if name == "href" and not lowered.startswith(("http:", "https:", "mailto:", "tel:")):
                self.problems.append(f"href {value!r}")
            if name == "src" and not (
                lowered.startswith("data:image/")
                and "svg" not in lowered
                or value in INLINE.values()
                or self.remote_images
                and lowered.startswith(("http:", "https:"))
            ):
                self.problems.append(f"src {value!r}")
            if name == "style":
                for declaration in filter(None, value.split(";")):
                    prop = declaration.partition(":")[0].strip().lower()
                    if prop not in STYLE_PROPERTIES or "url(" in lowered or "expression" in lowered:
                        self.problems.append(f"style {declaration!r}")
            if name == "target" and value != "_blank":
                self.problems.append(f"target {value!r}")
            if name == "rel" and value != "noopener noreferrer":
                self.problems.append(f"rel {value!r}")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment {data!r}")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def problems(html: str, *, remote_images: bool = False) -> list[str]:
    walk = _Walk(remote_images)
    walk.feed(html)
    walk.close()
    return walk.problems


VECTORS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=http://xss.example/xss.js></SCRIPT>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=javascript:alert('XSS')>",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    '<IMG """><SCRIPT>alert("XSS")</SCRIPT>">',
    "<IMG SRC=javascript:alert(String.fromCharCode(88,83,83))>",
    "<IMG SRC=# onmouseover=\"alert('xxs')\">",
    "<IMG onmouseover=\"alert('xxs')\">",
    '<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>',
    '<img src=x onerror="&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116&#0000040&#0000039&#0000088&#0000083&#0000083&#0000039&#0000041">',
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;&#39;&#88;&#83;&#83;&#39;&#41;>",
    "<IMG SRC=&#x6A&#x61&#x76&#x61&#x73&#x63&#x72&#x69&#x70&#x74&#x3A&#x61&#x6C&#x65&#x72&#x74&#x28&#x27&#x58&#x53&#x53&#x27&#x29>",
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
    "<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    '<SCRIPT/XSS SRC="http://xss.example/xss.js"></SCRIPT>',
    '<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert("XSS")>',
    '<<SCRIPT>alert("XSS");//\\<</SCRIPT>',
    "<SCRIPT SRC=http://xss.example/xss.js?< B >",
    "<IMG SRC=\"`<javascript:alert>`('XSS')\"",
    '</TITLE><SCRIPT>alert("XSS");</SCRIPT>',
    '<INPUT TYPE="IMAGE" SRC="javascript:alert(\'XSS\');">',
    "<BODY BACKGROUND=\"javascript:alert('XSS')\">",
    "<IMG DYNSRC=\"javascript:alert('XSS')\">",
    "<IMG LOWSRC=\"javascript:alert('XSS')\">",
    "<STYLE>li {list-style-image: url(\"javascript:alert('XSS')\");}</STYLE><UL><LI>XSS</br>",
    "<IMG SRC='vbscript:msgbox(\"XSS\")'>",
    "<svg/onload=alert('XSS')>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text x=20 y=20>XSS</text></a></svg>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<math><mi xlink:href="data:x,<script>alert(4)</script>">',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
    "<BODY ONLOAD=alert('XSS')>",
    "<BGSOUND SRC=\"javascript:alert('XSS');\">",
    "<BR SIZE=\"&{alert('XSS')}\">",
    '<LINK REL="stylesheet" HREF="javascript:alert(\'XSS\');">',
    '<LINK REL="stylesheet" HREF="http://xss.example/xss.css">',
    "<STYLE>@import'http://xss.example/xss.css';</STYLE>",
    '<META HTTP-EQUIV="Link" Content="<http://xss.example/xss.css>; REL=stylesheet">',
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=javascript:alert(\'XSS\');">',
    '<META HTTP-EQUIV="refresh" CONTENT="0;url=data:text/html base64,PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4K">',
    "<IFRAME SRC=\"javascript:alert('XSS');\"></IFRAME>",
    '<IFRAME SRC=# onmouseover="alert(document.cookie)"></IFRAME>',
    "<FRAMESET><FRAME SRC=\"javascript:alert('XSS');\"></FRAMESET>",
    "<TABLE BACKGROUND=\"javascript:alert('XSS')\"><TD BACKGROUND=\"javascript:alert('XSS')\">",
    "<DIV STYLE=\"background-image: url(javascript:alert('XSS'))\">",
    "<DIV STYLE=\"background-image:\\0075\\0072\\006C\\0028'\\006a\\0061\\0076\\0061\\0073\\0063\\0072\\0069\\0070\\0074\\003a\\0061\\006c\\0065\\0072\\0074\\0028.1027\\0058.1053\\0053\\0027\\0029'\\0029\">",
    "<DIV STYLE=\"width: expression(alert('XSS'));\">",
    "<IMG STYLE=\"xss:expr/*XSS*/ession(alert('XSS'))\">",
    '<p style="b\\61ckground:url(https://t.example/x)">x</p>',
    '<p style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:99999">cover</p>',
    "<BASE HREF=\"javascript:alert('XSS');//\">",
    '<OBJECT TYPE="text/x-scriptlet" DATA="http://xss.example/scriptlet.html"></OBJECT>',
    '<EMBED SRC="data:image/svg+xml;base64,PHN2ZyB4bWxuczpzdmc9Imh0dH A6Ly93d3cudzMub3JnLzIwMDAvc3ZnIiB4bWxucz0iaHR0cDovL3d3dy53My5vcmcv" type="image/svg+xml" AllowScriptAccess="always"></EMBED>',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="  javascript:alert(1)">x</a>',
    '<a href="java\nscript:alert(1)">x</a>',
    '<a href="/settings/delete">relative</a>',
    '<a href="//evil.example/">protocol-relative</a>',
    '<a href="https://ok.example/" target="_top" ping="https://t.example/">x</a>',
    '<a href="https://ok.example/" rel="opener">x</a>',
    '<form action="https://evil.example/"><input name=password><button formaction=x>go</button></form>',
    '<img name="getElementById"><form id="cookie"><a id="location" name="x" class="btn">x</a>',
    '<img src="https://ok.example/a.png" srcset="https://t.example/x 2x">',
    '<picture><source srcset="https://t.example/p.png"><img src="x"></picture>',
    '<video poster="https://t.example/p.png"><source src="https://t.example/v.mp4"></video>',
    '<audio src="https://t.example/a.mp3" autoplay></audio>',
    "<details open ontoggle=alert(1)>",
    "<marquee onstart=alert(1)>",
    "<x contenteditable onfocus=alert(1) autofocus>",
    "<!--[if gte IE 4]><SCRIPT>alert('XSS');</SCRIPT><![endif]-->",
    "<!-- <img src=x onerror=alert(1)> -->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<template><script>alert(1)</script></template>",
    "<xmp><img src=x onerror=alert(1)></xmp>",
    "<textarea><img src=x onerror=alert(1)></textarea>",
    "<title><img src=x onerror=alert(1)></title>",
    "<style><img src=x onerror=alert(1)></style>",
    '<iframe srcdoc="<script>alert(1)</script>">',
    '<div data-bind="alert(1)" xmlns="http://www.w3.org/1999/xhtml">x</div>',
    '<img src="cid:unknown@example.com">',
    '<img src="cid:logo@example.com" onerror="alert(1)">',
    '<img src="http://t.example/pixel.gif" width=1 height=1>',
    '<table background="https://t.example/bg.png"><tr><td style="background:url(https://t.example/x)">x</td></tr></table>',
    "<isindex type=image src=1 onerror=alert(1)>",
    '<a href="&#x6A;avascript:alert(1)">x</a>',
    '<a href="javas&#99;ript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="file:///etc/passwd">x</a>',
    '<div style="color:red\\;background:url(x)">x</div>',
    '<div style="color: red; behavior: url(xss.htc); -moz-binding: url(xss.xml#xss)">x</div>',
    "<div style=\"font-family:'x';}</style><script>alert(1)</script>\">x</div>",
    "<p>\x00<scr\x00ipt>alert(1)</script></p>",
]


@pytest.mark.parametrize("vector", VECTORS, ids=range(len(VECTORS)))
def test_no_vector_survives(vector: str) -> None:
    for remote in (False, True):
        for new_tab in (False, True):
            safe = sanitize_html(vector, inline_images=INLINE, remote_images=remote, links_in_new_tab=new_tab)
            found = problems(safe.html, remote_images=remote)
            assert not found, (vector, safe.html, found)
            markup = re.sub(r"(^|>)[^<]*(<|$)", r"\1\2", safe.html).lower()  # text is escaped
            for word in ("javascript", "vbscript", "<script", "onerror", "onload", "expression("):
                assert word not in markup, (vector, safe.html)


def test_mail_formatting_survives() -> None:
    html = (
        "<html><head><title>Newsletter</title><style>p{color:red}</style></head><body>"
        '<table width="600" cellpadding="4" bgcolor="#ffffff"><tr><td align="center" valign="top">'
        '<font color="#333333" face="Arial" size="2"><b>Hello</b> <i>there</i></font></td></tr></table>'
        '<p style="color: #222; font-size: 14px; margin: 0 0 8px 0; padding-left: 4px">Text</p>'
        "<blockquote>quoted</blockquote><ul><li>one</li></ul><pre>code</pre>"
        '<a href="https://example.com/x?a=1&amp;b=2">link</a> <a href="mailto:a@example.com">mail</a>'
        "</body></html>"
    )
    safe = sanitize_html(html).html
    assert not problems(safe)
    assert "Newsletter" not in safe and "color:red}" not in safe  # title and style elements gone
    assert '<table width="600" cellpadding="4" bgcolor="#ffffff">' in safe
    assert '<td align="center" valign="top">' in safe
    assert '<font color="#333333" face="Arial" size="2"><b>Hello</b>' in safe
    assert 'style="color:#222;font-size:14px;margin:0 0 8px 0;padding-left:4px"' in safe
    assert '<a href="https://example.com/x?a=1&amp;b=2" rel="noopener noreferrer">link</a>' in safe
    assert '<a href="mailto:a@example.com" rel="noopener noreferrer">mail</a>' in safe
    assert "<blockquote>quoted</blockquote><ul><li>one</li></ul><pre>code</pre>" in safe


def test_links_open_in_a_new_tab_on_request() -> None:
    html = '<a href="https://example.com/" target="_self">x</a>'
    assert "target" not in sanitize_html(html).html
    assert 'target="_blank"' in sanitize_html(html, links_in_new_tab=True).html
    assert 'rel="noopener noreferrer"' in sanitize_html(html, links_in_new_tab=True).html


def test_remote_images_are_blocked_and_counted_unless_allowed() -> None:
    html = (
        '<img src="https://t.example/pixel.gif?u=42" width="1" alt="pixel">'
        '<img src="http://cdn.example/logo.png" alt="logo"><img src="//cdn.example/x.png">'
    )
    blocked = sanitize_html(html)
    assert blocked.remote_images_blocked == 2
    assert "t.example" not in blocked.html and "cdn.example" not in blocked.html
    assert '<img alt="pixel" width="1">' in blocked.html  # the alt text still shows
    allowed = sanitize_html(html, remote_images=True)
    assert allowed.remote_images_blocked == 0
    assert 'src="https://t.example/pixel.gif?u=42"' in allowed.html
    assert 'src="http://cdn.example/logo.png"' in allowed.html
    assert "//cdn.example/x.png" not in allowed.html  # relative to the host page: never


def test_inline_images_point_to_the_attachment_urls() -> None:
    url = INLINE["logo@example.com"]
    for reference in (
        "cid:logo@example.com",
        "cid:logo%40example.com",
        "CID:logo@example.com",
        " cid:<logo@example.com>",
    ):
        safe = sanitize_html(f'<img src="{reference}" alt="Logo">', inline_images=INLINE)
        assert safe.html == f'<img src="{url}" alt="Logo">', reference
    relative = {"logo@example.com": "/v1/mailboxes/mbx_1/messages/ref_x/attachments/1"}
    keyed_with_brackets = {"<logo@example.com>": relative["logo@example.com"]}
    for mapping in (relative, keyed_with_brackets):
        safe = sanitize_html('<img src="cid:logo@example.com"><img src="/v1/other">', inline_images=mapping)
        assert safe.html == f'<img src="{relative["logo@example.com"]}"><img>'
    assert sanitize_html('<img src="cid:other@example.com">', inline_images=INLINE).html == "<img>"


def test_data_uris_only_for_raster_images() -> None:
    png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    assert sanitize_html(f'<img src="{png}">').html == f'<img src="{png}">'
    for bad in (
        "data:image/svg+xml;base64,PHN2Zz4=",
        "data:text/html,<script>alert(1)</script>",
        "data:image/png,raw",
    ):
        assert sanitize_html(f'<img src="{bad}">').html == "<img>", bad
        assert "data:" not in sanitize_html(f'<a href="{bad}">x</a>').html


def test_content_ids_compare_without_brackets_and_escapes() -> None:
    assert content_id("<part1.ABC@example.com>") == "part1.ABC@example.com"
    assert content_id("part1.ABC%40example.com") == "part1.ABC@example.com"
    assert content_id(" <a b> ") == "a b"


def test_plain_text_and_empty_input() -> None:
    assert sanitize_html("").html == ""
    assert sanitize_html("a < b & c").html == "a &lt; b &amp; c"
