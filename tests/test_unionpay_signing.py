"""UnionPay signatures and certificate checks against an independent implementation: the openssl CLI."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from datetime import date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from bankrecon.sources.unionpay import UNIONPAY
from bankrecon.sources.unionpay.client import request_fields
from bankrecon.sources.unionpay.signing import (
    AnswerCertificates,
    digest_hex,
    digest_signature_holds,
    load_signing_pfx,
    sign_fields,
    signing_text,
)
from bankrecon.sources.unionpay.simulator.pki import Pki, make_pki
from tests.unionpay_setup import DEFAULTS, MER_ID, PASSWORD, PASSWORD_ENV, Keys, make_keys, merchant_entry

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line")
FIELDS = {
    "version": "5.1.0",
    "encoding": "UTF-8",
    "txnType": "76",
    "respMsg": "成功[0000000]",
    "fileContent": "eJwLcgz2",
    "merId": MER_ID,
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("pki"))


def openssl(*args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=True).stdout


def test_the_signing_text_sorts_every_field_but_signature_unencoded() -> None:
    fields = FIELDS | {"signature": "ignored", "accessType": "0"}
    assert signing_text(fields) == (
        "accessType=0&encoding=UTF-8&fileContent=eJwLcgz2&merId=802310048993424&respMsg=成功[0000000]"
        "&txnType=76&version=5.1.0"
    )


def test_a_request_signature_is_the_one_openssl_makes_with_the_pfx_key(keys: Keys, tmp_path: Path) -> None:
    key_pem = tmp_path / "key.pem"
    key_pem.write_bytes(
        openssl("pkcs12", "-in", str(keys.files.pfx), "-nocerts", "-nodes", "-passin", f"pass:{PASSWORD}")
    )
    signing = load_signing_pfx(keys.files.pfx, PASSWORD)
    fields = request_fields(MER_ID, signing.cert_id, date(2026, 11, 20), datetime(2026, 11, 21, 9, 30))
    hex_digest = tmp_path / "digest.txt"
    hex_digest.write_bytes(hashlib.sha256(signing_text(fields).encode("utf-8")).hexdigest().encode())

    theirs = base64.b64encode(openssl("dgst", "-sha256", "-sign", str(key_pem), str(hex_digest))).decode()

    # PKCS#1 v1.5 is deterministic: the same key and text give the same bytes.
    assert sign_fields(signing.private_key, fields) == theirs


def test_cert_id_is_the_pfx_certificates_serial_in_decimal(keys: Keys) -> None:
    certificate = openssl(
        "pkcs12", "-in", str(keys.files.pfx), "-nokeys", "-clcerts", "-passin", f"pass:{PASSWORD}"
    )
    serial = openssl("x509", "-noout", "-serial", input=certificate).decode().strip().removeprefix("serial=")

    assert load_signing_pfx(keys.files.pfx, PASSWORD).cert_id == str(int(serial, 16)) == "69026300001"


def test_openssl_verifies_what_unionpays_side_signs(keys: Keys, tmp_path: Path) -> None:
    public = tmp_path / "unionpay_pub.pem"
    public.write_bytes(openssl("x509", "-noout", "-pubkey", input=keys.pki.unionpay.pem.encode()))
    digest = tmp_path / "digest.txt"
    digest.write_bytes(digest_hex([signing_text(FIELDS).encode("utf-8")]))
    signature = tmp_path / "signature.bin"
    signature.write_bytes(base64.b64decode(sign_fields(keys.pki.unionpay.key, FIELDS)))

    assert (
        openssl("dgst", "-sha256", "-verify", str(public), "-signature", str(signature), str(digest)).strip()
        == b"Verified OK"
    )


def test_a_signature_openssl_made_verifies_here_and_a_changed_field_does_not(
    keys: Keys, tmp_path: Path
) -> None:
    key_pem = tmp_path / "unionpay_key.pem"
    key_pem.write_bytes(
        keys.pki.unionpay.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    digest = tmp_path / "digest.txt"
    digest.write_bytes(hashlib.sha256(signing_text(FIELDS).encode()).hexdigest().encode())
    theirs = base64.b64encode(openssl("dgst", "-sha256", "-sign", str(key_pem), str(digest))).decode()
    public_key = keys.pki.unionpay.certificate.public_key()

    assert digest_signature_holds(public_key, digest_hex([signing_text(FIELDS).encode()]), theirs)  # type: ignore[arg-type]
    changed = FIELDS | {"respMsg": "成功"}
    assert not digest_signature_holds(public_key, digest_hex([signing_text(changed).encode()]), theirs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sha256_pki() -> Pki:
    return make_pki(signature_hash="sha256")


@pytest.mark.parametrize("chain_hash", ["sha1", "sha256"])
@pytest.mark.parametrize("who", ["unionpay", "merchant", "middle", "impostor"])
def test_the_chain_check_agrees_with_openssl_verify(
    keys: Keys, sha256_pki: Pki, tmp_path: Path, who: str, chain_hash: str
) -> None:
    # The default PKI is signed SHA-1 throughout, as UnionPay's production chain is.
    pki = keys.pki if chain_hash == "sha1" else sha256_pki
    assert pki.unionpay.certificate.signature_algorithm_oid._name == f"{chain_hash}WithRSAEncryption"
    leaf = {
        "unionpay": pki.unionpay,
        "merchant": pki.merchant,
        "middle": pki.middle,
        "impostor": make_pki(signature_hash="sha256").unionpay,
    }[who]
    files = {name: tmp_path / f"{name}.pem" for name in ("root", "middle", "leaf")}
    files["root"].write_text(pki.root.pem)
    files["middle"].write_text(pki.middle.pem)
    files["leaf"].write_text(leaf.pem)
    verified = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(files["root"]),
            "-untrusted",
            str(files["middle"]),
            str(files["leaf"]),
        ],
        capture_output=True,
    )
    ours = AnswerCertificates(pki.root.certificate, pki.middle.certificate).signing_key(leaf.pem)

    # openssl checks the chain only; the merchant's own certificate chains too but is not UnionPay's,
    # and the middle certificate is not issued by itself.
    assert (verified.returncode == 0) == (who in ("unionpay", "merchant", "middle"))
    assert not isinstance(ours, str) if who == "unionpay" else isinstance(ours, str)


def test_merchant_settings_name_what_is_wrong_in_one_line(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(ValueError, match=f"environment variable {PASSWORD_ENV} is not set"):
        UNIONPAY.merchant_settings(merchant_entry(keys, "http://x/"), DEFAULTS)
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    with pytest.raises(ValueError, match="not a PKCS#12 file this password opens"):
        UNIONPAY.merchant_settings(merchant_entry(keys, "http://x/"), DEFAULTS)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    with pytest.raises(ValueError, match=r"^mer_id: String should match pattern"):
        UNIONPAY.merchant_settings(merchant_entry(keys, "http://x/", mer_id="12"), DEFAULTS)
    with pytest.raises(ValueError, match=r"middle_cert_file .*: not an X.509 certificate"):
        UNIONPAY.merchant_settings(
            merchant_entry(keys, "http://x/", middle_cert_file=str(keys.files.pfx)), DEFAULTS
        )
    settings = UNIONPAY.merchant_settings(
        {k: v for k, v in merchant_entry(keys, "").items() if k != "base_url"}, DEFAULTS
    )
    assert settings.base_url == "https://filedownload.95516.com/"
    assert PASSWORD not in repr(settings)
