"""docker-compose.yml stays valid by construction: it parses, and every command it runs
exists in this package (billing-sync's CLI, the Celery app and its subcommands)."""

from __future__ import annotations

import importlib
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_cli

from sync.cli import _HANDLERS, build_parser
from sync.settings import Settings
from workers.app import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
EXPECTED = {
    "postgres",
    "redis",
    "sandbox",
    "migrate",
    "worker",
    "beat",
    "listener",
    "web",
    "flower",
    "prometheus",
    "grafana",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def argv(command: Any) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def app_services(compose: dict[str, Any]) -> dict[str, list[str]]:
    """Services running billing-sync's image, with their command."""
    return {
        name: argv(svc["command"])
        for name, svc in services(compose).items()
        if svc.get("image") == "billing-sync:latest"
    }


def test_given_compose_file_when_parsed_then_has_every_service_with_restart_policy(compose):
    assert set(services(compose)) == EXPECTED
    for name, svc in services(compose).items():
        expected = "no" if name == "migrate" else "unless-stopped"
        assert str(svc.get("restart")) == expected, name
    assert set(compose["volumes"]) >= {"pgdata", "redisdata", "beatdata"}


def test_given_compose_file_when_parsed_then_long_running_services_have_healthchecks(compose):
    for name in ("postgres", "redis", "sandbox", "worker", "web"):
        test = services(compose)[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name


def grace_seconds(value: str) -> float:
    """A compose duration (``10s``, ``1m30s``, ``500ms``) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(value))
    assert parts and "".join(n + u for n, u in parts) == str(value), value
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def test_given_compose_file_when_parsed_then_every_service_stops_on_a_signal_it_handles(
    compose,
):
    svcs = services(compose)
    for name, svc in svcs.items():
        assert "stop_signal" in svc and "stop_grace_period" in svc, name
    for name in app_services(compose):
        # billing-sync and Celery stop cleanly on SIGTERM within 3 s; SIGKILL comes later
        assert svcs[name]["stop_signal"] == "SIGTERM", name
        assert grace_seconds(svcs[name]["stop_grace_period"]) >= 10, name
        assert svcs[name]["init"] is True, name  # PID 1 passes signals on, reaps children
    assert svcs["postgres"]["stop_signal"] == "SIGINT"  # fast shutdown
    # a worker's warm shutdown lets the tasks in hand finish
    assert grace_seconds(svcs["worker"]["stop_grace_period"]) >= 60


def test_given_dependencies_when_resolved_then_they_name_services_and_wait_for_migration(compose):
    svcs = services(compose)
    for name, svc in svcs.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in svcs, f"{name} depends on unknown {dep}"
    for name in ("worker", "beat", "web"):
        deps = svcs[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
        assert deps["redis"]["condition"] == "service_healthy"


def test_given_billing_sync_commands_when_parsed_by_the_cli_then_they_exist(compose):
    parser = build_parser()
    commands = [cmd for cmd in app_services(compose).values() if cmd[0] == "billing-sync"]
    assert len(commands) >= 3  # sandbox, migrate, web
    for cmd in commands:
        args = parser.parse_args(cmd[1:])
        module, _, function = _HANDLERS[args.command].partition(":")
        assert callable(getattr(importlib.import_module(module), function)), cmd


def _celery_parses(cmd: list[str]) -> None:
    """Parse ``celery ...`` with Celery's own click CLI, without running anything."""
    assert cmd[0] == "celery"
    with celery_cli.make_context("celery", cmd[1:], resilient_parsing=True) as ctx:
        with warnings.catch_warnings():
            # click 8.2 deprecates protected_args; older releases keep the name in it
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*ctx.protected_args, *ctx.args]
        name, sub, sub_args = celery_cli.resolve_command(ctx, rest)
        assert sub is not None, cmd
        # What the group's callback would set up: option callbacks read the app from it.
        ctx.obj = CLIContext(app=celery_app, no_color=True, workdir=None, quiet=True)
        try:
            sub.make_context(name, sub_args, parent=ctx)
        except click.UsageError as exc:  # an unknown option, a missing argument
            pytest.fail(f"{cmd}: {exc}")
    assert cmd[1:3] == ["-A", "workers.app"]


def test_given_celery_commands_when_parsed_by_celery_then_subcommands_and_options_exist(compose):
    celery_commands = {n: c for n, c in app_services(compose).items() if c[0] == "celery"}
    assert set(celery_commands) == {"worker", "beat", "flower"}
    for cmd in celery_commands.values():
        _celery_parses(cmd)
    worker = celery_commands["worker"]
    assert worker[worker.index("-Q") + 1] == "pull,maintenance,push"
    health = services(compose)["worker"]["healthcheck"]["test"][1]
    _celery_parses(shlex.split(health.replace("$$HOSTNAME", "host")))


def test_given_celery_app_when_imported_then_it_is_the_one_compose_runs():
    module = importlib.import_module("workers.app")
    module.app.loader.import_default_modules()  # what the worker does at start

    assert module.app.main == "billing_sync"
    assert {"billing_sync.poll", "billing_sync.pull_mapping"} <= set(module.app.tasks)


def test_given_env_example_when_read_then_every_variable_is_one_settings_knows():
    source = (ROOT / "sync" / "settings.py").read_text()
    env: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"#?\s*([A-Z_]+)=(.*)$", line.strip())
        if not match:
            continue
        name, value = match.groups()
        if name in ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):  # compose only
            continue
        assert f'"{name}"' in source, f"{name} is not read by Settings.from_env"
        if not line.startswith("#"):
            env[name] = value.split("#")[0].strip()
    env["BILLING_SYNC_PORTAL_SECRET"] = "x" * 32
    settings = Settings.from_env(env)
    assert settings.pull_interval == 10.0
    assert settings.api_budget == 0.2


def test_given_compose_environment_when_read_then_service_addresses_point_inside(compose):
    env = compose["x-billing-sync"]["environment"]

    assert env["BILLING_SYNC_BROKER_URL"].startswith("redis://redis:")
    assert "@postgres:5432/" in env["BILLING_SYNC_DATABASE_URL"]
    assert "sandbox:8700" in env["SALESFORCE_INSTANCE_URL"]
    assert (ROOT / "Dockerfile").exists()
