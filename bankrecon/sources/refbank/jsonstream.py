"""A JSON document read from a file as a stream, so that one huge string never sits in memory.

``read_json(file, streamed)`` returns the document as ``json.loads`` would, except that each
string at a path in ``streamed`` (keys from the top, e.g. ``("data", "file_content")``) is
passed piece by piece, unescaped, to its sink and left out (None) of the result. Every
other string is bounded, and so is the nesting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import IO, Any

JsonPath = tuple[str | int, ...]
Sink = Callable[[bytes], None]

_READ_BYTES = 1024 * 1024
_MAX_TEXT_BYTES = 64 * 1024
_MAX_DEPTH = 32
_WHITESPACE = b" \t\r\n"
_STRING_SPECIAL = re.compile(rb'["\\]')
_SCALAR = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")
_LONGEST_SCALAR = 64
_ESCAPES = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}

# A run of a string's text whose escapes are all two bytes long and not the backslash's own:
# every backslash in it starts one, so that replacing them one after the other is exact.
_PLAIN_RUN = re.compile(rb'(?:[^"\\]++|\\[^\\u])*+')
_TWO_BYTE_ESCAPES = tuple(
    (b"\\" + bytes([code]), plain) for code, plain in _ESCAPES.items() if code != ord("\\")
)


class NotJson(ValueError):
    """The file is not one JSON document within the bounds."""


def _unescaped(run: bytes) -> bytes:
    if b"\\" not in run:
        return run
    for escaped, plain in _TWO_BYTE_ESCAPES:
        run = run.replace(escaped, plain)
    if b"\\" in run:
        raise NotJson("bad escape in a string")
    return run


def read_json(file: IO[bytes], streamed: Mapping[JsonPath, Sink]) -> Any:
    reader = _Reader(file, streamed)
    value = reader.value((), 0)
    if reader.peek(eof_ok=True) is not None:
        raise NotJson("data after the JSON document")
    return value


class _Reader:
    def __init__(self, file: IO[bytes], streamed: Mapping[JsonPath, Sink]):
        self._file = file
        self._streamed = streamed
        self._buffer = b""
        self._pos = 0

    def _more(self) -> bool:
        chunk = self._file.read(_READ_BYTES)
        if not chunk:
            return False
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def _ensure(self, count: int) -> None:
        while len(self._buffer) - self._pos < count:
            if not self._more():
                raise NotJson("the document ends too early")

    def peek(self, eof_ok: bool = False) -> int | None:
        """The next byte that is not whitespace, left unread."""
        while True:
            buffer, pos = self._buffer, self._pos
            while pos < len(buffer) and buffer[pos] in _WHITESPACE:
                pos += 1
            self._pos = pos
            if pos < len(buffer):
                return buffer[pos]
            if not self._more():
                if eof_ok:
                    return None
                raise NotJson("the document ends too early")

    def _expect(self, byte: bytes) -> None:
        if self.peek() != byte[0]:
            raise NotJson(f"expected {byte.decode()!r}")
        self._pos += 1

    def value(self, path: JsonPath, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise NotJson("nested too deeply")
        first = self.peek()
        if first == ord("{"):
            return self._object(path, depth)
        if first == ord("["):
            return self._array(path, depth)
        if first == ord('"'):
            sink = self._streamed.get(path)
            if sink is None:
                return self._text()
            self._stream_string(sink)
            return None
        return self._scalar()

    def _object(self, path: JsonPath, depth: int) -> dict[str, Any]:
        self._pos += 1
        result: dict[str, Any] = {}
        if self.peek() == ord("}"):
            self._pos += 1
            return result
        while True:
            if self.peek() != ord('"'):
                raise NotJson("expected a key")
            key = self._text()
            self._expect(b":")
            result[key] = self.value((*path, key), depth + 1)
            if self.peek() == ord(","):
                self._pos += 1
                continue
            self._expect(b"}")
            return result

    def _array(self, path: JsonPath, depth: int) -> list[Any]:
        self._pos += 1
        result: list[Any] = []
        if self.peek() == ord("]"):
            self._pos += 1
            return result
        while True:
            result.append(self.value((*path, len(result)), depth + 1))
            if self.peek() == ord(","):
                self._pos += 1
                continue
            self._expect(b"]")
            return result

    def _scalar(self) -> Any:
        while len(self._buffer) - self._pos < _LONGEST_SCALAR and self._more():
            pass
        match = _SCALAR.match(self._buffer, self._pos)
        if match is None:
            raise NotJson("expected a value")
        self._pos = match.end()
        return json.loads(match.group())

    def _text(self) -> str:
        """A bounded string, its escapes left to json.loads."""
        self._pos += 1  # the opening quote
        raw = bytearray()
        while True:
            found = _STRING_SPECIAL.search(self._buffer, self._pos)
            end = len(self._buffer) if found is None else found.start()
            raw += self._buffer[self._pos : end]
            self._pos = end
            if len(raw) > _MAX_TEXT_BYTES:
                raise NotJson(f"a string longer than {_MAX_TEXT_BYTES} bytes")
            if found is None:
                if not self._more():
                    raise NotJson("unterminated string")
                continue
            if self._buffer[end] == ord('"'):
                self._pos = end + 1
                try:
                    text = json.loads(b'"' + bytes(raw) + b'"')
                except ValueError as exc:
                    raise NotJson(f"bad string: {exc}") from None
                assert isinstance(text, str)
                return text
            self._ensure(2)  # a backslash and the character it escapes
            raw += self._buffer[self._pos : self._pos + 2]
            self._pos += 2

    def _stream_string(self, sink: Sink) -> None:
        self._pos += 1  # the opening quote
        while True:
            # A MIME-wrapped file_content has an escaped CRLF every 76 characters: taken one at a
            # time, those were most of the download's time. The runs between the other escapes
            # are matched and unescaped in one go.
            run = _PLAIN_RUN.match(self._buffer, self._pos)
            assert run is not None  # it matches the empty run
            if run.end() > self._pos:
                sink(_unescaped(run.group()))
                self._pos = run.end()
            if self._pos == len(self._buffer):
                if not self._more():
                    raise NotJson("unterminated string")
            elif self._buffer[self._pos] == ord('"'):
                self._pos += 1
                return
            else:  # an escaped backslash, a \u escape, or an escape cut by the buffer's end
                sink(self._escape())

    def _escape(self) -> bytes:
        self._ensure(2)
        kind = self._buffer[self._pos + 1]
        if kind != ord("u"):
            self._pos += 2
            if kind not in _ESCAPES:
                raise NotJson("bad escape in a string")
            return _ESCAPES[kind]
        self._ensure(6)
        digits = self._buffer[self._pos + 2 : self._pos + 6]
        self._pos += 6
        try:
            return chr(int(digits, 16)).encode("utf-8", "surrogatepass")
        except ValueError:
            raise NotJson("bad \\u escape in a string") from None
