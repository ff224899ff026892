"""The one way bankrecon connects to Temporal: the worker, the CLI and the demo all use it."""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from bankrecon.codec import EncryptionCodec, KeyRing, load_key_ring
from bankrecon.config import Settings


class TemporalUnreachable(Exception):
    """Temporal could not be reached; the message names the address and the setting."""


def key_ring(settings: Settings) -> KeyRing | None:
    keys = settings.bankrecon_encryption_keys
    return load_key_ring(keys.get_secret_value() if keys else None, settings.bankrecon_encryption_keys_file)


def data_converter(settings: Settings) -> DataConverter:
    ring = key_ring(settings)
    if ring is None:
        return pydantic_data_converter
    # Failure messages and stack traces go into encoded attributes, so they are encrypted too.
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(settings: Settings) -> Client:
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
        )
    except RuntimeError as exc:
        raise TemporalUnreachable(
            f"cannot reach Temporal at {settings.temporal_address} (TEMPORAL_ADDRESS): {exc}"
        ) from None
