"""The one way bankrecon connects to Temporal: the worker, the CLI and the demo all use it."""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Literal

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
)
from temporalio.service import TLSConfig

from bankrecon.config import Settings
from bankrecon.telemetry.metrics import HISTOGRAM_BUCKETS
from bankrecon.temporal.codec import EncryptionCodec, KeyRing, load_key_ring

CORE_LOGGER = logging.getLogger("temporalio.core")


class TemporalConnectionError(Exception):
    """Connecting to Temporal failed; the message names the setting to look at."""


class TemporalUnreachable(TemporalConnectionError):
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


def _read(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TemporalConnectionError(f"cannot read {setting} {path}: {exc.strerror}") from None


def tls_config(settings: Settings) -> TLSConfig | Literal[False]:
    """TLS for the Temporal connection, or False for plaintext (a local or in-cluster server)."""
    wanted = (
        settings.temporal_tls
        or settings.temporal_api_key is not None
        or settings.temporal_tls_server_name is not None
        or settings.temporal_tls_server_ca_cert_path is not None
        or settings.temporal_tls_client_cert_path is not None
    )
    if not wanted:
        return False
    # Without a CA file the system's roots verify the server, as Temporal Cloud needs.
    return TLSConfig(
        server_root_ca_cert=_read(
            settings.temporal_tls_server_ca_cert_path, "TEMPORAL_TLS_SERVER_CA_CERT_PATH"
        ),
        client_cert=_read(settings.temporal_tls_client_cert_path, "TEMPORAL_TLS_CLIENT_CERT_PATH"),
        client_private_key=_read(settings.temporal_tls_client_key_path, "TEMPORAL_TLS_CLIENT_KEY_PATH"),
        domain=settings.temporal_tls_server_name,
    )


@functools.cache
def _runtime(metrics_address: str | None, log_format: Literal["text", "json"]) -> Runtime:
    # Core's own warnings go through Python's logging, so that JSON logs stay one object per line.
    core_logs = (
        LoggingConfig(filter=LoggingConfig.default.filter, forwarding=LogForwardingConfig(logger=CORE_LOGGER))
        if log_format == "json"
        else LoggingConfig.default
    )
    metrics = (
        PrometheusConfig(bind_address=metrics_address, histogram_bucket_overrides=HISTOGRAM_BUCKETS)
        if metrics_address
        else None
    )
    try:
        return Runtime(telemetry=TelemetryConfig(logging=core_logs, metrics=metrics))
    except ValueError as exc:
        raise TemporalConnectionError(
            f"cannot serve metrics on {metrics_address} (METRICS_ADDRESS): {exc}"
        ) from None


def runtime(settings: Settings) -> Runtime | None:
    """The SDK runtime for the settings' metrics and log format, one per process; None: the SDK's default."""
    if settings.metrics_address is None and settings.log_format == "text":
        return None
    return _runtime(settings.metrics_address, settings.log_format)


async def connect(settings: Settings) -> Client:
    tls = tls_config(settings)
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            api_key=api_key,
            tls=tls,
            data_converter=data_converter(settings),
            runtime=runtime(settings),
        )
    except RuntimeError as exc:
        over = (
            "over TLS (check the TEMPORAL_TLS_* settings: does the server speak TLS, "
            "does the CA vouch for it, does it accept the client certificate?)"
            if tls
            else "in plaintext"
        )
        raise TemporalUnreachable(
            f"cannot reach Temporal at {settings.temporal_address} (TEMPORAL_ADDRESS) {over}: {exc}"
        ) from None
