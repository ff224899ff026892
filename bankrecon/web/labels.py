"""The page's words in Chinese and English, money and times as finance people read them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from bankrecon.statements.common import CHINA_STANDARD_TIME

LANGUAGES = ("zh", "en")

LABELS: dict[str, dict[str, str]] = {
    "title": {"zh": "对账", "en": "Reconciliation"},
    "today": {"zh": "今日", "en": "Today"},
    "open_items": {"zh": "未达项", "en": "Open items"},
    "log_in": {"zh": "登录", "en": "Log in"},
    "log_out": {"zh": "退出", "en": "Log out"},
    "name": {"zh": "用户名", "en": "Name"},
    "password": {"zh": "密码", "en": "Password"},
    "login_failed": {"zh": "用户名或密码错误", "en": "Wrong name or password"},
    "login_throttled": {
        "zh": "登录失败次数过多，请稍后再试",
        "en": "Too many failed logins; try again later",
    },
    "account": {"zh": "账户", "en": "Account"},
    "kind": {"zh": "类型", "en": "Kind"},
    "all_kinds": {"zh": "全部类型", "en": "All kinds"},
    "needs_attention": {"zh": "只看需处理的", "en": "Only what needs attention"},
    "filter": {"zh": "筛选", "en": "Filter"},
    "collected": {"zh": "已收取", "en": "Collected"},
    "rows": {"zh": "笔", "en": "rows"},
    "waiting": {"zh": "等待中", "en": "Waiting"},
    "attempts": {"zh": "次尝试", "en": "attempts"},
    "failed": {"zh": "失败", "en": "Failed"},
    "nothing_yet": {"zh": "暂无", "en": "Nothing yet"},
    "reconciled": {"zh": "已对账", "en": "Reconciled"},
    "open_exceptions": {"zh": "未处理差异", "en": "open exceptions"},
    "no_exceptions": {"zh": "无差异", "en": "no exceptions"},
    "oldest": {"zh": "最久", "en": "oldest"},
    "days": {"zh": "天", "en": "days"},
    "day": {"zh": "日期", "en": "Date"},
    "run": {"zh": "对账批次", "en": "Run"},
    "finished": {"zh": "完成于", "en": "Finished"},
    "state": {"zh": "状态", "en": "State"},
    "side": {"zh": "来源", "en": "Side"},
    "lines": {"zh": "笔数", "en": "Lines"},
    "amount": {"zh": "金额", "en": "Amount"},
    "summary": {"zh": "汇总", "en": "Summary"},
    "exceptions": {"zh": "差异", "en": "Exceptions"},
    "reference": {"zh": "参考号", "en": "Reference"},
    "direction": {"zh": "方向", "en": "Direction"},
    "other_side": {"zh": "对方金额", "en": "Other side"},
    "when": {"zh": "时间", "en": "When"},
    "line": {"zh": "行号", "en": "Line"},
    "detail": {"zh": "说明", "en": "Detail"},
    "note": {"zh": "备注", "en": "Note"},
    "noted_at": {"zh": "备注时间", "en": "Noted"},
    "add_note": {"zh": "添加备注", "en": "Add note"},
    "noted": {"zh": "已记录备注", "en": "Note recorded"},
    "acted": {"zh": "已处理", "en": "Done"},
    "balance_statement": {"zh": "银行存款余额调节表", "en": "Bank reconciliation statement"},
    "as_of": {"zh": "截至", "en": "As of"},
    "bank_side": {"zh": "银行对账单", "en": "Bank statement"},
    "book_side": {"zh": "企业银行存款日记账", "en": "Cash book"},
    "bank_balance": {"zh": "银行对账单余额", "en": "Balance per bank statement"},
    "book_balance": {"zh": "企业账面余额", "en": "Balance per cash book"},
    "add": {"zh": "加：", "en": "Add:"},
    "less": {"zh": "减：", "en": "Less:"},
    "book_credit_not_in_bank": {
        "zh": "企业已收、银行未收",
        "en": "received in the book, not yet by the bank",
    },
    "book_debit_not_in_bank": {"zh": "企业已付、银行未付", "en": "paid in the book, not yet by the bank"},
    "bank_credit_not_booked": {"zh": "银行已收、企业未收", "en": "received by the bank, not yet booked"},
    "bank_debit_not_booked": {"zh": "银行已付、企业未付", "en": "paid by the bank, not yet booked"},
    "adjusted_balance": {"zh": "调节后余额", "en": "Adjusted balance"},
    "balanced": {"zh": "调节后余额相符", "en": "Balanced"},
    "unbalanced": {"zh": "调节后余额不符", "en": "Not balanced"},
    "booked_on": {"zh": "日期", "en": "Date"},
    "status": {"zh": "状态", "en": "Status"},
    "open": {"zh": "未处理", "en": "open"},
    "explained": {"zh": "已说明", "en": "explained"},
    "resolved": {"zh": "已解决", "en": "resolved"},
    "reason": {"zh": "原因", "en": "Reason"},
    "write_off": {"zh": "核销", "en": "Write off"},
    "ledger_account": {"zh": "会计科目", "en": "Ledger account"},
    "reopen": {"zh": "重新打开", "en": "Reopen"},
    "pair": {"zh": "手工配对", "en": "Pair"},
    "pair_with": {"zh": "配对对象", "en": "Pair with"},
    "allow_difference": {"zh": "允许金额差异", "en": "Allow a difference"},
    "history": {"zh": "处理记录", "en": "History"},
    "acted_by": {"zh": "处理人", "en": "By"},
    "acted_at": {"zh": "处理时间", "en": "When"},
    "action": {"zh": "操作", "en": "Action"},
    "not_reconciled": {"zh": "该日尚未对账", "en": "This day is not reconciled yet"},
    "download_csv": {"zh": "下载 CSV", "en": "Download CSV"},
    "download_xlsx": {"zh": "下载 XLSX", "en": "Download XLSX"},
    "statement": {"zh": "对账单", "en": "Statement"},
    "no_statement": {"zh": "该日无对账单", "en": "No statement stored for this day"},
    "source": {"zh": "来源", "en": "Source"},
    "archive_sha256": {"zh": "原始文件 SHA-256", "en": "Archive SHA-256"},
    "fetched_at": {"zh": "收取时间", "en": "Fetched"},
    "search": {"zh": "搜索（参考号、对方、金额）", "en": "Search (reference, counterparty, amount)"},
    "serial_no": {"zh": "流水号", "en": "Serial"},
    "traded_at": {"zh": "交易时间", "en": "Traded"},
    "counterparty": {"zh": "对方", "en": "Counterparty"},
    "memo": {"zh": "摘要", "en": "Memo"},
    "fee": {"zh": "手续费", "en": "Fee"},
    "balance": {"zh": "余额", "en": "Balance"},
    "previous": {"zh": "上一页", "en": "Previous"},
    "next": {"zh": "下一页", "en": "Next"},
    "page": {"zh": "页", "en": "Page"},
    "from": {"zh": "从", "en": "From"},
    "to": {"zh": "到", "en": "To"},
    "age": {"zh": "账龄", "en": "Age"},
    "age_band": {"zh": "账龄段", "en": "Age band"},
    "sort": {"zh": "排序", "en": "Sort"},
    "no_open_items": {"zh": "区间内无未处理差异", "en": "No open exceptions in this range"},
    "forbidden": {"zh": "您的角色无权执行此操作", "en": "Your role may not do this"},
    "bad_request": {"zh": "请求无效", "en": "Bad request"},
    "not_found": {"zh": "未找到", "en": "Not found"},
    "rerun": {"zh": "重新对账", "en": "Re-run reconciliation"},
    "rerun_explained": {
        "zh": "将按当前已存的对账单和账簿重新核对这一天。新结果取代页面上的结果；已写的备注保留。",
        "en": "The day is matched again against the statement and ledger as stored now. Its result "
        "replaces the one shown; the notes written stay.",
    },
    "rerun_confirm": {"zh": "确认重新对账", "en": "Re-run it"},
    "rerun_started": {
        "zh": "已开始重新对账，结果存好后显示在此页",
        "en": "Re-run started; this page shows its result once it is stored",
    },
    "cancel": {"zh": "取消", "en": "Cancel"},
    "temporal_unreachable": {
        "zh": "无法连接 Temporal，未开始重新对账",
        "en": "Temporal cannot be reached: nothing was started",
    },
    "times_in_cst": {"zh": "时间均为北京时间", "en": "Times in China Standard Time"},
    "signed_in_as": {"zh": "当前用户", "en": "Signed in as"},
    "matched": {"zh": "已匹配", "en": "matched"},
    "ledger_only": {"zh": "仅账簿有", "en": "ledger only"},
    "channel_only": {"zh": "仅渠道有", "en": "channel only"},
    "amount_differs": {"zh": "金额不符", "en": "amount differs"},
    "duplicate": {"zh": "重复", "en": "duplicate"},
    "settlement_missing": {"zh": "结算未到账", "en": "settlement missing"},
    "settlement_differs": {"zh": "结算金额不符", "en": "settlement differs"},
    "settlement_pending": {"zh": "结算待到账", "en": "settlement pending"},
    "ledger": {"zh": "账簿", "en": "ledger"},
    "channel": {"zh": "渠道", "en": "channel"},
    "settlement": {"zh": "结算", "en": "settlement"},
}


def language_of(accept_language: str | None, chosen: str | None = None) -> str:
    """``chosen`` (the ?lang= of the page) if known, else the browser's first known language."""
    if chosen in LANGUAGES:
        assert chosen is not None
        return chosen
    ranked: list[tuple[float, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight + position * 1e-6, primary))
    return min(ranked)[1] if ranked else "en"


def translator(language: str) -> dict[str, str]:
    return {key: words[language] for key, words in LABELS.items()}


def money(amount: Decimal | None) -> str:
    """Two decimals with thousands separators: 1,234,567.80."""
    return "" if amount is None else f"{amount:,.2f}"


def local_time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S")
