"""``billing-sync portal-link CONTACT`` against a real billing database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sync.cli import main
from sync.portal.links import PortalSigner
from tests.support.portal_data import SECRET, World, build_world

PUBLIC_URL = "https://billing.example.com"


@pytest.fixture
def world(engine) -> World:
    return build_world(engine)


@pytest.fixture
def env(monkeypatch, database_url):
    monkeypatch.setenv("BILLING_SYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("BILLING_SYNC_PORTAL_SECRET", SECRET)
    monkeypatch.setenv("BILLING_SYNC_PUBLIC_URL", PUBLIC_URL + "/")
    return monkeypatch


def _contact_of(url: str) -> str:
    parts = urlsplit(url.strip())
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{PUBLIC_URL}/portal/enter"
    token = parse_qs(parts.query)["token"][0]
    return PortalSigner(SECRET).verify_link_token(token).contact_sfid


def test_given_a_contact_id_when_linking_then_a_signed_url_under_the_public_url_prints(
    env, world, capsys
):
    code = main(["portal-link", world.admin])

    out, err = capsys.readouterr()
    assert code == 0
    assert _contact_of(out) == world.admin
    assert err == ""


def test_given_an_email_when_linking_then_the_contacts_url_prints(env, world, capsys):
    code = main(["portal-link", "Ada.Admin@example.com", "--ttl", "60"])

    out, _ = capsys.readouterr()
    assert code == 0
    assert _contact_of(out) == world.admin


def test_given_a_non_admin_when_linking_then_the_url_prints_with_a_note(env, world, capsys):
    code = main(["portal-link", world.business_user])

    out, err = capsys.readouterr()
    assert code == 0
    assert _contact_of(out) == world.business_user
    assert "not a Billing Admin of any account" in err


@pytest.mark.parametrize("contact", ["nobody@example.com", "003999999999999AAA", "???"])
def test_given_an_unknown_contact_when_linking_then_exit_2_with_a_message(
    env, world, capsys, contact
):
    code = main(["portal-link", contact])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("billing-sync portal-link: ")


def test_given_no_secret_when_linking_then_exit_2_naming_the_variable(env, world, capsys):
    env.delenv("BILLING_SYNC_PORTAL_SECRET")

    code = main(["portal-link", world.admin])

    _, err = capsys.readouterr()
    assert code == 2
    assert "BILLING_SYNC_PORTAL_SECRET is not set" in err


def test_given_a_ttl_out_of_range_when_linking_then_exit_2(env, world, capsys):
    assert main(["portal-link", world.admin, "--ttl", "0"]) == 2
    assert "--ttl" in capsys.readouterr().err


def test_given_a_database_without_schema_when_linking_then_exit_2_saying_so(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("BILLING_SYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("BILLING_SYNC_PORTAL_SECRET", SECRET)

    code = main(["portal-link", "someone@example.com"])

    assert code == 2
    assert "billing-sync db upgrade" in capsys.readouterr().err


def test_given_the_installed_command_when_run_then_it_prints_the_link(
    sqlite_database_url, tmp_path
):
    from sync.db.engine import make_engine, upgrade

    engine = make_engine(sqlite_database_url)
    upgrade(engine)
    world = build_world(engine)
    engine.dispose()
    command = Path(sys.executable).with_name("billing-sync")
    environment = {
        **os.environ,
        "BILLING_SYNC_DATABASE_URL": sqlite_database_url,
        "BILLING_SYNC_PORTAL_SECRET": SECRET,
        "BILLING_SYNC_PUBLIC_URL": PUBLIC_URL,
    }

    done = subprocess.run(
        [str(command), "portal-link", world.admin],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert _contact_of(done.stdout) == world.admin
