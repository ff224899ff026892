"""Bank statement files (MT940, camt.053) collected over SFTP."""

from bankrecon.sources.sftp.kind import SFTP

__all__ = ["SFTP"]
