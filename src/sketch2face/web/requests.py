"""The app's request class: form fields that are not valid UTF-8 are a 400, never U+FFFD.

Werkzeug decodes multipart text fields with ``errors="replace"`` (invalid bytes become U+FFFD
and would be stored that way) and percent-escapes of invalid bytes in URL-encoded forms stay
as literal ``%FF`` text. Both are refused here with a 400 that says why (issue 25 item 10).
"""

from __future__ import annotations

import codecs
from typing import IO, Any
from urllib.parse import parse_qsl

from flask import Request
from werkzeug.exceptions import BadRequest
from werkzeug.formparser import FormDataParser, MultiPartParser

INVALID_TEXT = "A form field is not valid UTF-8 text; send the form again from the page."
_CODEC = "sketch2face-strict-utf-8"


class InvalidFormText(BadRequest):
    """A form field's bytes are not UTF-8."""

    description = INVALID_TEXT


def _strict_decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
    """UTF-8 whatever error handler the caller names (Werkzeug passes "replace")."""
    try:
        return codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError:
        raise InvalidFormText() from None


def _search(name: str) -> codecs.CodecInfo | None:
    if name.replace("_", "-") != _CODEC:
        return None
    return codecs.CodecInfo(codecs.utf_8_encode, _strict_decode, name=_CODEC)


codecs.register(_search)


class _StrictMultiPartParser(MultiPartParser):
    def get_part_charset(self, headers: Any) -> str:
        charset = super().get_part_charset(headers)
        return _CODEC if charset == "utf-8" else charset


class StrictFormDataParser(FormDataParser):
    """Multipart and URL-encoded forms with strictly UTF-8 text fields."""

    def _parse_multipart(
        self, stream: IO[bytes], mimetype: str, content_length: int | None, options: dict[str, str]
    ) -> Any:
        parser = _StrictMultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
        )
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, form, files

    def _parse_urlencoded(
        self, stream: IO[bytes], mimetype: str, content_length: int | None, options: dict[str, str]
    ) -> Any:
        try:
            items = parse_qsl(stream.read().decode(), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            raise InvalidFormText() from None
        return stream, self.cls(items), self.cls()


class StrictRequest(Request):
    """Flask's request with :class:`StrictFormDataParser`."""

    form_data_parser_class = StrictFormDataParser


__all__ = ["INVALID_TEXT", "InvalidFormText", "StrictRequest"]
