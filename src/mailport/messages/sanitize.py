"""A message's HTML made safe to embed in another application's page.

Mail HTML is written by strangers: it must not run script, submit forms, frame other pages,
restyle or cover the host page, or tell its sender when and where it was opened. The work is
done by `nh3 <https://nh3.readthedocs.io>`_ (Python bindings to the Rust crate ammonia, an
html5ever-based allow-list sanitizer; MIT), because a regular expression or a home-made parser
loses to mutation XSS and parser differentials; bleach, the usual Python choice, is deprecated.
This module only decides the policy:

* Allowed: the formatting and table tags mail uses (``font``, ``center`` and table layout
  attributes included). Removed with their content: ``script``, ``style``, ``title``,
  ``noscript``, ``template`` and embedded documents (``iframe``, ``object``, ``embed``, …).
  Removed, content kept: everything else (forms and their controls, ``meta``, ``base``,
  ``link``, unknown tags). Never kept: event handlers, ``id``, ``name`` and ``class`` (they
  would clobber or pick up the host page's DOM and CSS), ``srcset`` and ``background``.
* ``style`` attributes are **filtered**, not dropped: only the typography, colour, box and table
  properties in :data:`STYLE_PROPERTIES` survive; nothing that loads a URL (``background``,
  ``list-style-image``, ``cursor``, ``content``…) or places the message over the page
  (``position``, ``z-index``, ``transform``).
* Links keep ``http``, ``https``, ``mailto`` and ``tel`` targets, get
  ``rel="noopener noreferrer"``, and ``target="_blank"`` on request. Relative URLs are
  removed: they would point into the host application.
* Images: ``cid:`` references become the URLs the caller gives for the message's inline
  parts (so they display); ``data:`` URIs are kept for raster images only; remote images are
  removed unless asked for (they are read receipts in disguise) and counted, so a viewer can
  offer "show images".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import nh3

TAGS = frozenset(nh3.ALLOWED_TAGS | {"font", "big", "tfoot", "caption", "center"}) - {"area", "map"}

# Their content is not text a reader should see (or it is a document of its own).
CLEAN_CONTENT_TAGS = frozenset(
    {"script", "style", "title", "noscript", "template", "iframe", "frame", "frameset", "noframes"}
    | {"object", "embed", "applet", "noembed", "svg", "math", "head"}
)

_TABLE_CELL = {"width", "height", "colspan", "rowspan", "align", "valign", "bgcolor", "nowrap", "scope"}
ATTRIBUTES: dict[str, set[str]] = {
    "*": {"title", "dir", "lang", "style", "align"},
    "a": {"href", "hreflang"},
    "img": {"src", "alt", "width", "height", "border", "align", "hspace", "vspace"},
    "font": {"color", "face", "size"},
    "table": {"width", "height", "border", "cellpadding", "cellspacing", "bgcolor", "align", "summary"},
    "td": _TABLE_CELL | {"headers"},
    "th": _TABLE_CELL | {"headers", "abbr"},
    "tr": {"align", "valign", "bgcolor", "height"},
    "thead": {"align", "valign"},
    "tbody": {"align", "valign"},
    "tfoot": {"align", "valign"},
    "col": {"span", "width", "align", "valign"},
    "colgroup": {"span", "width", "align", "valign"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value", "type"},
    "hr": {"width", "size", "noshade"},
    "bdo": {"dir"},
    "time": {"datetime"},
    "data": {"value"},
    "abbr": {"title"},
}

_SIDES = ("", "-top", "-right", "-bottom", "-left")
STYLE_PROPERTIES = frozenset(
    {
        "color", "background-color", "opacity",
        "font", "font-family", "font-size", "font-style", "font-weight", "font-variant",
        "line-height", "letter-spacing", "word-spacing", "white-space", "word-break",
        "word-wrap", "overflow-wrap", "hyphens", "text-align", "text-indent", "text-transform",
        "text-decoration", "text-decoration-color", "text-decoration-line",
        "text-decoration-style", "vertical-align", "direction",
        "width", "height", "min-width", "max-width", "min-height", "max-height",
        "display", "float", "clear", "overflow", "box-sizing",
        "border-collapse", "border-spacing", "table-layout", "caption-side", "empty-cells",
        "list-style-type", "list-style-position", "border-radius",
    }
    | {f"margin{side}" for side in _SIDES}
    | {f"padding{side}" for side in _SIDES}
    | {f"border{side}{part}" for side in _SIDES for part in ("", "-color", "-style", "-width")}
)  # fmt: skip

URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid", "data"})  # cid/data: see _filter
LINK_SCHEMES = ("http:", "https:", "mailto:", "tel:")
# In a declaration ammonia's property allow-list would keep: old IE's script (``expression``),
# a URL in a property that never loads one, or escapes that could spell either.
_ACTIVE_CSS = re.compile(r"url\s*\(|expression|javascript:|\\|@import", re.I)
_DATA_IMAGE = re.compile(r"data:image/(png|gif|jpeg|jpg|webp|bmp|avif);base64,[A-Za-z0-9+/=\s]*\Z", re.I)


@dataclass(frozen=True, slots=True)
class SafeHtml:
    """Sanitized HTML and how many remote images were taken out of it."""

    html: str
    remote_images_blocked: int = 0


def content_id(value: str) -> str:
    """A Content-ID as ``cid:`` URLs name it: without angle brackets, URL-decoded (RFC 2392)."""
    return unquote(value.strip()).strip().strip("<>").strip()


def sanitize_html(
    html: str,
    *,
    inline_images: Mapping[str, str] | None = None,
    remote_images: bool = False,
    links_in_new_tab: bool = False,
) -> SafeHtml:
    """``html`` safe to embed (the policy is in the module docstring).

    ``inline_images`` maps the message's Content-IDs (as :func:`content_id` gives them) to the
    URLs their ``cid:`` references become; other ``cid:`` references are removed.
    """
    policy = _Policy({content_id(k): v for k, v in (inline_images or {}).items()}, remote_images)
    cleaner = nh3.Cleaner(
        tags=set(TAGS),
        clean_content_tags=set(CLEAN_CONTENT_TAGS),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        attribute_filter=policy.filter,
        strip_comments=True,
        link_rel="noopener noreferrer",
        url_schemes=set(URL_SCHEMES),
        filter_style_properties=set(STYLE_PROPERTIES),
        url_relative=policy.relative,
        set_tag_attribute_values={"a": {"target": "_blank"}} if links_in_new_tab else None,
    )
    return SafeHtml(cleaner.clean(html), policy.blocked)


class _Policy:
    """The URL decisions ammonia leaves to us, for one document."""

    def __init__(self, inline_images: Mapping[str, str], remote_images: bool) -> None:
        self.inline_images = inline_images
        self.remote_images = remote_images
        self.rewritten: set[str] = set()  # our own URLs: allowed even when relative
        self.blocked = 0

    def filter(self, tag: str, attribute: str, value: str) -> str | None:
        if attribute == "src":
            return self._image(value)
        if attribute == "href":
            return value if value.strip().lower().startswith(LINK_SCHEMES) else None
        if attribute == "style":
            return ";".join(d for d in value.split(";") if not _ACTIVE_CSS.search(d))
        return value

    def _image(self, value: str) -> str | None:
        url = value.strip()
        scheme = url.partition(":")[0].lower()
        if scheme == "cid":
            target = self.inline_images.get(content_id(url[4:]))
            if target is not None:
                self.rewritten.add(target)
            return target
        if scheme == "data":
            return url if _DATA_IMAGE.match(url) else None
        if scheme in ("http", "https"):
            if self.remote_images:
                return url
            self.blocked += 1
        return None

    def relative(self, url: str) -> str | None:
        return url if url in self.rewritten else None
