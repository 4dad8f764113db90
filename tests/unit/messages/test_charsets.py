"""Charset fallbacks: supersets first, then the declared codec, UTF-8, Windows-1252; never raises."""

from __future__ import annotations

import pytest

from mailport.messages.charsets import candidates, decode


@pytest.mark.parametrize(
    ("label", "text", "encoding"),
    [
        ("gb2312", "朱镕基", "gbk"),  # 镕 is not in GB2312, only in GBK/GB18030
        ("GB2312", "你好", "gb2312"),
        ("ks_c_5601-1987", "똠방각하", "cp949"),  # 똠 is a CP949 extension of EUC-KR
        ("euc-kr", "똠", "cp949"),
        ("iso-8859-1", "“quoted” – €", "cp1252"),  # C1 bytes mean Windows-1252
        ("latin1", "café", "latin-1"),
        ("shift_jis", "①ｱ", "cp932"),  # NEC and half-width extensions
        ("big5", "繁體", "big5"),
        ("tis-620", "สวัสดี", "cp874"),
        ("utf-8", "✓ ü", "utf-8"),
        ("UTF8", "✓", "utf-8"),
        ("unicode-1-1-utf-7", "Hi Mom -☺-!", "utf-7"),
        ("iso-8859-8-i", "שלום", "iso-8859-8"),
    ],
)
def test_declared_labels_decode_with_their_superset(label: str, text: str, encoding: str) -> None:
    assert decode(text.encode(encoding), label) == (text, False)


def test_us_ascii_with_8bit_bytes_is_read_as_utf8_without_complaint() -> None:
    assert decode("naïve".encode(), "us-ascii") == ("naïve", False)


@pytest.mark.parametrize(
    "label", ["x-unknown", "klingon", "", "utf-8\x00", "../../etc/passwd", "base64", "rot13"]
)
def test_unknown_or_non_text_labels_fall_back_to_utf8_then_cp1252(label: str) -> None:
    assert decode("ok ✓".encode(), label)[0] == "ok ✓"
    text, fell_back = decode(b"caf\xe9", label)
    assert text == "café"
    assert fell_back  # Windows-1252 is always a guess


def test_invalid_bytes_for_the_declared_charset_fall_back() -> None:
    assert decode(b"caf\xe9", "utf-8") == ("café", True)
    text, fell_back = decode(b"\x81\x8d", "utf-8")  # undefined in cp1252 too -> replacement
    assert fell_back and text == "\ufffd\ufffd"


def test_no_declared_charset_tries_utf8_first() -> None:
    assert decode("Grüße".encode(), None) == ("Grüße", False)
    assert decode("Grüße".encode("cp1252"), None) == ("Grüße", True)


def test_candidates_are_known_codecs_without_duplicates() -> None:
    assert candidates("gb2312") == ("gb18030", "gb2312")
    assert candidates("utf-8") == ("utf-8",)
    assert candidates("x-nope") == ()
    assert candidates(None) == ()


@pytest.mark.parametrize(
    ("data", "label"),
    [
        (b"+2D0-", "utf-7"),
        (b"\\ud800", "unicode_escape"),
        (b"\\ud800", "raw-unicode-escape"),
        (b"x", "undefined"),
    ],
)
def test_no_label_yields_lone_surrogates(data: bytes, label: str) -> None:
    text, _ = decode(data, label)
    text.encode("utf-8")  # would raise on a lone surrogate
