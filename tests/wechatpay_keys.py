"""RSA key pairs made for a test, written as PEM files; no key of this repository is real or copied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey


@dataclass(frozen=True)
class KeyPair:
    private_key: RSAPrivateKey
    private_file: Path
    public_file: Path

    @property
    def public_key(self) -> RSAPublicKey:
        return self.private_key.public_key()

    @property
    def private_pem(self) -> str:
        return self.private_file.read_text()

    @property
    def public_pem(self) -> str:
        return self.public_file.read_text()


def make_key_pair(directory: Path, name: str) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_file = directory / f"{name}_key.pem"
    public_file = directory / f"{name}_pub.pem"
    private_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public_file.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(key, private_file, public_file)
