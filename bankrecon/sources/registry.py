"""The source kinds bankrecon collects from, by the name an accounts file's ``kind`` gives them.

Adding a source kind is its package, one line here, and its page in docs/sources/.

A kind's code (its client, parsers and their libraries: SSH, XML, MT940) is imported the first
time an account of that kind is configured: a worker that collects from none of them does not
carry them in its memory.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from bankrecon.sources.base import SourceKind

DEFAULT_KIND = "refbank"

# name: "module:attribute" of its SourceKind
_KINDS = {
    "refbank": "bankrecon.sources.refbank.kind:REFBANK",
    "wechatpay": "bankrecon.sources.wechatpay:WECHATPAY",
    "alipay": "bankrecon.sources.alipay:ALIPAY",
    "unionpay": "bankrecon.sources.unionpay:UNIONPAY",
    "sftp": "bankrecon.sources.sftp:SFTP",
}
KIND_NAMES = tuple(_KINDS)


@cache
def source_kind(name: str) -> SourceKind:
    """The kind called ``name``, imported now if it was not yet; KeyError if there is none."""
    module, attribute = _KINDS[name].split(":")
    kind: SourceKind = getattr(import_module(module), attribute)
    return kind
