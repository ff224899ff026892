"""The source kinds bankrecon collects from, by the name an accounts file's ``kind`` gives them.

Adding a source kind is its package, one line here, and its page in docs/sources/.
"""

from __future__ import annotations

from bankrecon.sources.alipay import ALIPAY
from bankrecon.sources.base import SourceKind
from bankrecon.sources.refbank.kind import REFBANK
from bankrecon.sources.sftp import SFTP
from bankrecon.sources.unionpay import UNIONPAY
from bankrecon.sources.wechatpay import WECHATPAY

DEFAULT_KIND = "refbank"

_KINDS: tuple[SourceKind, ...] = (REFBANK, WECHATPAY, ALIPAY, UNIONPAY, SFTP)
SOURCE_KINDS = {kind.name: kind for kind in _KINDS}
