"""A made-up UnionPay PKI for the simulator and tests: root, middle, UnionPay's and a merchant's certificate.

Everything is generated at run time; nothing here is, or is copied from, a real key. By default
every certificate is signed sha1WithRSA, as UnionPay's production root (CFCA's) and its signing
certificates of recent years are; ``signature_hash="sha256"`` makes the newer kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from bankrecon.sources.unionpay.signing import UNIONPAY_OWNER

UNIONPAY_SIGNING_CN = f"041@Z12@{UNIONPAY_OWNER}@00000001"
SignatureHash = Literal["sha1", "sha256"]
# The DER of the AlgorithmIdentifier OIDs sha256WithRSAEncryption and sha1WithRSAEncryption:
# the same length, so one can stand in for the other without changing any length in the DER.
_SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")
_SHA1_WITH_RSA = bytes.fromhex("06092a864886f70d010105")


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
    signature_hash: SignatureHash = "sha1",
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
    certificate = builder.sign(signer, hashes.SHA256())
    if signature_hash == "sha1":
        certificate = _signed_sha1(certificate, signer)
    return Issued(key, certificate)


def _signed_sha1(certificate: x509.Certificate, signer: RSAPrivateKey) -> x509.Certificate:
    """The certificate signed sha1WithRSA instead, which cryptography's builder no longer makes."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    tbs = certificate.tbs_certificate_bytes
    head, tail = der.split(tbs)
    sha1_tbs = tbs.replace(_SHA256_WITH_RSA, _SHA1_WITH_RSA)
    signature = signer.sign(sha1_tbs, PKCS1v15(), hashes.SHA1())
    # The certificate ends with its signature algorithm and the signature, as long as before.
    tail = tail.replace(_SHA256_WITH_RSA, _SHA1_WITH_RSA)[: -len(signature)] + signature
    return x509.load_der_x509_certificate(head + sha1_tbs + tail)


def make_pki(merchant_serial: int = 69_026_300_001, signature_hash: SignatureHash = "sha1") -> Pki:
    root = issue("Simulated UnionPay Root", None, ca=True, signature_hash=signature_hash)
    middle = issue("Simulated UnionPay Middle", root, ca=True, signature_hash=signature_hash)
    return Pki(
        root=root,
        middle=middle,
        unionpay=issue(UNIONPAY_SIGNING_CN, middle, ca=False, signature_hash=signature_hash),
        merchant=issue(
            "041@Z12@802310048993424@00000002",
            middle,
            ca=False,
            serial=merchant_serial,
            signature_hash=signature_hash,
        ),
    )
