"""The UnionPay client against the simulator over real HTTP: every answer and every injected fault."""

from __future__ import annotations

import hashlib
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bankrecon.sources.base import Answer, Outcome, SourceUnavailable
from bankrecon.sources.unionpay import UNIONPAY
from bankrecon.sources.unionpay.simulator.pki import UNIONPAY_SIGNING_CN, issue, make_pki
from bankrecon.sources.unionpay.simulator.server import FilePlan, UnionPaySimulator
from bankrecon.store.archive import archive_path
from tests.unionpay_setup import DEFAULTS, MER_ID, Keys, account, make_keys, merchant, simulator, yesterday


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("pki"))


async def ask(sim: UnionPaySimulator, keys: Keys, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Answer:
    owner = merchant(keys, sim.url, monkeypatch)
    client = UNIONPAY.client(owner, DEFAULTS)
    try:
        return await client.ask(account(owner), yesterday(), "r1", data_dir)
    finally:
        await client.aclose()


def nothing_kept(data_dir: Path) -> bool:
    return not (data_dir / "archives").exists() or not list((data_dir / "archives").iterdir())


async def test_a_ready_file_is_verified_inflated_and_kept_under_its_sha256(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with simulator(keys, FilePlan(ready_after=2)) as sim:
        answers = [await ask(sim, keys, tmp_path, monkeypatch) for _ in range(3)]

    assert [(a.outcome, a.code) for a in answers] == [
        (Outcome.NOT_READY, "98"),
        (Outcome.NOT_READY, "98"),
        (Outcome.READY, "00"),
    ]
    ready = answers[2].archive
    assert ready is not None and ready.file_name == f"{MER_ID}_{yesterday():%Y%m%d}.zip"
    stored = archive_path(tmp_path, ready.sha256)
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == ready.sha256
    with zipfile.ZipFile(stored) as archive:
        assert f"INN{yesterday():%y%m%d}88ZM_{MER_ID}" in archive.namelist()
    assert [r.settle_date for r in sim.requests] == [f"{yesterday():%m%d}"] * 3
    assert [p.name for p in (tmp_path / "archives").iterdir()] == [stored.name]


async def test_other_codes_are_rejected_with_code_message_and_advice(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with simulator(keys, FilePlan(refuse=("99", "商户未开通此交易"))) as sim:
        answer = await ask(sim, keys, tmp_path, monkeypatch)

    assert (answer.outcome, answer.code, answer.message) == (Outcome.REJECTED, "99", "商户未开通此交易")
    assert answer.advice is not None and "signing_pfx_file" in answer.advice


async def test_a_request_signed_by_another_key_is_refused_by_the_simulator(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_pki()
    with simulator(keys, merchant_certificate=other.merchant.certificate) as sim:
        answer = await ask(sim, keys, tmp_path, monkeypatch)

    assert (answer.outcome, answer.code) == (Outcome.REJECTED, "11")
    assert [r.resp_code for r in sim.requests] == ["11"]


async def test_http_500_is_throttled(keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with simulator(keys, FilePlan(faults=["500"])) as sim:
        answer = await ask(sim, keys, tmp_path, monkeypatch)
        then = await ask(sim, keys, tmp_path, monkeypatch)

    assert (answer.outcome, answer.code) == (Outcome.THROTTLED, "HTTP 500")
    assert then.outcome is Outcome.READY and then.archive is not None


async def test_an_answer_with_a_bad_signature_is_never_believed(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        simulator(keys, FilePlan(faults=["bad_signature"])) as sim,
        pytest.raises(SourceUnavailable, match="signature does not verify with its signPubKeyCert"),
    ):
        await ask(sim, keys, tmp_path, monkeypatch)
    assert nothing_kept(tmp_path)


@pytest.mark.parametrize(
    ("signer", "problem"),
    [
        ("other_root", "not issued by middle_cert_file"),
        ("not_unionpay", "is not UnionPay's"),
        ("expired", "signPubKeyCert is not valid on"),
        ("root_signed", "not issued by middle_cert_file"),
    ],
)
async def test_an_answer_signed_by_a_certificate_not_unionpays_is_never_believed(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signer: str, problem: str
) -> None:
    pki = keys.pki
    long_ago = datetime.now(UTC) - timedelta(days=400)
    impostor = {
        "other_root": lambda: make_pki().unionpay,
        "not_unionpay": lambda: issue("041@Z12@某商户@00000001", pki.middle, ca=False),
        "expired": lambda: issue(
            UNIONPAY_SIGNING_CN,
            pki.middle,
            ca=False,
            not_before=long_ago,
            not_after=long_ago + timedelta(days=30),
        ),
        "root_signed": lambda: issue("041@Z12@中国银联股份有限公司@00000009", pki.root, ca=False),
    }[signer]()
    with (
        simulator(keys, unionpay=impostor) as sim,
        pytest.raises(SourceUnavailable, match=problem),
    ):
        await ask(sim, keys, tmp_path, monkeypatch)
    assert nothing_kept(tmp_path)


async def test_content_that_is_not_zlib_is_a_damaged_download(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with simulator(keys, FilePlan(faults=["not_zlib"])) as sim:
        answer = await ask(sim, keys, tmp_path, monkeypatch)

    assert (answer.outcome, answer.archive) == (Outcome.READY, None)
    assert answer.damage is not None and "zlib" in answer.damage
    assert nothing_kept(tmp_path)


async def test_no_connection_is_unavailable(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with simulator(keys) as sim:
        url = sim.url
    owner = merchant(keys, url, monkeypatch)
    client = UNIONPAY.client(owner, DEFAULTS)
    try:
        with pytest.raises(SourceUnavailable, match="connection failed"):
            await client.ask(account(owner), yesterday(), "r1", tmp_path)
    finally:
        await client.aclose()
