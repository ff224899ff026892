"""WeChat Pay API v3 bills (docs/sources/wechatpay.md) and their simulator.

python -m bankrecon.sources.wechatpay.simulator
"""

from bankrecon.sources.wechatpay.kind import WECHATPAY, WeChatPay, WeChatPayAccount, WeChatPayMerchant

__all__ = ["WECHATPAY", "WeChatPay", "WeChatPayAccount", "WeChatPayMerchant"]
