"""The bank's answer read as a stream: the same document and file_content as the json module reads,
however the file arrives in pieces and whatever escapes the string holds."""

from __future__ import annotations

import io
import json
import random

import pytest

from bankrecon.sources.refbank import jsonstream
from bankrecon.sources.refbank.jsonstream import NotJson, read_json

STREAMED = ("data", "file_content")


class Trickle(io.BytesIO):
    """A file that hands out at most ``step`` bytes a read: every piece boundary gets its turn."""

    def __init__(self, data: bytes, step: int):
        super().__init__(data)
        self._step = step

    def read(self, size: int | None = -1) -> bytes:
        return super().read(self._step if size is None or size < 0 else min(size, self._step))


def _streamed(document: bytes, step: int) -> tuple[object, bytes]:
    received = bytearray()
    value = read_json(Trickle(document, step), {STREAMED: received.extend})
    return value, bytes(received)


def _mime_wrapped(content: bytes) -> str:
    return "".join(content.hex()[i : i + 76] + "\r\n" for i in range(0, len(content) * 2, 76))


TEXTS = [
    _mime_wrapped(bytes(range(256)) * 4),  # an escaped CRLF every 76 characters, as the bank sends
    'quote " backslash \\ slash / controls \b\f\n\r\t end\\',
    "\\\\u0041 is not an escape, \\u0041 is; \u00e9\u4e2d and a lone \\",
    "",
    "\\" * 7 + '"' * 3 + "\r\n" * 5,
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_the_streamed_string_is_what_json_reads_at_every_piece_size(text: str, ensure_ascii: bool) -> None:
    document = json.dumps(
        {"code": "0000", "data": {"file_name": "a.zip", "file_content": text}, "note": "x\\y"},
        ensure_ascii=ensure_ascii,
    ).encode()
    for step in [*range(1, 12), 75, 76, 77, 4096, len(document)]:
        value, received = _streamed(document, step)
        assert received.decode() == text, step
        assert value == {"code": "0000", "data": {"file_name": "a.zip", "file_content": None}, "note": "x\\y"}


def test_random_escapes_at_random_piece_sizes_read_as_json_reads_them() -> None:
    rng = random.Random(20261201)
    alphabet = [
        "a",
        "Z",
        "0",
        "+",
        "/",
        "=",
        "\\",
        '"',
        "\r",
        "\n",
        "\t",
        "\b",
        "\f",
        "\u00e9",
        "\u2028",
        "\x01",
    ]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 200)))
        document = json.dumps({"data": {"file_content": text}}, ensure_ascii=rng.random() < 0.5).encode()
        _, received = _streamed(document, rng.randrange(1, 40))
        assert received.decode() == text


@pytest.mark.parametrize(
    "document",
    [
        b'{"data": {"file_content": "abc\\qdef"}}',  # no such escape
        b'{"data": {"file_content": "abc\\',  # cut inside an escape
        b'{"data": {"file_content": "abcdef',  # never closed
        b'{"data": {"file_content": "ab\\u12"}}',  # a short \\u escape
    ],
)
def test_a_bad_or_unterminated_string_is_not_json(document: bytes) -> None:
    for step in (1, 3, len(document)):
        with pytest.raises(NotJson):
            _streamed(document, step)


def test_the_whole_buffer_is_read_a_megabyte_at_a_time() -> None:
    # Large reads are what make the one-pass unescaping pay: a sink call per megabyte, not per line.
    content = _mime_wrapped(bytes(300_000))
    document = json.dumps({"data": {"file_content": content}}).encode()
    calls: list[int] = []
    read_json(io.BytesIO(document), {STREAMED: lambda piece: calls.append(len(piece))})
    assert sum(calls) == len(content)
    assert len(calls) <= len(document) // jsonstream._READ_BYTES + 2
