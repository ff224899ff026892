"""What the benchmarks share: the machine's description, a PostgreSQL schema of their own, the
client's settings, merchants that own one account each, and the seeded statement of the bank."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from bankrecon.config import Settings
from bankrecon.sources.refbank.simulator.generator import generate_statement

ROOT = Path(__file__).resolve().parent.parent
TEST_POSTGRES = os.environ.get("BANKRECON_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SCHEMA = "bench"
# The reference bank's statement the benchmarks load, the same for a given size and day.
ACCOUNT = "6222020000000001"
SEED = 20261124


class Postgres:
    """A benchmark's own schema on the test server; psql reaches it through PGOPTIONS."""

    def __init__(self, url: str, schema: str = SCHEMA):
        parsed = make_url(url)
        self.schema = schema
        self.url = parsed.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
        self._psql = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", parsed.host or "127.0.0.1"]
        self._psql += ["-p", str(parsed.port or 5432), "-U", parsed.username or "postgres"]
        self._psql += ["-d", parsed.database or "postgres"]
        self._env = os.environ | {"PGOPTIONS": f"-csearch_path={schema}"}
        if parsed.password:
            self._env["PGPASSWORD"] = parsed.password

    def psql(self, sql: str) -> str:
        done = subprocess.run(
            [*self._psql, "-c", sql], env=self._env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def command(self) -> str:
        return " ".join(self._psql)

    @property
    def env(self) -> dict[str, str]:
        return self._env

    def reset(self) -> None:
        subprocess.run(
            [*self._psql, "-c", f"DROP SCHEMA IF EXISTS {self.schema} CASCADE; CREATE SCHEMA {self.schema};"],
            env=self._env | {"PGOPTIONS": ""},
            capture_output=True,
            check=True,
        )


def temporal_settings(address: str) -> Settings:
    """The benchmark's own client settings: never the developer's .env."""
    return Settings(_env_file=None, temporal_address=address)


def hardware() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return (
        f"{os.cpu_count()} x {cpu}, {memory_kb / 1024**2:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def write_report(out: Path, command: str, figures: dict[str, Any], table: str) -> None:
    """The figures as JSON in ``out``, with when, where and how they were taken; the table printed."""
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": hardware(),
        "command": command,
        **figures,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['date']}  {report['hardware']}")
    print(table)
    print(f"written to {out}")


@dataclass(frozen=True)
class OneMerchantEach:
    """Accounts that each belong to a merchant of their own, with its own secret.

    The bank's window is a merchant's: with one account each, every statement waits on its own
    window, and nothing but the system itself paces the night.
    """

    owners: dict[str, str]  # account number -> merchant id
    secrets: dict[str, str]  # merchant id -> secret

    @classmethod
    def of(cls, count: int) -> OneMerchantEach:
        accounts = [f"62220300{n:08d}" for n in range(count)]
        secrets = {f"M{n:06d}": f"secret-{n:06d}" for n in range(count)}
        return cls(owners=dict(zip(accounts, secrets, strict=True)), secrets=secrets)

    @property
    def accounts(self) -> list[str]:
        return list(self.owners)

    def bank_accounts(self) -> dict[str, set[str]]:
        """The simulator's ``accounts``: each merchant's accounts."""
        return {merchant: {account} for account, merchant in self.owners.items()}

    def write_accounts_file(self, path: Path, min_interval_seconds: float) -> Path:
        """The workers' BANK_ACCOUNTS_FILE, every merchant with the window given."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join(
                f'[[merchant]]\nid = "{merchant}"\nsecret = "{secret}"\n'
                f"min_interval_seconds = {min_interval_seconds}\n\n"
                for merchant, secret in self.secrets.items()
            )
            + "".join(
                f'[[account]]\naccount_no = "{account}"\nmerchant = "{merchant}"\n\n'
                for account, merchant in self.owners.items()
            )
        )
        return path


def statement_files(workdir: Path, lines: int, day: date) -> tuple[Path, Path]:
    """The seeded statement's zip and its base64 (MIME-wrapped, as banks send it), made once."""
    target = workdir / "statements"
    target.mkdir(parents=True, exist_ok=True)
    archive = target / f"{ACCOUNT}_{day:%Y%m%d}_{lines}.zip"
    encoded = archive.with_suffix(".b64")
    if not encoded.exists():
        print(f"generating a {lines:,}-line statement (seed {SEED})", file=sys.stderr)
        statement = generate_statement(ACCOUNT, day, seed=SEED, lines=lines)
        with archive.open("wb") as out:
            statement.write_zip(out)
        with archive.open("rb") as source, encoded.open("wb") as out:
            subprocess.run(["base64", "-w", "76"], stdin=source, stdout=out, check=True)
    return archive, encoded
