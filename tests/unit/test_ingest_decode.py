"""``decode_html``: declared charsets that are not text charsets are ignored like unknown ones."""

from __future__ import annotations

import pytest

from ingest.extract import decode_html

PAGE = "<html><head>{meta}</head><body><p>Les responsables à Besançon ont dit</p></body></html>"

NOT_TEXT_CHARSETS = ["base64", "rot13", "rot_13", "zlib", "hex", "bz2", "uu", "quopri",
                     "undefined", "idna", "punycode", "unicode_escape", "x-bogus-charset", "",
                     "utf-8\x00", "'base64'"]


@pytest.mark.parametrize("name", NOT_TEXT_CHARSETS)
def test_non_text_charset_in_the_header_is_ignored(name: str) -> None:
    body = PAGE.format(meta="").encode("utf-8")
    html, codec = decode_html(body, name)
    assert "à Besançon" in html
    assert codec == "utf-8"


@pytest.mark.parametrize("name", NOT_TEXT_CHARSETS)
def test_non_text_charset_in_meta_falls_back_to_the_header(name: str) -> None:
    body = PAGE.format(meta=f'<meta charset="{name}">').encode("cp1252")
    html, codec = decode_html(body, "windows-1252")
    assert "à Besançon" in html and codec == "cp1252"


@pytest.mark.parametrize("name", ["base64", "zlib", "undefined", "hex"])
def test_non_text_charset_in_meta_alone_is_detected_instead(name: str) -> None:
    body = PAGE.format(meta=f'<meta http-equiv="Content-Type" content="text/html; charset={name}">')
    html, codec = decode_html(body.encode("utf-8"))
    assert "à Besançon" in html
    assert codec not in {"base64", "zlib", "undefined", "hex"}


def test_text_charsets_still_win() -> None:
    body = PAGE.format(meta='<meta charset="iso-8859-1">').encode("iso-8859-1")
    assert decode_html(body) == (body.decode("iso-8859-1"), "iso8859-1")
    # a header charset that cannot decode the bytes gives way to the page's meta
    assert decode_html(body, "utf-8")[1] == "iso8859-1"
