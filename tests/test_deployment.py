"""The production stack's files: docker-compose.yml as compose itself reads it, the Dockerfile, the lock.

No Docker engine runs here: Debian's ``docker-compose config`` validates the file and resolves
its variables, and the test checks what the resolved stack must hold. Its YAML output is read
with the PyYAML of docker-compose's own Python, which the package depends on.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bankrecon.config import Settings

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {
    "POSTGRES_PASSWORD": "pg-secret",
    "BANKRECON_ENCRYPTION_KEYS": "k1:" + base64.b64encode(bytes(32)).decode(),
    "CODEC_SERVER_TOKEN": "codec-token",
    "BANK_BASE_URL": "https://bank.example.com/api",
    "BANK_MERCHANT_ID": "M100001",
    "BANK_MERCHANT_SECRET": "merchant-secret",
    "WEB_SECRET_KEY": "web-session-key",
}
SERVICES = {"postgresql", "temporal", "temporal-ui", "codec-server", "migrate", "worker", "web", "simulator"}


# Settings of the encryption work (bankrecon/temporal/codec.py), which the worker and the codec server read.
def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    assert found, "docker-compose is missing: apt-get install docker-compose (.ci/run does)"
    return found


def compose_config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_docker_compose(), "--project-directory", str(ROOT), *args, "config"],
        cwd=ROOT,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def resolved(env: dict[str, str], *args: str) -> dict[str, Any]:
    """docker-compose.yml with every variable substituted and every default applied, as compose runs it."""
    config = compose_config(env, *args)
    assert config.returncode == 0, config.stderr
    loaded: dict[str, Any] = read_yaml(config.stdout)
    return loaded


def read_yaml(text: str) -> Any:
    interpreter = (
        Path(_docker_compose()).read_text(errors="replace").splitlines()[0].removeprefix("#!").split()
    )
    to_json = subprocess.run(
        [*interpreter, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(to_json.stdout)


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    services: dict[str, Any] = resolved(REQUIRED)["services"]
    return services


def test_the_stack_has_its_services_and_only_the_simulator_is_a_demo(stack: dict[str, Any]) -> None:
    assert set(stack) == SERVICES
    assert {name for name, service in stack.items() if service.get("profiles")} == {"simulator"}
    assert stack["simulator"]["profiles"] == ["demo"]


def test_it_comes_up_in_order_each_service_waiting_for_the_health_of_what_it_needs(
    stack: dict[str, Any],
) -> None:
    needs = {name: service.get("depends_on", {}) for name, service in stack.items()}
    assert {name: set(deps) for name, deps in needs.items() if deps} == {
        "temporal": {"postgresql"},
        "temporal-ui": {"temporal", "codec-server"},
        "migrate": {"postgresql"},
        "worker": {"postgresql", "migrate", "temporal"},
        "web": {"postgresql", "migrate"},
    }
    # The schema's migrations run once, to their end, before any worker (or the web page) starts.
    assert needs["worker"].pop("migrate") == {"condition": "service_completed_successfully"}
    assert needs["web"].pop("migrate") == {"condition": "service_completed_successfully"}
    for deps in needs.values():
        assert all(dep["condition"] == "service_healthy" for dep in deps.values()), deps
    # Every service something waits for, and the worker itself, reports its health.
    for name in {"postgresql", "temporal", "codec-server", "worker", "web", "simulator"}:
        assert stack[name]["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_published_ports(stack: dict[str, Any]) -> None:
    published = {
        name: sorted((int(p["published"]), int(p["target"])) for p in service.get("ports", []))
        for name, service in stack.items()
    }
    assert published == {
        "postgresql": [],
        "temporal": [(7233, 7233)],
        "temporal-ui": [(8080, 8080)],
        "codec-server": [(8081, 8081)],
        "migrate": [],
        # Scraped on the compose network; a published port would stop `--scale worker=N`.
        "worker": [],
        "web": [(8700, 8700)],
        "simulator": [(8600, 8600)],
    }
    assert stack["worker"]["expose"] == ["9464"]


def test_temporal_runs_on_postgresql_with_its_schema_set_up(stack: dict[str, Any]) -> None:
    temporal = stack["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    assert temporal["environment"] | {"POSTGRES_PWD": "..."} == {
        "DB": "postgres12",
        "DB_PORT": "5432",
        "POSTGRES_SEEDS": "postgresql",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PWD": "...",
        "DEFAULT_NAMESPACE": "default",
        "DYNAMIC_CONFIG_FILE_PATH": "config/dynamicconfig/bankrecon.yaml",
    }
    assert temporal["environment"]["POSTGRES_PWD"] == stack["postgresql"]["environment"]["POSTGRES_PASSWORD"]
    assert stack["postgresql"]["image"].startswith("postgres:")


def test_temporal_hands_a_statements_activities_to_the_worker_that_scheduled_them(
    stack: dict[str, Any],
) -> None:
    """Eager activity dispatch, off in the server by default: without it most persists of several
    workers land on another host than their decode, and decode the archive again there."""
    temporal = stack["temporal"]
    # auto-setup reads the file relative to /etc/temporal.
    read_by_server = "/etc/temporal/" + temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    [mounted] = [volume for volume in temporal["volumes"] if volume.split(":")[1] == read_by_server]
    source, _, mode = mounted.split(":")
    assert mode == "ro"
    assert read_yaml(Path(source).read_text()) == {
        "system.enableActivityEagerExecution": [{"value": True, "constraints": {}}]
    }


def test_the_worker_is_configured_for_the_stack(stack: dict[str, Any]) -> None:
    worker = stack["worker"]
    env = worker["environment"]
    assert worker["build"]["context"] == str(ROOT) and worker["image"] == "bankrecon:latest"
    assert "command" not in worker  # the image's: python worker.py
    assert env == {
        "TEMPORAL_ADDRESS": "temporal:7233",
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_TASK_QUEUE": "bank-statements",
        "DATABASE_URL": "postgresql+psycopg://postgres:pg-secret@postgresql:5432/bankrecon",
        "DATA_DIR": "/data",
        "ARCHIVE_STORE_URL": "",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "BANK_BASE_URL": REQUIRED["BANK_BASE_URL"],
        "BANK_MERCHANT_ID": REQUIRED["BANK_MERCHANT_ID"],
        "BANK_MERCHANT_SECRET": REQUIRED["BANK_MERCHANT_SECRET"],
        "BANK_MIN_INTERVAL_SECONDS": "1800",
        "BANK_ACCOUNTS": "",
        "NIGHTLY_TIME": "",
        "NIGHTLY_TIMEZONE": "",
        "NIGHTLY_CATCH_UP_DAYS": "",
        "STATEMENT_RETRY_INTERVAL_SECONDS": "",
        "STATEMENT_DEADLINE": "",
        "ALERT_WEBHOOK_URL": "",
        "BANKRECON_ENCRYPTION_KEYS": REQUIRED["BANKRECON_ENCRYPTION_KEYS"],
        "METRICS_ADDRESS": "0.0.0.0:9464",
        "LOG_FORMAT": "json",
    }
    # Every variable is one the worker reads: a misspelt one would be ignored silently.
    assert set(env) - {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= {
        name.upper() for name in Settings.model_fields
    }
    # Scalable: no fixed name, no published port, and each replica's own DATA_DIR (no shared volume).
    assert "container_name" not in worker and "ports" not in worker
    assert worker["volumes"] == ["/data"]
    assert worker["healthcheck"]["test"][-1].count("127.0.0.1:9464/metrics") == 1


def test_the_web_page_is_configured_for_the_stack(stack: dict[str, Any]) -> None:
    web = stack["web"]
    env = web["environment"]
    assert web["image"] == "bankrecon:latest"
    assert web["command"][-5:] == ["web", "--host", "0.0.0.0", "--port", "8700"]
    assert env["DATABASE_URL"] == stack["worker"]["environment"]["DATABASE_URL"]
    assert env["WEB_SECRET_KEY"] == REQUIRED["WEB_SECRET_KEY"]
    # Its users file on its own volume, where `web add-user` in its container writes it.
    assert env["WEB_USERS_FILE"].startswith(env["DATA_DIR"] + "/")
    assert web["volumes"] == [f"web-data:{env['DATA_DIR']}:rw"]
    # It holds no bank secret and no encryption key: it reads the database only.
    assert not {"BANK_MERCHANT_SECRET", "BANKRECON_ENCRYPTION_KEYS"} & set(env)
    assert set(env) <= {name.upper() for name in Settings.model_fields}
    assert web["healthcheck"]["test"][-1].count("127.0.0.1:8700/login") == 1


def test_the_web_ui_decrypts_through_the_codec_server(stack: dict[str, Any]) -> None:
    codec, ui = stack["codec-server"], stack["temporal-ui"]
    assert codec["command"] == ["python", "-m", "bankrecon.temporal.codec_server"]
    assert codec["environment"] == {
        "BANKRECON_ENCRYPTION_KEYS": REQUIRED["BANKRECON_ENCRYPTION_KEYS"],
        "CODEC_SERVER_HOST": "0.0.0.0",
        "CODEC_SERVER_PORT": "8081",
        "CODEC_SERVER_TOKEN": REQUIRED["CODEC_SERVER_TOKEN"],
        "CODEC_SERVER_CORS_ORIGINS": "http://localhost:8080",
        "LOG_FORMAT": "json",
    }
    assert ui["image"].startswith("temporalio/ui:")
    assert ui["environment"] == {
        "TEMPORAL_ADDRESS": "temporal:7233",
        "TEMPORAL_CORS_ORIGINS": "http://localhost:8080",
        "TEMPORAL_CODEC_ENDPOINT": f"http://localhost:8081/{REQUIRED['CODEC_SERVER_TOKEN']}",
    }


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_missing_secret_or_bank_setting_stops_compose_naming_it(missing: str) -> None:
    config = compose_config({k: v for k, v in REQUIRED.items() if k != missing})
    assert config.returncode != 0
    assert f"set {missing}" in config.stderr


def test_the_demo_values_run_the_worker_against_the_simulator() -> None:
    demo = resolved({}, "--env-file", str(ROOT / "compose.demo.env"), "--profile", "demo")["services"]
    worker, simulator = demo["worker"]["environment"], demo["simulator"]
    assert worker["BANK_BASE_URL"] == "http://simulator:8600"
    assert f"--merchant={worker['BANK_MERCHANT_ID']}:{worker['BANK_MERCHANT_SECRET']}" in simulator["command"]
    assert f"--min-interval={worker['BANK_MIN_INTERVAL_SECONDS']}" in simulator["command"]
    key_id, key = worker["BANKRECON_ENCRYPTION_KEYS"].split(":", 1)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", key_id) and len(base64.b64decode(key, validate=True)) == 32


def _dockerfile() -> list[list[str]]:
    """Instructions as [KEYWORD, rest], continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [line.split(None, 1) for line in lines]


