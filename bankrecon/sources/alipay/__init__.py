"""Alipay bills (docs/sources/alipay.md) and their simulator.

python -m bankrecon.sources.alipay.simulator
"""

from bankrecon.sources.alipay.kind import ALIPAY, Alipay, AlipayAccount, AlipayMerchant

__all__ = ["ALIPAY", "Alipay", "AlipayAccount", "AlipayMerchant"]
