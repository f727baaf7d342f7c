"""Static checks of compose.yaml and the Dockerfile, quick and without Docker: they catch the
mistakes that would only show at `docker compose up` — a misspelt setting, a command or option
the CLI does not have, a service without a health check or its volume. scripts/test-docker runs
the real thing (tests/docker/)."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from product_importer.settings import Settings
from tests.processes import cli_env

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "webhook-worker")
# Read by uvicorn itself (which proxies to trust for X-Forwarded-*), not by Settings.
UVICORN_VARIABLES = {"FORWARDED_ALLOW_IPS"}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def _setting_variables() -> set[str]:
    """Every environment variable name that Settings reads."""
    prefix = Settings.model_config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        names.add(f"{prefix}{field_name}".upper())
        choices = getattr(field.validation_alias, "choices", [])
        names.update(str(choice).upper() for choice in choices)
    return names


def _dockerfile_stages() -> list[list[str]]:
    """Instructions of each build stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_compose_has_the_services_with_health_checks_and_volumes() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "redis", *APP_SERVICES} <= set(services)
    assert "beat" not in services, "periodic work runs in the workers; there is no beat"
    for name, service in services.items():
        if name == "nginx":
            assert service.get("profiles") == ["proxy"], "nginx is optional"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name
    for name, path in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        [volume] = services[name]["volumes"]
        volume_name, mount = volume.split(":")
        assert mount == path and volume_name in compose["volumes"], volume
        image = services[name]["image"]
        assert re.search(r":\d+\.\d+", image), f"{image} is not pinned to a release"
    assert services["redis"]["command"][-2:] == ["--appendonly", "yes"]
    for name in APP_SERVICES:
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy"
    assert services["web"]["ports"], "the web service publishes its port"


