"""The WeChat Pay client against the simulator over real HTTP: every answer and every injected fault."""

from __future__ import annotations

import gzip
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bankrecon.sources.base import Answer, Outcome, SourceUnavailable
from bankrecon.sources.wechatpay import WECHATPAY
from bankrecon.sources.wechatpay.simulator.server import BillPlan, WeChatPaySimulator
from bankrecon.store.archive import archive_path
from tests.wechatpay_keys import make_key_pair
from tests.wechatpay_setup import DEFAULTS, Keys, account, make_keys, merchant, simulator, yesterday


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def sim(keys: Keys) -> Iterator[WeChatPaySimulator]:
    with simulator(keys) as running:
        yield running


async def ask(
    sim: WeChatPaySimulator, keys: Keys, data_dir: Path, bill: str = "tradebill", **options: str
) -> Answer:
    owner = merchant(keys, sim.url)
    client = WECHATPAY.client(owner, DEFAULTS)
    try:
        return await client.ask(account(owner, bill, **options), yesterday(), "r1", data_dir)
    finally:
        await client.aclose()


def no_staged_files(data_dir: Path) -> bool:
    return not list((data_dir / "archives").glob(".incoming-*"))


@pytest.mark.parametrize(
    ("bill", "options"),
    [
        ("tradebill", {}),
        ("tradebill", {"bill_type": "SUCCESS"}),
        ("tradebill", {"bill_type": "REFUND"}),
        ("fundflowbill", {"account_type": "OPERATION"}),
    ],
)
async def test_a_ready_bill_is_downloaded_checked_and_kept_under_its_sha256(
    sim: WeChatPaySimulator, keys: Keys, tmp_path: Path, bill: str, options: dict[str, str]
) -> None:
    answer = await ask(sim, keys, tmp_path, bill, **options)

    assert (answer.outcome, answer.code, answer.damage) == (Outcome.READY, "SUCCESS", None)
    assert answer.archive is not None
    stored = archive_path(tmp_path, answer.archive.sha256).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == answer.archive.sha256
    assert answer.archive.size == len(stored)
    assert gzip.decompress(stored).decode("utf-8").count("\n") == 20 + 3
    apply, download = sim.requests
    type_key = "bill_type" if bill == "tradebill" else "account_type"
    expected_type = options.get(type_key, "ALL")
    assert apply.target == f"/v3/bill/{bill}?bill_date={yesterday()}&{type_key}={expected_type}&tar_type=GZIP"
    assert (apply.status, download.bill, download.status) == (200, "download", 200)
    assert no_staged_files(tmp_path)


async def test_statement_creating_is_not_ready_until_the_simulator_has_it(keys: Keys, tmp_path: Path) -> None:
    with simulator(keys, BillPlan(ready_after=2)) as sim:
        answers = [await ask(sim, keys, tmp_path) for _ in range(3)]

    assert [(a.outcome, a.code) for a in answers] == [
        (Outcome.NOT_READY, "STATEMENT_CREATING"),
        (Outcome.NOT_READY, "STATEMENT_CREATING"),
        (Outcome.READY, "SUCCESS"),
    ]
    assert answers[2].archive is not None
    assert [r.code for r in sim.requests] == ["STATEMENT_CREATING", "STATEMENT_CREATING", "SUCCESS", ""]


async def test_no_statement_exist_is_empty(keys: Keys, tmp_path: Path) -> None:
    with simulator(keys, BillPlan(outcome="empty")) as sim:
        answer = await ask(sim, keys, tmp_path)

    assert (answer.outcome, answer.code, answer.archive) == (Outcome.EMPTY, "NO_STATEMENT_EXIST", None)
    assert len(sim.requests) == 1


@pytest.mark.parametrize(
    ("fault", "code"), [("429", "FREQUENCY_LIMITED"), ("500", "SYSTEM_ERROR"), ("502", "HTTP 502")]
)
async def test_rate_limits_and_server_errors_are_throttled(
    keys: Keys, tmp_path: Path, fault: str, code: str
) -> None:
    with simulator(keys, BillPlan(faults=[fault])) as sim:
        answer = await ask(sim, keys, tmp_path)
        then = await ask(sim, keys, tmp_path)

    assert (answer.outcome, answer.code, answer.archive) == (Outcome.THROTTLED, code, None)
    assert then.outcome is Outcome.READY and then.archive is not None


