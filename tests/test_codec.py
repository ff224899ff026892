"""The payload codec: AES-256-GCM under a key ring that rotates, and the errors of a bad key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

from bankrecon.models import DailyStatementInput
from bankrecon.temporal.client import data_converter
from bankrecon.temporal.codec import (
    ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    KeyRing,
    KeyRingError,
    PayloadDecryptionError,
    load_key_ring,
    main,
    new_key,
)
from tests.harness import ACCOUNT, BILL_DATE, settings_for

OLD_KEY = new_key()
NEW_KEY = new_key()


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


async def test_round_trip_hides_data_and_metadata() -> None:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{NEW_KEY}", "test"))
    original = [plain('{"account_no": "6222020000000001"}'), plain('"12345.67"')]
    encrypted = await codec.encode(original)
    for payload in encrypted:
        assert payload.metadata["encoding"] == ENCODING
        assert payload.metadata[KEY_ID_METADATA] == b"k1"
        assert b"6222020000000001" not in payload.SerializeToString()
        assert b"json/plain" not in payload.SerializeToString()
    # A fresh nonce each time: equal inputs give different ciphertexts.
    assert (await codec.encode([original[0]]))[0].data != encrypted[0].data
    assert await codec.decode(encrypted) == original


async def test_rotation_new_payloads_use_the_newest_key_and_old_ones_still_decode() -> None:
    before = EncryptionCodec(KeyRing.parse(f"old:{OLD_KEY}", "test"))
    after = EncryptionCodec(KeyRing.parse(f"new:{NEW_KEY},old:{OLD_KEY}", "test"))
    written_before = await before.encode([plain('"before"')])
    written_after = await after.encode([plain('"after"')])
    assert written_after[0].metadata[KEY_ID_METADATA] == b"new"
    assert await after.decode(written_before + written_after) == [plain('"before"'), plain('"after"')]
    # Once "old" is retired, what it wrote says which key it needs.
    retired = EncryptionCodec(KeyRing.parse(f"new:{NEW_KEY}", "test"))
    with pytest.raises(PayloadDecryptionError, match=r"key id 'old', which is not among .*\['new'\]"):
        await retired.decode(written_before)


async def test_unencrypted_payloads_pass_through_decode() -> None:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{NEW_KEY}", "test"))
    earlier = [plain('"written before encryption"')]
    assert await codec.decode(earlier) == earlier


async def test_tampered_or_wrong_key_payload_fails_authentication() -> None:
    codec = EncryptionCodec(KeyRing.parse(f"k1:{NEW_KEY}", "test"))
    [sealed] = await codec.encode([plain('"x"')])
    tampered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(PayloadDecryptionError, match="fails authentication"):
        await codec.decode([tampered])
    other = EncryptionCodec(KeyRing.parse(f"k1:{OLD_KEY}", "test"))
    with pytest.raises(PayloadDecryptionError, match="fails authentication"):
        await other.decode([sealed])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no keys"),
        (NEW_KEY, "key 1: expected KEY_ID:BASE64_KEY"),
        (f"bad id:{NEW_KEY}", "key 1: expected KEY_ID:BASE64_KEY"),
        (f"k1:{NEW_KEY},k2", "key 2: expected KEY_ID:BASE64_KEY"),
        ("k1:not*base64!", "key 'k1': not valid base64"),
        (f"k1:{base64.b64encode(bytes(16)).decode()}", "key 'k1': decodes to 16 bytes; AES-256 needs 32"),
        (f"k1:{NEW_KEY},k1:{OLD_KEY}", "key 'k1': the key id appears twice"),
    ],
)
def test_malformed_keys_are_named_without_their_material(text: str, message: str) -> None:
    with pytest.raises(KeyRingError, match=message) as error:
        KeyRing.parse(text, "BANKRECON_ENCRYPTION_KEYS")
    assert str(error.value).startswith("BANKRECON_ENCRYPTION_KEYS")
    for key in (NEW_KEY, OLD_KEY):
        assert key not in str(error.value)


def test_new_key_command_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-key"]) == 0
    printed = capsys.readouterr().out.strip()
    assert len(base64.b64decode(printed, validate=True)) == 32
    assert KeyRing.parse(f"fresh:{printed}", "test").ids == ["fresh"]
    assert main([]) == 2


def test_key_file_with_comments_and_lines(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# newest first\n2026-11:{NEW_KEY}\n2026-01:{OLD_KEY}  # retire after 2027-02\n")
    ring = load_key_ring(None, keys_file)
    assert ring is not None and ring.ids == ["2026-11", "2026-01"] and ring.current_id == "2026-11"
    with pytest.raises(KeyRingError, match="not both"):
        load_key_ring(f"k:{NEW_KEY}", keys_file)
    with pytest.raises(KeyRingError, match="No such file"):
        load_key_ring(None, tmp_path / "missing")
    assert load_key_ring(None, None) is None


async def test_data_converter_encrypts_only_when_keys_are_configured(tmp_path: Path) -> None:
    value = DailyStatementInput(account_no=ACCOUNT, bill_date=BILL_DATE)
    base = settings_for(tmp_path, "sqlite://", "http://bank", "q")
    off = data_converter(base)
    assert off.payload_codec is None
    [payload] = await off.encode([value])
    assert ACCOUNT.encode() in payload.data

    on = data_converter(
        settings_for(tmp_path, "sqlite://", "http://bank", "q", bankrecon_encryption_keys=f"k1:{NEW_KEY}")
    )
    assert isinstance(on.failure_converter, DefaultFailureConverterWithEncodedAttributes)
    [sealed] = await on.encode([value])
    assert ACCOUNT.encode() not in sealed.SerializeToString()
    assert await on.decode([sealed], [DailyStatementInput]) == [value]
