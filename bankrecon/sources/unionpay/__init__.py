"""UnionPay ACP file transfer (docs/sources/unionpay.md) and its simulator."""

from bankrecon.sources.unionpay.kind import UNIONPAY, UnionPay, UnionPayAccount, UnionPayMerchant

__all__ = ["UNIONPAY", "UnionPay", "UnionPayAccount", "UnionPayMerchant"]