@pytest.mark.parametrize("fault", ["wrong_hash", "truncated"])
async def test_a_damaged_download_is_ready_without_an_archive(keys: Keys, tmp_path: Path, fault: str) -> None:
    with simulator(keys, BillPlan(faults=[fault])) as sim:
        answer = await ask(sim, keys, tmp_path)

    assert (answer.outcome, answer.archive) == (Outcome.READY, None)
    assert answer.damage is not None
    assert ("hash_value mismatch" if fault == "wrong_hash" else "truncated") in answer.damage
    assert not list((tmp_path / "archives").glob("*.zip"))
    assert no_staged_files(tmp_path)


async def test_an_expired_download_url_is_asked_again_not_damage(keys: Keys, tmp_path: Path) -> None:
    with simulator(keys, BillPlan(faults=["expired_url"])) as sim:
        answer = await ask(sim, keys, tmp_path)
        then = await ask(sim, keys, tmp_path)

    assert (answer.outcome, answer.code, answer.archive, answer.damage) == (
        Outcome.THROTTLED,
        "INVALID_REQUEST",
        None,
        None,
    )
    assert then.outcome is Outcome.READY and then.archive is not None
    assert no_staged_files(tmp_path)


async def test_an_answer_with_a_bad_signature_is_never_believed(keys: Keys, tmp_path: Path) -> None:
    with simulator(keys, BillPlan(faults=["bad_signature"])) as sim:
        with pytest.raises(SourceUnavailable, match="Wechatpay-Signature does not verify"):
            await ask(sim, keys, tmp_path)
        downloads = [r for r in sim.requests if r.bill == "download"]

    assert downloads == []
    assert not (tmp_path / "archives").exists() or not list((tmp_path / "archives").iterdir())


async def test_an_answer_signed_by_another_wechatpay_key_is_never_believed(
    keys: Keys, tmp_path: Path
) -> None:
    impostor = make_key_pair(tmp_path, "impostor")
    with (
        simulator(Keys(keys.merchant, impostor)) as sim,
        pytest.raises(SourceUnavailable, match="does not verify"),
    ):
        await ask(sim, keys, tmp_path)


async def test_an_answer_naming_another_public_key_id_is_never_believed(keys: Keys, tmp_path: Path) -> None:
    with (
        simulator(keys, wechatpay_public_key_id="PUB_KEY_ID_OTHER") as sim,
        pytest.raises(SourceUnavailable, match="Wechatpay-Serial differs"),
    ):
        await ask(sim, keys, tmp_path)


async def test_a_stale_answer_is_never_believed(keys: Keys, tmp_path: Path) -> None:
    # Its clock runs behind ours by more than five minutes: it refuses our requests as too old,
    # in answers whose own timestamps are too old for us.
    with (
        simulator(keys, BillPlan(outcome="empty"), clock=lambda: time.time() - 600) as sim,
        pytest.raises(SourceUnavailable, match=r"Wechatpay-Timestamp is [0-9]+s off our clock"),
    ):
        await ask(sim, keys, tmp_path)
    # Within five minutes, both sides believe each other.
    with simulator(keys, BillPlan(outcome="empty"), clock=lambda: time.time() - 290) as sim:
        answer = await ask(sim, keys, tmp_path)
    assert answer.outcome is Outcome.EMPTY


async def test_a_wrong_merchant_key_is_rejected_with_advice(keys: Keys, tmp_path: Path) -> None:
    other = make_key_pair(tmp_path, "other-merchant")
    with simulator(Keys(other, keys.wechatpay)) as sim:
        answer = await ask(sim, keys, tmp_path)

    assert (answer.outcome, answer.code) == (Outcome.REJECTED, "SIGN_ERROR")
    assert answer.advice is not None and "certificate_serial" in answer.advice
    assert [r.status for r in sim.requests] == [401]


async def test_a_date_the_simulator_does_not_keep_is_rejected_with_advice(
    sim: WeChatPaySimulator, keys: Keys, tmp_path: Path
) -> None:
    owner = merchant(keys, sim.url)
    client = WECHATPAY.client(owner, DEFAULTS)
    try:
        answer = await client.ask(
            account(owner), yesterday().replace(year=yesterday().year - 1), "r1", tmp_path
        )
    finally:
        await client.aclose()

    assert (answer.outcome, answer.code) == (Outcome.REJECTED, "INVALID_REQUEST")
    assert answer.advice is not None and "bill_date" in answer.advice


async def test_no_connection_is_unavailable(keys: Keys, tmp_path: Path) -> None:
    with simulator(keys) as sim:
        url = sim.url
    owner = merchant(keys, url)
    client = WECHATPAY.client(owner, DEFAULTS)
    try:
        with pytest.raises(SourceUnavailable, match="connection failed"):
            await client.ask(account(owner), yesterday(), "r1", tmp_path)
    finally:
        await client.aclose()
