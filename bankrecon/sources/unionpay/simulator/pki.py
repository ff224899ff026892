"""A made-up UnionPay PKI for the simulator and tests: root, middle, UnionPay's and a merchant's certificate.

Everything is generated at run time; nothing here is, or is copied from, a real key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from bankrecon.sources.unionpay.signing import UNIONPAY_OWNER

UNIONPAY_SIGNING_CN = f"041@Z12@{UNIONPAY_OWNER}@00000001"


@dataclass(frozen=True)
class Issued:
    key: RSAPrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


@dataclass(frozen=True)
class Pki:
    root: Issued
    middle: Issued
    unionpay: Issued  # signs the answers; its PEM is the answers' signPubKeyCert
    merchant: Issued  # signs the requests; kept in the PFX

    def write(self, directory: Path, password: str) -> PkiFiles:
        directory.mkdir(parents=True, exist_ok=True)
        files = PkiFiles(
            pfx=directory / "acp_sign.pfx",
            root=directory / "acp_root.cer",
            middle=directory / "acp_middle.cer",
            merchant_certificate=directory / "acp_sign.cer",
        )
        files.pfx.write_bytes(pfx_bytes(self.merchant, password))
        files.root.write_text(self.root.pem)
        files.middle.write_text(self.middle.pem)
        files.merchant_certificate.write_text(self.merchant.pem)
        return files


@dataclass(frozen=True)
class PkiFiles:
    pfx: Path
    root: Path
    middle: Path
    merchant_certificate: Path


def pfx_bytes(issued: Issued, password: str) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"acp_sign",
        issued.key,
        issued.certificate,
        None,
        serialization.BestAvailableEncryption(password.encode("utf-8")),
    )


def issue(
    common_name: str,
    issuer: Issued | None,
    *,
    ca: bool,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial: int | None = None,
) -> Issued:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Simulated UnionPay"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.now(UTC)
    signer = issuer.key if issuer is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    return Issued(key, builder.sign(signer, hashes.SHA256()))


def make_pki(merchant_serial: int = 69_026_300_001) -> Pki:
    root = issue("Simulated UnionPay Root", None, ca=True)
    middle = issue("Simulated UnionPay Middle", root, ca=True)
    return Pki(
        root=root,
        middle=middle,
        unionpay=issue(UNIONPAY_SIGNING_CN, middle, ca=False),
        merchant=issue("041@Z12@802310048993424@00000002", middle, ca=False, serial=merchant_serial),
    )
