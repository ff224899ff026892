"""Encryption of every Temporal payload with AES-256-GCM, under keys that can rotate.

A key ring is one or more ``KEY_ID:BASE64_KEY`` entries, newest first: new payloads are
encrypted with the first key, and a payload names its key id in its metadata, so
payloads written under older keys still decode while their key stays in the ring.
Entries are separated by commas or newlines (a key file may have ``#`` comments).
Each key is 32 random bytes in standard base64: ``python -m bankrecon.temporal.codec new-key``.

Errors name key ids and positions, never key material.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

# cryptography (some 8 MB of a worker's memory) is imported when a key ring is configured.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class KeyRingError(ValueError):
    """The configured keys are malformed; the message says which entry and why."""


class PayloadDecryptionError(Exception):
    """An encrypted payload cannot be decrypted with the configured keys."""


@dataclass(frozen=True)
class KeyRing:
    """Keys by id; ``current_id`` encrypts, every key decrypts."""

    current_id: str
    keys: dict[str, AESGCM]

    @classmethod
    def parse(cls, text: str, source: str) -> KeyRing:
        """Entries ``KEY_ID:BASE64_KEY``, newest first; ``source`` names the setting in errors."""
        entries = [
            entry.strip()
            for line in text.splitlines()
            for entry in line.split("#", 1)[0].split(",")
            if entry.strip()
        ]
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not entries:
            raise KeyRingError(f"{source}: no keys (expected KEY_ID:BASE64_KEY, newest first)")
        keys: dict[str, AESGCM] = {}
        for position, entry in enumerate(entries, start=1):
            key_id, separator, encoded = entry.partition(":")
            key_id = key_id.strip()
            where = f"{source}, key {position}"
            if not separator or not KEY_ID_PATTERN.fullmatch(key_id):
                raise KeyRingError(
                    f"{where}: expected KEY_ID:BASE64_KEY, the id made of 1-64 letters, digits, '.', '_', '-'"
                )
            where = f"{source}, key {key_id!r}"
            if key_id in keys:
                raise KeyRingError(f"{where}: the key id appears twice")
            try:
                material = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise KeyRingError(f"{where}: not valid base64") from None
            if len(material) != KEY_BYTES:
                raise KeyRingError(
                    f"{where}: decodes to {len(material)} bytes; AES-256 needs {KEY_BYTES} "
                    "(make one with: python -m bankrecon.temporal.codec new-key)"
                )
            keys[key_id] = AESGCM(material)
        return cls(current_id=next(iter(keys)), keys=keys)

    @property
    def ids(self) -> list[str]:
        return list(self.keys)


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


class EncryptionCodec(PayloadCodec):
    """Encrypts each whole payload (metadata and data) under the ring's current key."""

    def __init__(self, ring: KeyRing):
        self._ring = ring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id = self._ring.current_id
        key = self._ring.keys[key_id]
        encrypted = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = key.encrypt(nonce, payload.SerializeToString(), key_id.encode())
            encrypted.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
                    data=nonce + sealed,
                )
            )
        return encrypted

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        # Payloads written before encryption was turned on pass through as they are.
        return [self._decrypt(p) if p.metadata.get("encoding") == ENCODING else p for p in payloads]

    def _decrypt(self, payload: Payload) -> Payload:
        from cryptography.exceptions import InvalidTag

        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode("utf-8", errors="replace")
        key = self._ring.keys.get(key_id)
        if key is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r}, which is not among the configured keys "
                f"{self._ring.ids}: add that key to the ring (after the newest)"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = key.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key id {key_id!r} fails authentication: damaged, or encrypted with "
                "another key of the same id"
            ) from None
        decrypted = Payload()
        decrypted.ParseFromString(plain)
        return decrypted


def load_key_ring(keys: str | None, keys_file: Path | None) -> KeyRing | None:
    """The ring from BANKRECON_ENCRYPTION_KEYS or BANKRECON_ENCRYPTION_KEYS_FILE; None when neither is set."""
    if keys and keys_file:
        raise KeyRingError("set BANKRECON_ENCRYPTION_KEYS or BANKRECON_ENCRYPTION_KEYS_FILE, not both")
    if keys:
        return KeyRing.parse(keys, "BANKRECON_ENCRYPTION_KEYS")
    if keys_file:
        try:
            text = keys_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyRingError(f"BANKRECON_ENCRYPTION_KEYS_FILE {keys_file}: {exc.strerror}") from None
        return KeyRing.parse(text, f"BANKRECON_ENCRYPTION_KEYS_FILE {keys_file}")
    return None


def main(argv: list[str]) -> int:
    if argv != ["new-key"]:
        print("usage: python -m bankrecon.temporal.codec new-key   (prints a random AES-256 key, base64)")
        return 2
    print(new_key())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
