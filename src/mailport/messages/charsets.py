"""Turn bytes in a declared charset into text, and never fail doing it.

Mail declares charsets that Python does not know (``x-unknown``, ``unicode-1-1-utf-7``,
``iso-8859-8-i``), declares subsets of what was really used (``gb2312`` for GBK text,
``iso-8859-1`` for Windows-1252 quotes, ``ks_c_5601-1987`` for CP949) and declares nothing at
all for 8-bit headers. The stdlib either raises (``LookupError``, ``UnicodeDecodeError``) or
replaces silently, so this module owns the fallback chain, in the spirit of the WHATWG
Encoding Standard's label table:

1. the **superset** commonly meant by the declared label (``gb2312`` -> ``gb18030``,
   ``ks_c_5601-1987``/``euc-kr`` -> ``cp949``, ``iso-8859-1`` -> ``cp1252``, ``us-ascii`` -> ``utf-8``,
   ``shift_jis`` -> ``cp932``, ``big5`` -> ``big5hkscs``, ``tis-620`` -> ``cp874`` …), strict;
2. the **declared** charset itself (when Python knows it), strict;
3. **UTF-8**, strict;
4. **Windows-1252** with replacement characters (it cannot fail).

:func:`decode` returns the text and whether a fallback beyond step 2 was needed, so the parser
can report it in ``parse_error``.
"""

from __future__ import annotations

import codecs
from functools import lru_cache

# Labels whose bytes are, in practice, a superset encoding (WHATWG Encoding Standard, plus the
# labels Microsoft and old Unix mailers write). Keys are lower-case with '_' replaced by '-'.
SUPERSETS: dict[str, str] = {
    # 8-bit bytes under an ASCII label are almost always UTF-8 from a careless mailer.
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "ansi-x3.4-1968": "utf-8",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-9": "cp1254",
    "latin5": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "ks-c-5601-1987": "cp949",
    "ks-c-5601": "cp949",
    "ksc5601": "cp949",
    "euc-kr": "cp949",
    "x-windows-949": "cp949",
    "shift-jis": "cp932",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms-kanji": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022-jp-2",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "unicode-1-1-utf-7": "utf-7",
    "x-unicode20utf8": "utf-8",
    "x-mac-roman": "mac-roman",
    "macintosh": "mac-roman",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-euc-jp": "euc-jp",
    "utf8": "utf-8",
}


# Python codecs that are no mail charset and can turn bytes into lone surrogates or worse.
_NOT_MAIL_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "undefined", "mbcs", "oem"})


def normalize_label(charset: str) -> str:
    """The lookup key of a charset label: stripped, lower-case, quotes removed, '_' as '-'."""
    return charset.strip().strip("\"'").lower().replace("_", "-")


@lru_cache(maxsize=256)
def candidates(charset: str | None) -> tuple[str, ...]:
    """The codecs the declared label stands for, in order: its superset, then itself.

    Only codecs Python knows; empty for an unknown label or none.
    """
    names: list[str] = []
    if charset:
        label = normalize_label(charset)
        for name in (SUPERSETS.get(label), label):
            if name is None:
                continue
            try:
                info = codecs.lookup(name)
            except (LookupError, ValueError, TypeError):
                continue
            codec = info.name
            if not getattr(info, "_is_text_encoding", True) or codec in _NOT_MAIL_CHARSETS:
                continue
            if codec not in names:
                names.append(codec)
    return tuple(names)


def decode(data: bytes | bytearray | memoryview, charset: str | None) -> tuple[str, bool]:
    """Decode ``data`` declared as ``charset``; returns ``(text, fell_back)``.

    ``fell_back`` is true when a charset was declared but neither it nor its superset could
    decode the bytes (or Python does not know the label), so UTF-8 or Windows-1252 with
    replacement characters was used. Without a declared charset, UTF-8 then Windows-1252 is
    the normal order and not a fallback. Never raises.
    """
    declared = candidates(charset)
    for codec in declared:
        try:
            text = str(data, codec)
            if codec == "utf-7" and not text.isascii():
                text.encode("utf-8")  # UTF-7 can decode to lone surrogates, which JSON cannot carry
            return text, False
        except (UnicodeError, LookupError, ValueError, TypeError):
            continue
    fell_back = bool(charset)
    if "utf-8" not in declared:
        try:
            return str(data, "utf-8"), fell_back
        except UnicodeDecodeError:
            pass
    return str(data, "cp1252", "replace"), True


def decode_8bit(text: str) -> str:
    """Repair a header value that arrived as raw 8-bit bytes (read as Latin-1): UTF-8 first."""
    if text.isascii():
        return text
    return decode(text.encode("latin-1", "replace"), None)[0]