def test_compose_sets_only_real_settings_and_commits_no_secret() -> None:
    services = _compose()["services"]
    known = _setting_variables() | UVICORN_VARIABLES
    for name in APP_SERVICES:
        environment: dict[str, str] = services[name]["environment"]
        unknown = set(environment) - known
        assert not unknown, f"{name} sets variables the app does not read: {unknown}"
        for variable in ("DATABASE_URL", "BROKER_URL", "PRODUCT_IMPORTER_SECRET_KEY"):
            assert variable in environment, f"{name} lacks {variable}"
        assert environment["BROKER_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in environment["DATABASE_URL"]
        # Secrets come from the operator's .env; compose refuses to start without them.
        assert environment["PRODUCT_IMPORTER_SECRET_KEY"].startswith(
            "${PRODUCT_IMPORTER_SECRET_KEY:?"
        )
        assert "${POSTGRES_PASSWORD:?" in environment["DATABASE_URL"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )


def test_compose_workers_cover_every_queue() -> None:
    services = _compose()["services"]
    covered: set[str] = set()
    for name in APP_SERVICES:
        command: list[str] = services[name]["command"]
        if command[0] == "worker":
            covered.update(command[command.index("--queues") + 1].split(","))
    assert covered == {"imports", "webhooks", "default"}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_commands_are_real_cli_commands(tmp_path: Path, service: str) -> None:
    """`--help` after the service's own arguments: an unknown command or option fails."""
    command: list[str] = _compose()["services"][service]["command"]
    result = subprocess.run(
        [sys.executable, "-m", "product_importer", *command, "--help"],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: " in result.stdout and f" {command[0]} " in result.stdout


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "build and final stages"
    builder, final = stages[0], stages[-1]
    assert " AS builder" in builder[0]
    assert any("pip wheel" in line for line in builder)
    assert not any("apt-get" in line or "gcc" in line for line in final), "no build tools"
    install = next(line for line in final if "pip install" in line)
    assert "--no-cache-dir" in install and "--no-index" in install
    [user] = [line for line in final if line.startswith("USER ")]
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "a fixed, non-root uid"
    [health] = [line for line in final if line.startswith("HEALTHCHECK ")]
    assert "urllib" in health and "/healthz" in health and "curl" not in health
    assert 'ENTRYPOINT ["product-importer"]' in final
    [cmd] = [line for line in final if line.startswith("CMD ")]
    assert '"serve"' in cmd and '"0.0.0.0"' in cmd and "EXPOSE 8000" in final
    assert any(line.startswith("VOLUME ") for line in final)
    assert "ENV" in " ".join(final) and "PRODUCT_IMPORTER_HOME=/data" in " ".join(final)


def test_dockerfile_copies_the_build_inputs_and_dockerignore_keeps_the_rest_out() -> None:
    copied = [line for line in _dockerfile_stages()[0] if line.startswith("COPY ")]
    assert any("pyproject.toml" in line and "README.md" in line for line in copied)
    assert any(line.split()[1] == "src" for line in copied)
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "var", ".env", "tests"} <= ignored
    assert not {"src", "pyproject.toml", "README.md"} & ignored


def test_ci_override_only_swaps_the_registry_images() -> None:
    """deploy/compose.ci.yaml (scripts/test-docker) must test compose.yaml as users run it."""
    services = _compose()["services"]
    override = yaml.safe_load((ROOT / "deploy" / "compose.ci.yaml").read_text())
    assert set(override) == {"services"}
    swapped = override["services"]
    registry = {name for name, service in services.items() if "build" not in service}
    assert set(swapped) == registry == {"postgres", "redis", "nginx"}
    for name, service in swapped.items():
        assert set(service) == {"image"}, name
        assert service["image"].startswith("local/"), service
        folder = ROOT / "deploy" / "ci" / "images" / name
        assert (folder / "Dockerfile").is_file(), folder


def test_web_trusts_forwarded_headers_from_nginx_only() -> None:
    """uvicorn with "*" takes the leftmost X-Forwarded-For entry, which the client chooses: the
    web processes trust nginx's fixed address on a network of their own instead."""
    compose = _compose()
    services = compose["services"]
    trusted = services["web"]["environment"]["FORWARDED_ALLOW_IPS"]
    assert "*" not in trusted
    nginx_address = services["nginx"]["networks"]["proxy"]["ipv4_address"]
    assert trusted == nginx_address
    assert set(services["nginx"]["networks"]) == {"proxy"}, "nginx reaches web on proxy only"
    assert set(services["web"]["networks"]) == {"default", "proxy"}
    for name in ("worker", "webhook-worker", "postgres", "redis"):
        assert "networks" not in services[name], f"{name} stays off the proxy network"
    [pool] = compose["networks"]["proxy"]["ipam"]["config"]
    subnet, dynamic = ipaddress.ip_network(pool["subnet"]), ipaddress.ip_network(pool["ip_range"])
    address = ipaddress.ip_address(nginx_address)
    # In the network, not its gateway, and outside the range other containers are given.
    assert address in subnet and address != next(subnet.hosts()) and address not in dynamic
    assert dynamic.subnet_of(subnet)  # type: ignore[arg-type]


def test_the_compose_trust_gives_the_app_the_real_client_address() -> None:
    """uvicorn's own proxy-headers middleware with the compose value: nginx sends only the
    address it saw (deploy/nginx.conf); anyone else's header is ignored."""
    trusted = _compose()["services"]["web"]["environment"]["FORWARDED_ALLOW_IPS"]
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx

    def client_seen(peer: str, forwarded: str) -> str:
        seen: list[str] = []

        async def app(scope: Any, _receive: Any, _send: Any) -> None:
            seen.append(scope["client"][0])

        scope = {
            "type": "http",
            "client": (peer, 50000),
            "headers": [(b"x-forwarded-for", forwarded.encode())],
        }
        middleware = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]
        # A loop of its own in a thread of its own: a browser test earlier in this process may
        # have left Playwright's loop running in this thread, where asyncio.run refuses.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, middleware(scope, None, None)).result(timeout=30)  # type: ignore[arg-type]
        return seen[0]

    assert client_seen(trusted, "198.51.100.7") == "198.51.100.7"
    # Another container, or the host through the published port: its header is not believed.
    for peer in ("10.213.83.1", "10.213.83.130", "172.18.0.1", "127.0.0.1"):
        assert client_seen(peer, "203.0.113.66") == peer
