"""UnionPay ACP signatures (signMethod 01, version 5.1.0): the merchant's requests and UnionPay's answers.

Both sides sign the same way: every field but ``signature``, sorted by key and joined
``k=v&...`` with the values as they are (not URL-encoded); the SHA-256 of that text as lower
hex; that hex text signed SHA256withRSA (PKCS#1 v1.5); base64. The merchant signs with the
key of its PFX and names the certificate by ``certId``, its serial in decimal. An answer
carries the certificate that signed it (``signPubKeyCert``), which is believed only when it
is valid today, chains to the configured root through the configured middle certificate
(signed SHA-1 or SHA-2: see CHAIN_HASHES), and is UnionPay's own (the third ``@`` part of its
CN is 中国银联股份有限公司, as the official SDKs check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA1, SHA256, SHA384, SHA512, HashAlgorithm
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

SIGNATURE_FIELD = "signature"
UNIONPAY_OWNER = "中国银联股份有限公司"
_MIN_KEY_BITS = 2048


def signing_text(fields: Mapping[str, str]) -> str:
    """The text both sides sign: every field but ``signature``, sorted by key, ``k=v`` joined by ``&``."""
    return "&".join(f"{name}={fields[name]}" for name in sorted(fields) if name != SIGNATURE_FIELD)


def digest_hex(pieces: Iterable[bytes]) -> bytes:
    """The lower-hex SHA-256 of the signing text given in pieces (a large field need not be whole)."""
    sha256 = hashlib.sha256()
    for piece in pieces:
        sha256.update(piece)
    return sha256.hexdigest().encode("ascii")


def sign_digest(private_key: RSAPrivateKey, hex_digest: bytes) -> str:
    return base64.b64encode(private_key.sign(hex_digest, PKCS1v15(), SHA256())).decode("ascii")


def sign_fields(private_key: RSAPrivateKey, fields: Mapping[str, str]) -> str:
    return sign_digest(private_key, digest_hex([signing_text(fields).encode("utf-8")]))


def digest_signature_holds(public_key: RSAPublicKey, hex_digest: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), hex_digest, PKCS1v15(), SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


@dataclass(frozen=True)
class SigningKey:
    """The merchant's signing certificate and its key, from the PFX UnionPay issued."""

    private_key: RSAPrivateKey
    certificate: x509.Certificate

    @property
    def cert_id(self) -> str:
        return str(self.certificate.serial_number)


def load_signing_pfx(path: Path, password: str, key_name: str = "signing_pfx_file") -> SigningKey:
    """The PFX's RSA key and certificate; ValueError names the file, never the password or key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(
            f"{key_name} {path}: cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(data, password.encode("utf-8"))
    except (ValueError, TypeError):
        raise ValueError(f"{key_name} {path}: not a PKCS#12 file this password opens") from None
    if certificate is None or not isinstance(key, RSAPrivateKey) or key.key_size < _MIN_KEY_BITS:
        raise ValueError(
            f"{key_name} {path}: holds no certificate with an RSA key of at least {_MIN_KEY_BITS} bits"
        )
    if certificate.public_key() != key.public_key():
        raise ValueError(f"{key_name} {path}: its certificate is not the one of its key")
    return SigningKey(key, certificate)


def load_certificate(path: Path, key_name: str) -> x509.Certificate:
    """A certificate in PEM (UnionPay's .cer files) or DER; ValueError names the key and the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(
            f"{key_name} {path}: cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValueError(f"{key_name} {path}: not an X.509 certificate in PEM or DER") from None


def owner(certificate: x509.Certificate) -> str:
    """The third ``@`` part of the certificate's CN, which names its holder in UnionPay's scheme."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    parts = str(names[0].value).split("@") if names else []
    return parts[2] if len(parts) > 2 else ""


# The hashes a certificate of the chain may be signed with. UnionPay's production root (CFCA's)
# and its signing certificates of recent years are signed sha1WithRSA, which the web PKI's
# verifiers refuse; here the chain is believed because it ends at the root certificate the
# operator configured, not because of SHA-1's strength, and the answer's own signature stays
# SHA-256 (digest_signature_holds).
CHAIN_HASHES: tuple[type[HashAlgorithm], ...] = (SHA1, SHA256, SHA384, SHA512)


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` names and signs ``certificate``, RSA PKCS#1 v1.5 with a hash of CHAIN_HASHES."""
    algorithm = certificate.signature_hash_algorithm
    key = issuer.public_key()
    if certificate.issuer != issuer.subject or not isinstance(key, RSAPublicKey):
        return False
    if not isinstance(algorithm, CHAIN_HASHES):
        return False
    try:
        key.verify(certificate.signature, certificate.tbs_certificate_bytes, PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return constraints.ca
    return constraints.ca and usage.key_cert_sign


@dataclass(frozen=True)
class AnswerCertificates:
    """Decides whether the certificate an answer carries is UnionPay's signing certificate."""

    root: x509.Certificate
    middle: x509.Certificate

    def signing_key(self, pem: str, now: datetime | None = None) -> RSAPublicKey | str:
        """The certificate's public key when it is to be believed; else why not, in words holding no data."""
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return "the answer's signPubKeyCert is not a PEM certificate"
        # UnionPay's certificates are no web PKI: no name or usage to match, only the chain of
        # exactly three, its signatures, its CA flags and each certificate's validity dates.
        if not issued_by(certificate, self.middle):
            return "the answer's signPubKeyCert is not issued by middle_cert_file"
        if not issued_by(self.middle, self.root):
            return "middle_cert_file is not issued by root_cert_file"
        if not (_is_ca(self.middle) and _is_ca(self.root)):
            return "root_cert_file and middle_cert_file are not both CA certificates"
        at = now or datetime.now(UTC)
        for held, name in (
            (certificate, "the answer's signPubKeyCert"),
            (self.middle, "middle_cert_file"),
            (self.root, "root_cert_file"),
        ):
            if not held.not_valid_before_utc <= at <= held.not_valid_after_utc:
                since, until = held.not_valid_before_utc, held.not_valid_after_utc
                return f"{name} is not valid on {at:%Y-%m-%d} (valid {since:%Y-%m-%d} to {until:%Y-%m-%d})"
        if owner(certificate) != UNIONPAY_OWNER:
            return f"the answer's signPubKeyCert is not UnionPay's (its CN does not name {UNIONPAY_OWNER})"
        key = certificate.public_key()
        if not isinstance(key, RSAPublicKey) or key.key_size < _MIN_KEY_BITS:
            return f"the answer's signPubKeyCert holds no RSA key of at least {_MIN_KEY_BITS} bits"
        return key
