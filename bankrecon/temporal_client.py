"""The one way bankrecon connects to Temporal: the worker, the CLI and the demo all use it."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from bankrecon.config import Settings


class TemporalUnreachable(Exception):
    """Temporal could not be reached; the message names the address and the setting."""


def data_converter(settings: Settings) -> DataConverter:
    return pydantic_data_converter


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
