"""SFTP client for statement files: find the day's file, wait until it is whole, download it, move it away."""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

import asyncssh

from bankrecon.models import ArchiveRef
from bankrecon.sources.base import Account, Answer, Outcome, SourceUnavailable
from bankrecon.store.archive import archive_path, staged_file

# A day's statement of one account is kilobytes to a few megabytes; past this it is not one,
# and is not allowed to fill the disk (the MT940 reader holds a file whole in memory).
MAX_STATEMENT_BYTES = 256 * 1024**2
MARKER_SUFFIX = ".done"
_PIECE = 256 * 1024
_GLOB_CHARACTERS = frozenset("*?[")

ADVICE_HOST_KEY = (
    "the server's host key is not the one in known_hosts_file: confirm the new key's fingerprint with "
    "the bank out of band, then put it in known_hosts_file (a changed key is never accepted by itself)"
)
ADVICE_LOGIN = "the server refused the login: check username and private_key_file or password_env"
ADVICE_PERMISSION = "the server denied access to the statement file: check path and the user's rights"
ADVICE_AMBIGUOUS = "path matches more than one file: make the glob match the one file of an account and day"


@dataclass(frozen=True)
class SftpLogin:
    host: str
    port: int
    username: str
    private_key: asyncssh.SSHKey | None
    password: str | None
    known_hosts: asyncssh.SSHKnownHosts
    connect_timeout: float
    request_timeout: float


class _TooLong(Exception):
    pass


@dataclass(frozen=True)
class _Found:
    path: str
    size: int


class SftpClient:
    """One connection per request: statements are polled at intervals of minutes."""

    def __init__(self, login: SftpLogin, *, max_file_bytes: int = MAX_STATEMENT_BYTES):
        self._login = login
        self._max_file_bytes = max_file_bytes

    async def aclose(self) -> None:
        return None

    async def ask(self, account: Account, bill_date: date, request_id: str, data_dir: Path) -> Answer:
        settings: Any = account.settings
        try:
            async with (
                asyncio.timeout(self._login.request_timeout + settings.stable_seconds),
                self._sftp() as sftp,
            ):
                found = await _find(sftp, statement_path(account, bill_date))
                if isinstance(found, Answer):
                    return found
                waiting = await _not_ready(sftp, found, settings.ready, settings.stable_seconds)
                if waiting is not None:
                    return waiting
                return await self._download(sftp, found, data_dir)
        except asyncssh.HostKeyNotVerifiable as exc:
            return Answer(Outcome.REJECTED, "HOST_KEY", _said(exc), advice=ADVICE_HOST_KEY)
        except asyncssh.PermissionDenied as exc:
            return Answer(Outcome.REJECTED, "LOGIN", _said(exc), advice=ADVICE_LOGIN)
        except asyncssh.SFTPPermissionDenied as exc:
            return Answer(Outcome.REJECTED, "PERMISSION", _said(exc), advice=ADVICE_PERMISSION)
        except TimeoutError:
            raise SourceUnavailable(f"{self._where()} timed out") from None
        except (OSError, asyncssh.Error) as exc:
            raise SourceUnavailable(f"{self._where()}: {type(exc).__name__}: {_said(exc)}") from None

    async def move_away(
        self, account: Account, bill_date: date, archive: ArchiveRef, directory: str
    ) -> str | None:
        """Moves the stored statement's file (and its marker) into ``directory``.

        Returns why it cannot be done without an operator; SourceUnavailable when trying again may help.
        """
        try:
            async with asyncio.timeout(self._login.request_timeout), self._sftp() as sftp:
                found = await _find(sftp, statement_path(account, bill_date))
                if isinstance(found, Answer):
                    # Moved by an earlier attempt, or by someone else: nothing left to move.
                    return None if found.outcome is Outcome.NOT_READY else f"{found.message}; {found.advice}"
                with open(os.devnull, "wb") as sink:
                    sha256, _ = await _read(sftp, found.path, sink, self._max_file_bytes)
                if sha256 != archive.sha256:
                    return f"{found.path} is no longer the file that was stored; left where it is"
                await sftp.makedirs(directory, exist_ok=True)
                await _rename(sftp, found.path, posixpath.join(directory, posixpath.basename(found.path)))
                marker = found.path + MARKER_SUFFIX
                if await sftp.exists(marker):
                    await _rename(sftp, marker, posixpath.join(directory, posixpath.basename(marker)))
                return None
        except (
            asyncssh.HostKeyNotVerifiable,
            asyncssh.PermissionDenied,
            asyncssh.SFTPPermissionDenied,
            _TooLong,
        ) as exc:
            return f"{type(exc).__name__}: {_said(exc)}"
        except TimeoutError:
            raise SourceUnavailable(f"{self._where()} timed out") from None
        except (OSError, asyncssh.Error) as exc:
            raise SourceUnavailable(f"{self._where()}: {type(exc).__name__}: {_said(exc)}") from None

    def _where(self) -> str:
        return f"sftp://{self._login.username}@{self._login.host}:{self._login.port}"

    @asynccontextmanager
    async def _sftp(self) -> AsyncIterator[asyncssh.SFTPClient]:
        login = self._login
        async with (
            asyncssh.connect(
                login.host,
                login.port,
                username=login.username,
                known_hosts=login.known_hosts,
                client_keys=[login.private_key] if login.private_key is not None else (),
                password=login.password,
                agent_path=None,
                config=(),
                connect_timeout=login.connect_timeout,
                login_timeout=login.request_timeout,
            ) as connection,
            connection.start_sftp_client() as sftp,
        ):
            yield sftp

    async def _download(self, sftp: asyncssh.SFTPClient, found: _Found, data_dir: Path) -> Answer:
        try:
            with staged_file(data_dir / "archives") as (out, staged):
                sha256, size = await _read(sftp, found.path, out, self._max_file_bytes)
        except _TooLong as exc:
            return Answer(Outcome.READY, "READY", f"{found.path} too long", damage=str(exc))
        try:
            if size != found.size:
                return Answer(Outcome.NOT_READY, "NOT_STABLE", f"{found.path} changed while it was read")
            os.replace(staged, archive_path(data_dir, sha256))
        finally:
            staged.unlink(missing_ok=True)
        return Answer(
            Outcome.READY,
            "READY",
            f"{found.path} ({size} bytes)",
            archive=ArchiveRef(sha256=sha256, size=size, file_name=posixpath.basename(found.path)),
        )


