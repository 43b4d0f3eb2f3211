"""billing-sync's own logins against the sandbox: each flow, each documented refusal in an
operator's words, one token per deployment, the API version check and `connect check`."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path

import pytest
import redis
import requests

from sync.commands.keys import generate_key_pair
from sync.crm import auth
from sync.crm.client import CrmClient, login_from_settings
from sync.crm.errors import CrmConfigurationError, LoginError
from sync.crm.retry import RetryPolicy
from sync.crm.session import make_session
from sync.crm.tokens import RedisTokens
from tests.support.sandbox import MY_DOMAIN, jwt_keys, jwt_settings, sandbox_stats

ONCE = RetryPolicy(max_attempts=1)


def policy(url: str, **settings: object) -> None:
    requests.post(f"{url}/_sandbox/auth", json=settings, timeout=10).raise_for_status()


def refused(url: str, **settings: object) -> LoginError:
    client = CrmClient.from_settings(jwt_settings(url, **settings), retry=ONCE)
    with pytest.raises(LoginError) as info:
        client.login()
    client.close()
    return info.value


def test_given_jwt_settings_when_logging_in_then_token_of_the_my_domain_instance(crm_sandbox):
    client = CrmClient.from_settings(jwt_settings(crm_sandbox), retry=ONCE)

    client.login()
    identity = client.identity()

    assert client.authentication is not None
    assert client.authentication.flow == "jwt"
    assert client.authentication.instance == MY_DOMAIN
    assert identity["username"] == "admin@sandbox.local"
    assert client.query_count("SELECT COUNT() FROM Account") == 25


def test_given_client_credentials_when_logging_in_then_queries_work(crm_sandbox):
    settings = jwt_settings(crm_sandbox).with_(
        salesforce_auth=None,
        salesforce_private_key_file=None,
        salesforce_consumer_secret="sandbox-secret",
    )
    client = CrmClient.from_settings(settings, retry=ONCE)

    assert settings.auth_flow == "client_credentials"
    assert client.query_count("SELECT COUNT() FROM Account") == 25


@pytest.mark.parametrize(
    ("setup", "settings", "words"),
    [
        ({"approval": "self_authorize"}, {}, "'Admin approved users are pre-authorized'"),
        ({}, {"salesforce_domain": "test"}, "set SALESFORCE_DOMAIN=login"),
        ({}, {"salesforce_consumer_key": "not-our-app"}, "SALESFORCE_CONSUMER_KEY is not"),
        ({"approval": "not_admin_approved"}, {}, "is not admin approved to use the app"),
        ({"user_active": False}, {}, "locked out or inactive"),
    ],
    ids=["not-pre-authorized", "audience", "consumer-key", "app-access", "locked-user"],
)
def test_given_documented_refusal_when_logging_in_then_operator_sentence(
    crm_sandbox, setup, settings, words, caplog
):
    if setup:
        policy(crm_sandbox, **setup)
    caplog.set_level(logging.DEBUG)

    error = refused(crm_sandbox, **settings)

    assert words in str(error)
    key = jwt_keys().key_file.read_text()
    body = key.splitlines()[1]
    assert body not in str(error)
    assert body not in caplog.text


def test_given_key_not_matching_the_certificate_when_logging_in_then_says_so(crm_sandbox, tmp_path):
    other = generate_key_pair(tmp_path)

    error = refused(crm_sandbox, salesforce_private_key_file=str(other.key_file))

    assert f"SALESFORCE_PRIVATE_KEY_FILE={other.key_file} is not the key of the certificate" in (
        str(error)
    )


def test_given_clock_ten_minutes_behind_when_logging_in_then_blames_the_clock(crm_sandbox):
    method = login_from_settings(jwt_settings(crm_sandbox))

    with pytest.raises(LoginError) as info:
        auth.login(method, make_session(crm_sandbox), "68.0", now=lambda: time.time() - 600)

    assert re.search(r"clock is (59[5-9]|60[0-5]) s behind the org's", str(info.value))


def test_given_wrong_secret_when_client_credentials_then_secret_never_shown(crm_sandbox):
    settings = jwt_settings(crm_sandbox).with_(
        salesforce_auth="client_credentials", salesforce_consumer_secret="Wr0ng-S3cret-xyz"
    )
    client = CrmClient.from_settings(settings, retry=ONCE)

    with pytest.raises(LoginError) as info:
        client.login()

    assert "SALESFORCE_CONSUMER_SECRET" in str(info.value)
    assert "Wr0ng-S3cret-xyz" not in str(info.value)


def test_given_group_readable_key_when_configuring_then_warns(crm_sandbox, tmp_path, caplog):
    pair = generate_key_pair(tmp_path)
    pair.key_file.chmod(0o640)

    with caplog.at_level(logging.WARNING, logger="sync.crm"):
        login_from_settings(
            jwt_settings(crm_sandbox, salesforce_private_key_file=str(pair.key_file))
        )

    assert "can be read by group or others (mode 640)" in caplog.text


def test_given_password_flow_when_configuring_then_one_warning_names_dates_and_flow(caplog):
    from sync.settings import Settings

    with caplog.at_level(logging.WARNING, logger="sync.crm"):
        login_from_settings(Settings(salesforce_username="u@example.com", salesforce_password="p"))

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2027-02-20" in warnings[0]
    assert "Summer '27" in warnings[0]
    assert "SALESFORCE_AUTH=jwt" in warnings[0]


def test_given_version_not_offered_when_checking_then_stops_listing_the_offered(crm_sandbox):
    client = CrmClient.from_settings(
        jwt_settings(crm_sandbox, salesforce_api_version="70.0"), retry=ONCE
    )

    with pytest.raises(CrmConfigurationError) as info:
        client.check_api_version()

    assert "SALESFORCE_API_VERSION=70.0 is not offered" in str(info.value)
    assert "31.0 to 68.0" in str(info.value)


def test_given_older_version_when_checking_then_the_newer_is_said_once(crm_sandbox, caplog):
    client = CrmClient.from_settings(
        jwt_settings(crm_sandbox, salesforce_api_version="66.0"), retry=ONCE
    )

    with caplog.at_level(logging.INFO, logger="sync.crm"):
        first = client.check_api_version()
        second = client.check_api_version()

    assert first == second == "68.0"
    assert caplog.text.count("the org offers API version 68.0") == 1
    assert client.api_calls == 0  # the version list is no API call


def test_given_two_processes_sharing_redis_when_token_expires_then_one_login(
    crm_sandbox, redis_url, prefix
):
    settings = jwt_settings(crm_sandbox, broker_url=redis_url, redis_prefix=prefix)
    workers = [CrmClient.from_settings(settings, retry=ONCE) for _ in range(2)]
    for worker in workers:
        worker.query_count("SELECT COUNT() FROM Account")
    logins_before = sandbox_stats(crm_sandbox)["by_endpoint"]["login"]
    requests.post(f"{crm_sandbox}/_sandbox/expire-sessions", timeout=10).raise_for_status()
    barrier = threading.Barrier(8)
    counts: list[int] = []

    def work(client: CrmClient) -> None:
        barrier.wait()
        counts.append(client.query_count("SELECT COUNT() FROM Account"))

    threads = [threading.Thread(target=work, args=(workers[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert counts == [25] * 8
    assert logins_before == 1
    assert sandbox_stats(crm_sandbox)["by_endpoint"]["login"] == 2
    assert sum(w.logins for w in workers) == 2  # the first login and the one renewal
    assert isinstance(workers[0].tokens, RedisTokens)
    stored = redis.Redis.from_url(redis_url).get(workers[0].tokens.key)
    assert stored is not None and "session_id" in json.loads(stored)


def test_given_jwt_sandbox_when_connect_check_then_every_line_holds(run):
    done = run("connect", "check")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if not line.startswith("    ")]
    assert len(lines) == 9
    assert all(line.startswith("\u2714") for line in lines), done.stdout
    assert "JWT bearer as admin@sandbox.local, org 00D" in done.stdout


def test_given_user_without_view_all_data_when_connect_check_json_then_fails_with_fix(
    run, crm_sandbox
):
    policy(crm_sandbox, view_all_data=False)

    done = run("connect", "check", "--json")
    report = json.loads(done.stdout)

    assert done.returncode == 1
    assert report["ok"] is False
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["View All Data"]
    assert "View All Data" in failed[0]["fix"]


def test_given_refused_login_when_connect_check_then_rest_not_checked(run):
    done = run("connect", "check", SALESFORCE_DOMAIN="test")

    assert done.returncode == 1
    assert done.stdout.splitlines()[0].startswith("\u2716 login: JWT bearer")
    assert "fix: the JWT audience test is not this org's" in done.stdout
    assert done.stdout.count("not checked") == 5


def test_given_keys_generate_when_run_then_key_is_private_and_matches_certificate(
    run, tmp_path: Path
):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    done = run("keys", "generate", "--dir", str(tmp_path / "keys"))
    key_file, cert_file = (
        tmp_path / "keys" / "billing-sync.key",
        tmp_path / "keys" / "billing-sync.crt",
    )
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    again = run("keys", "generate", "--dir", str(tmp_path / "keys"))

    assert done.returncode == 0, done.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert again.returncode == 1
    assert "exists" in again.stderr
