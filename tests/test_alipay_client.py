"""The Alipay client against the simulator over real HTTP: every answer and every injected fault."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from bankrecon.sources.alipay import ALIPAY
from bankrecon.sources.alipay.client import ADVICE_PARAMETERS, ADVICE_SIGNATURE
from bankrecon.sources.alipay.simulator.server import AlipaySimulator, BillPlan
from bankrecon.sources.base import Answer, Outcome, SourceUnavailable
from bankrecon.statements.common import CHINA_STANDARD_TIME
from bankrecon.store.archive import archive_path
from tests.alipay_setup import DEFAULTS, Keys, account, make_keys, merchant, simulator
from tests.wechatpay_keys import make_key_pair


def china_today() -> date:
    return datetime.now(CHINA_STANDARD_TIME).date()


YESTERDAY = china_today() - timedelta(days=1)
LONG_AGO = china_today() - timedelta(days=5)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def sim(keys: Keys) -> Iterator[AlipaySimulator]:
    with simulator(keys) as running:
        yield running


async def ask(
    sim: AlipaySimulator,
    keys: Keys,
    data_dir: Path,
    bill_type: str = "trade",
    bill_date: date = YESTERDAY,
    **overrides: str,
) -> Answer:
    owner = merchant(keys, sim.gateway, **overrides)
    client = ALIPAY.client(owner, DEFAULTS)
    try:
        return await client.ask(account(owner, bill_type), bill_date, "r1", data_dir)
    finally:
        await client.aclose()


def no_staged_files(data_dir: Path) -> bool:
    return not list((data_dir / "archives").glob(".incoming-*"))


@pytest.mark.parametrize("bill_type", ["trade", "signcustomer"])
async def test_a_ready_bill_is_fetched_at_once_and_kept_under_its_sha256(
    sim: AlipaySimulator, keys: Keys, tmp_path: Path, bill_type: str
) -> None:
    answer = await ask(sim, keys, tmp_path, bill_type)
    assert answer.outcome is Outcome.READY and answer.code == "10000" and answer.archive is not None
    kept = archive_path(tmp_path, answer.archive.sha256)
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == answer.archive.sha256
    assert answer.archive.size == kept.stat().st_size
    kind = {"trade": "业务", "signcustomer": "账务"}[bill_type]
    with zipfile.ZipFile(kept, metadata_encoding="gbk") as archive:
        # As Alipay's own zips: the summary member (汇总) first, then the detail.
        summary, detail = archive.infolist()
        assert summary.filename.endswith(f"_{kind}明细(汇总).csv") and detail.filename.endswith(
            f"_{kind}明细.csv"
        )
        assert archive.read(summary).decode("gbk").startswith(f"#支付宝{kind}汇总查询")
        assert archive.read(detail).decode("gbk").startswith(f"#支付宝{kind}明细查询")
    assert [r.path for r in sim.requests] == ["/gateway.do", "/downloadBillFile.resource"]
    assert no_staged_files(tmp_path)


async def test_bill_not_exist_is_not_ready_until_give_up_after_past_the_day(
    sim: AlipaySimulator, keys: Keys, tmp_path: Path
) -> None:
    sim.plan("trade", YESTERDAY, BillPlan(ready_after=1))
    first = await ask(sim, keys, tmp_path)
    assert first.outcome is Outcome.NOT_READY and first.code == "40004 isp.bill_not_exist"
    believed_from = datetime.combine(china_today() + timedelta(days=2), datetime.min.time())
    assert f"believed as no bill from {believed_from:%Y-%m-%d %H:%M} CST" in first.message
    assert (await ask(sim, keys, tmp_path)).outcome is Outcome.READY


async def test_bill_not_exist_past_give_up_after_is_empty_and_says_so(
    sim: AlipaySimulator, keys: Keys, tmp_path: Path
) -> None:
    sim.plan("signcustomer", LONG_AGO, BillPlan(outcome="none"))
    answer = await ask(sim, keys, tmp_path, "signcustomer", LONG_AGO)
    assert answer.outcome is Outcome.EMPTY and answer.code == "isp.bill_not_exist after give_up_after"
    assert (
        "still no bill 48h after the day ended (give_up_after); stored as an empty statement"
        in answer.message
    )
    # A shorter give_up_after believes "no bill" sooner; a longer one keeps asking.
    sim.plan("signcustomer", LONG_AGO, BillPlan(outcome="none"))
    waiting = await ask(sim, keys, tmp_path, "signcustomer", LONG_AGO, give_up_after="7d")
    assert waiting.outcome is Outcome.NOT_READY


async def test_an_expired_download_url_is_asked_again_not_damage(
    sim: AlipaySimulator, keys: Keys, tmp_path: Path
) -> None:
    sim.plan("trade", YESTERDAY, BillPlan(faults=["expired_url"]))
    expired = await ask(sim, keys, tmp_path)
    assert expired.outcome is Outcome.THROTTLED and expired.damage is None
    assert "asking again gets a new one" in expired.message
    assert (await ask(sim, keys, tmp_path)).archive is not None
    assert no_staged_files(tmp_path)


async def test_a_corrupt_zip_is_ready_without_an_archive(
    sim: AlipaySimulator, keys: Keys, tmp_path: Path
) -> None:
    sim.plan("trade", YESTERDAY, BillPlan(faults=["corrupt_zip"]))
    answer = await ask(sim, keys, tmp_path)
    assert answer.outcome is Outcome.READY and answer.archive is None
    assert answer.damage is not None and "not a whole zip" in answer.damage
    assert not list((tmp_path / "archives").iterdir())


async def test_an_answer_with_a_bad_signature_is_never_believed(
    sim: AlipaySimulator, keys: Keys, tmp_path: Path
) -> None:
    sim.plan("trade", YESTERDAY, BillPlan(faults=["bad_signature"]))
    with pytest.raises(SourceUnavailable, match="does not verify over alipay_data_dataservice"):
        await ask(sim, keys, tmp_path)
    assert [r.path for r in sim.requests] == ["/gateway.do"]


async def test_an_answer_signed_by_another_alipay_key_is_never_believed(keys: Keys, tmp_path: Path) -> None:
    other = make_key_pair(tmp_path, "other")
    with simulator(keys, alipay_private_key=other.private_key) as sim:
        sim.plan("trade", YESTERDAY, BillPlan(outcome="none"))
        with pytest.raises(SourceUnavailable, match="not believed"):
            await ask(sim, keys, tmp_path)


async def test_server_errors_are_throttled_and_unknown_codes_unrecognised(
    sim: AlipaySimulator, keys: Keys, tmp_path: Path
) -> None:
    sim.plan("trade", YESTERDAY, BillPlan(faults=["500", "unknown_code"]))
    assert (await ask(sim, keys, tmp_path)).outcome is Outcome.THROTTLED
    unknown = await ask(sim, keys, tmp_path)
    assert unknown.outcome is Outcome.UNRECOGNISED and unknown.code == "40099 isp.something-new"


async def test_a_wrong_app_key_is_rejected_with_advice(keys: Keys, tmp_path: Path) -> None:
    other = make_key_pair(tmp_path, "other")
    with simulator(keys, app_public_key=other.public_key) as sim:
        answer = await ask(sim, keys, tmp_path)
    assert answer.outcome is Outcome.REJECTED and answer.code == "40002 isv.invalid-signature"
    assert answer.advice == ADVICE_SIGNATURE


async def test_an_unknown_app_id_is_rejected_though_unsigned(
    sim: AlipaySimulator, keys: Keys, tmp_path: Path
) -> None:
    answer = await ask(sim, keys, tmp_path, app_id="2021999999999999")
    assert answer.outcome is Outcome.REJECTED and answer.code == "40002 isv.invalid-app-id"
    assert answer.advice == ADVICE_SIGNATURE


async def test_a_day_not_over_is_rejected_with_advice(
    sim: AlipaySimulator, keys: Keys, tmp_path: Path
) -> None:
    answer = await ask(sim, keys, tmp_path, bill_date=china_today())
    assert answer.outcome is Outcome.REJECTED and answer.advice == ADVICE_PARAMETERS


async def test_no_connection_is_unavailable(keys: Keys, tmp_path: Path) -> None:
    with simulator(keys) as sim:
        gateway = sim.gateway
    owner = merchant(keys, gateway)
    client = ALIPAY.client(owner, DEFAULTS)
    try:
        with pytest.raises(SourceUnavailable, match="connection failed"):
            await client.ask(account(owner), YESTERDAY, "r1", tmp_path)
    finally:
        await client.aclose()


def test_settings_are_checked_in_one_line(keys: Keys, tmp_path: Path) -> None:
    owner = merchant(keys, "https://openapi.alipay.com/gateway.do")
    assert owner.settings.give_up_after == timedelta(days=2)  # type: ignore[attr-defined]
    for bad, error in [
        ({"give_up_after": "soon"}, "is not a duration"),
        ({"app_id": "123"}, "app_id"),
        ({"app_private_key_file": str(tmp_path / "missing.pem")}, "app_private_key_file"),
    ]:
        with pytest.raises(ValueError, match=error):
            merchant(keys, "https://openapi.alipay.com/gateway.do", **bad)
    with pytest.raises(ValueError, match="bill_type"):
        ALIPAY.account_settings({"bill_type": "monthly"})
    assert ALIPAY.refusal(china_today(), china_today()) is not None
    assert ALIPAY.refusal(date(2015, 12, 31), china_today()) is not None
    assert ALIPAY.refusal(YESTERDAY, china_today()) is None