def statement_path(account: Account, bill_date: date) -> str:
    settings: Any = account.settings
    return str(settings.path.format(account_no=account.account_no, bill_date=bill_date))


async def _find(sftp: asyncssh.SFTPClient, path: str) -> _Found | Answer:
    """The day's file and its size; NOT_READY when it is not there, REJECTED when a glob matches several."""
    if _GLOB_CHARACTERS.isdisjoint(path):
        matches = [path]
    else:
        try:
            matched = await sftp.glob(path)
        except asyncssh.SFTPNoSuchFile:
            matched = []
        matches = sorted(str(name) for name in matched if not str(name).endswith(MARKER_SUFFIX))
        if not matches:
            return Answer(Outcome.NOT_READY, "NO_FILE", f"no file matches {path} yet")
        if len(matches) > 1:
            shown = ", ".join(matches[:3])
            return Answer(Outcome.REJECTED, "AMBIGUOUS", f"{path} matches {shown}", advice=ADVICE_AMBIGUOUS)
    try:
        attributes = await sftp.stat(matches[0])
    except asyncssh.SFTPNoSuchFile:
        return Answer(Outcome.NOT_READY, "NO_FILE", f"no file {path} yet")
    return _Found(matches[0], attributes.size or 0)


async def _not_ready(
    sftp: asyncssh.SFTPClient, found: _Found, ready: str, stable_seconds: float
) -> Answer | None:
    """Why the file is not to be taken yet, by the account's readiness rule; None when it is."""
    if ready == "marker":
        if await sftp.exists(found.path + MARKER_SUFFIX):
            return None
        return Answer(Outcome.NOT_READY, "NO_MARKER", f"{found.path} has no {MARKER_SUFFIX} marker yet")
    before = await sftp.stat(found.path)
    await asyncio.sleep(stable_seconds)
    after = await sftp.stat(found.path)
    if (before.size, before.mtime) != (after.size, after.mtime) or after.size != found.size:
        return Answer(
            Outcome.NOT_READY,
            "NOT_STABLE",
            f"{found.path} is still being written ({before.size} then {after.size} bytes)",
        )
    return None


async def _read(sftp: asyncssh.SFTPClient, path: str, out: IO[bytes], limit: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    async with sftp.open(path, "rb") as remote:
        while piece := await remote.read(_PIECE):
            assert isinstance(piece, bytes)  # opened "rb"
            size += len(piece)
            if size > limit:
                raise _TooLong(f"{path} is longer than {limit} bytes")
            digest.update(piece)
            out.write(piece)
    return digest.hexdigest(), size


async def _rename(sftp: asyncssh.SFTPClient, source: str, target: str) -> None:
    try:
        await sftp.posix_rename(source, target)
    except asyncssh.SFTPOpUnsupported:
        await sftp.rename(source, target)


def _said(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