def test_the_image_is_slim_runs_as_a_user_and_installs_only_pinned_dependencies() -> None:
    instructions = _dockerfile()
    assert instructions[0][0] == "FROM" and instructions[0][1].startswith("python:3.11-slim")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    # The last USER is the system user the image makes, not root.
    assert [rest for keyword, rest in instructions if keyword == "USER"][-1] == "bankrecon"
    assert re.search(r"useradd --system --uid 10001 [^&]* bankrecon\s+&&", runs)
    assert [rest for keyword, rest in instructions if keyword == "RUN" and "pip install" in rest] == [
        "pip install --no-deps -r requirements.lock && pip check"
    ]
    assert instructions[-1] == ["CMD", '["python", "worker.py"]']


def test_the_image_holds_every_package_of_the_project() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    copied = {rest.split()[0].rstrip("/") for keyword, rest in _dockerfile() if keyword == "COPY"}
    packages = {pattern.rstrip("*") for pattern in project["packages"]["find"]["include"]}
    wanted = packages | {f"{module}.py" for module in project["py-modules"]}
    assert wanted <= copied, wanted - copied
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert all(f"!{name}/" in ignored or f"!{name}" in ignored for name in wanted | {"requirements.lock"})


def test_the_lock_pins_every_dependency_of_pyproject() -> None:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    for dependency in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run scripts/lock"
        assert requirement.specifier.contains(pins[name]), (
            f"{name}=={pins[name]} breaks {dependency}: run scripts/lock"
        )
        for extra in requirement.extras:  # psycopg[binary] pulls psycopg-binary
            assert canonicalize_name(f"{requirement.name}-{extra}") in pins
