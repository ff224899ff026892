"""Connecting to Temporal over TLS and mTLS, with the certificates and keys of the settings.

The dev server speaks plaintext only, so a TLS proxy in front of it stands for a TLS
frontend: it presents a server certificate of a test CA and requires a client certificate
of the same CA, as a self-hosted cluster with mTLS does. Temporal Cloud's API key cannot be
checked here (the dev server accepts any caller); what is checked is that it turns TLS on.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from bankrecon.config import Settings
from bankrecon.temporal.client import TemporalConnectionError, TemporalUnreachable, connect, tls_config

SERVER_NAME = "temporal.test"


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _issue(directory: Path, name: str, subject: str, extensions: str) -> None:
    """A key and a certificate for ``subject``, signed by the test CA in ``directory``."""
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={subject}", cwd=directory,
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    directory = tmp_path_factory.mktemp("pki")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bankrecon test CA", cwd=directory,
    )  # fmt: skip
    _issue(
        directory, "server", SERVER_NAME, f"subjectAltName=DNS:{SERVER_NAME}\nextendedKeyUsage=serverAuth\n"
    )
    _issue(directory, "client", "bankrecon worker", "extendedKeyUsage=clientAuth\n")
    return Certificates(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def mtls_frontend(dev_env: WorkflowEnvironment, certificates: Certificates) -> AsyncIterator[str]:
    """host:port of a TLS endpoint requiring a client certificate, forwarding to the dev server."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certificates.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(certificates.server_cert, certificates.server_key)
    context.set_alpn_protocols(["h2"])
    host, port = dev_env.client.service_client.config.target_host.rsplit(":", 1)

    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(_pump(client_reader, server_writer), _pump(server_reader, client_writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)
    async with server:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _settings(address: str, **values: Any) -> Settings:
    return Settings(_env_file=None, temporal_address=address, **values)


def _mtls(certificates: Certificates, **overrides: Any) -> dict[str, Any]:
    return {
        "temporal_tls_server_ca_cert_path": certificates.ca,
        "temporal_tls_client_cert_path": certificates.client_cert,
        "temporal_tls_client_key_path": certificates.client_key,
        "temporal_tls_server_name": SERVER_NAME,
    } | overrides


def test_tls_is_built_from_the_files_of_the_settings(certificates: Certificates) -> None:
    tls = tls_config(_settings("temporal.internal:7233", **_mtls(certificates)))
    assert tls == TLSConfig(
        server_root_ca_cert=certificates.ca.read_bytes(),
        client_cert=certificates.client_cert.read_bytes(),
        client_private_key=certificates.client_key.read_bytes(),
        domain=SERVER_NAME,
    )


def test_the_settings_are_read_under_temporals_own_variable_names(
    certificates: Certificates, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(certificates.ca))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certificates.client_cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(certificates.client_key))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", SERVER_NAME)
    monkeypatch.setenv("TEMPORAL_API_KEY", "cloud-key")
    settings = Settings()
    assert (
        settings.temporal_api_key is not None and settings.temporal_api_key.get_secret_value() == "cloud-key"
    )
    assert "cloud-key" not in repr(settings)
    assert tls_config(settings) == tls_config(_settings("temporal.internal:7233", **_mtls(certificates)))


def test_plaintext_unless_tls_is_asked_for_and_an_api_key_asks_for_it() -> None:
    assert tls_config(_settings("localhost:7233")) is False
    # Temporal Cloud with an API key: TLS, the server verified against the system's roots.
    assert tls_config(_settings("ns.acct.tmprl.cloud:7233", temporal_api_key="key")) == TLSConfig()
    assert tls_config(_settings("temporal.internal:7233", temporal_tls=True)) == TLSConfig()


def test_an_unreadable_certificate_is_named_with_its_setting(
    certificates: Certificates, tmp_path: Path
) -> None:
    missing = tmp_path / "absent.key"
    with pytest.raises(TemporalConnectionError) as error:
        tls_config(
            _settings("temporal.internal:7233", **_mtls(certificates, temporal_tls_client_key_path=missing))
        )
    assert (
        str(error.value) == f"cannot read TEMPORAL_TLS_CLIENT_KEY_PATH {missing}: No such file or directory"
    )


def test_a_client_certificate_needs_its_key(certificates: Certificates) -> None:
    with pytest.raises(
        ValidationError, match="TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"
    ):
        _settings("temporal.internal:7233", temporal_tls_client_cert_path=certificates.client_cert)


async def test_mtls_connects_with_the_client_certificate(
    mtls_frontend: str, certificates: Certificates
) -> None:
    client = await connect(_settings(mtls_frontend, **_mtls(certificates)))
    namespace = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    assert namespace.namespace_info.name == "default"


async def test_mtls_without_a_client_certificate_is_refused(
    mtls_frontend: str, certificates: Certificates
) -> None:
    settings = _settings(
        mtls_frontend,
        temporal_tls_server_ca_cert_path=certificates.ca,
        temporal_tls_server_name=SERVER_NAME,
    )
    with pytest.raises(TemporalUnreachable, match=rf"cannot reach Temporal at {mtls_frontend} .* over TLS"):
        await connect(settings)


async def test_a_server_certificate_of_another_ca_is_refused(
    mtls_frontend: str, certificates: Certificates
) -> None:
    # Without the CA file the system's roots must vouch for the server, and they do not know the test CA.
    settings = _settings(mtls_frontend, **_mtls(certificates, temporal_tls_server_ca_cert_path=None))
    with pytest.raises(TemporalUnreachable, match=r"over TLS .*UnknownIssuer"):
        await connect(settings)


async def test_tls_against_a_plaintext_server_fails_with_the_settings_named(
    dev_env: WorkflowEnvironment,
) -> None:
    address = dev_env.client.service_client.config.target_host
    with pytest.raises(TemporalUnreachable) as error:
        await connect(_settings(address, temporal_tls=True))
    assert str(error.value).startswith(
        f"cannot reach Temporal at {address} (TEMPORAL_ADDRESS) over TLS (check the TEMPORAL_TLS_* settings: "
        "does the server speak TLS, "
    )
