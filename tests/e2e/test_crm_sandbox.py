"""CrmClient against the sandbox over real HTTP: login, paging, faults, limits, writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from sync.crm.client import Credentials, CrmClient
from sync.crm.errors import ConflictError, LoginError, RequestLimitExceededError
from sync.crm.retry import RetryPolicy
from sync.crm.session import make_session
from sync.crm.soql import count, modstamp_window, select
from tests.support.sandbox import jwt_settings

FAST_RETRY = RetryPolicy(max_attempts=10, initial_wait=0.001, max_wait=0.01)


def client_for(url: str, retry: RetryPolicy = FAST_RETRY) -> CrmClient:
    return CrmClient.from_settings(jwt_settings(url), retry=retry)


def hook(url: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    response = requests.post(f"{url}/_sandbox/{path}", json=body or {}, timeout=30)
    response.raise_for_status()
    result: dict[str, object] = response.json()
    return result


@pytest.fixture
def big_sandbox(crm_sandbox: str) -> str:
    """The sandbox reseeded with enough contacts for several 200-record pages."""
    hook(crm_sandbox, "seed", {"accounts": 100, "random": 5})
    return crm_sandbox


def sandbox_calls(url: str) -> int:
    stats = requests.get(f"{url}/_sandbox/stats", timeout=30).json()
    return int(stats["api_calls"])


def test_given_seeded_sandbox_when_paging_contacts_then_every_record_once_and_calls_counted(
    big_sandbox: str,
) -> None:
    client = client_for(big_sandbox)
    total = client.query_count(count("Contact"))
    calls_before = sandbox_calls(big_sandbox)

    pages = list(
        client.query_pages(select("Contact", ["Id", "LastName"], order_by=["Id"]), batch_size=200)
    )

    ids = [r["Id"] for p in pages for r in p.records]
    assert len(ids) == total == len(set(ids))
    assert all(len(p.records) <= 200 for p in pages)
    assert len(pages) == max(1, -(-total // 200))
    assert sandbox_calls(big_sandbox) - calls_before == len(pages)
    assert client.api_calls == len(pages) + 1  # + the count
    assert client.api_usage is not None
    assert client.api_usage.used >= client.api_calls


def test_given_sessions_expired_mid_paging_when_paging_then_logs_in_again_and_completes(
    big_sandbox: str,
) -> None:
    client = client_for(big_sandbox)
    calls_before = sandbox_calls(big_sandbox)
    pages = client.query_pages(select("Contact", ["Id"], order_by=["Id"]), batch_size=200)
    first = next(pages)
    assert not first.done, "the seed must need more than one page"

    hook(big_sandbox, "expire-sessions")
    rest = list(pages)

    assert rest[-1].done
    assert client.logins == 2
    # The 401 is not counted by the org, nor by the client.
    assert client.api_calls == sandbox_calls(big_sandbox) - calls_before == 1 + len(rest)


def test_given_injected_transient_faults_when_paging_then_all_records_arrive(
    big_sandbox: str,
) -> None:
    client = client_for(big_sandbox)
    expected = client.query_count(count("Contact"))
    hook(
        big_sandbox,
        "faults",
        {"error_rate": 0.3, "errors": ["SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW"], "seed": 3},
    )

    calls = client.api_calls
    soql = select("Contact", ["Id"], order_by=["Id"])
    pages = list(client.query_pages(soql, batch_size=200))

    ids = [r["Id"] for p in pages for r in p.records]
    assert len(ids) == len(set(ids)) == expected
    assert client.api_calls - calls > len(pages), "some pages must have been retried"


def test_given_daily_limit_spent_when_querying_then_limit_error_without_retry(
    crm_sandbox: str,
) -> None:
    client = client_for(crm_sandbox)
    client.limits()
    hook(crm_sandbox, "faults", {"daily_limit": 1})
    calls = client.api_calls

    with pytest.raises(RequestLimitExceededError):
        client.limits()

    assert client.api_calls == calls  # refused, not counted


def test_given_wrong_password_when_logging_in_then_login_error(crm_sandbox: str) -> None:
    client = CrmClient(
        Credentials("admin@sandbox.local", "wrong-password", "sandbox-token"),
        session=make_session(crm_sandbox),
        retry=FAST_RETRY,
    )

    with pytest.raises(LoginError) as info:
        client.login()

    assert "wrong-password" not in str(info.value)


def test_given_record_changed_after_read_when_conditional_update_then_conflict(
    crm_sandbox: str,
) -> None:
    client = client_for(crm_sandbox)
    account_id = client.create("Account", {"Name": "Conflict Co"})
    read_at = datetime.now(UTC) - timedelta(hours=1)

    with pytest.raises(ConflictError):
        client.update("Account", account_id, {"Name": "Mine"}, if_unmodified_since=read_at)

    client.update(
        "Account",
        account_id,
        {"Name": "Mine"},
        if_unmodified_since=datetime.now(UTC) + timedelta(minutes=1),
    )
    assert client.get("Account", account_id, fields=["Name"])["Name"] == "Mine"


def test_given_collections_when_create_update_delete_then_results_in_order(
    crm_sandbox: str,
) -> None:
    client = client_for(crm_sandbox)
    created = client.collection_create("Account", [{"Name": f"Bulk {n}"} for n in range(250)])
    assert all(r.success for r in created)
    ids = [r.id for r in created if r.id]
    assert len(ids) == 250

    updated = client.collection_update(
        "Account", [{"Id": i, "Name": f"Renamed {n}"} for n, i in enumerate(ids)]
    )
    assert all(r.success for r in updated)
    assert client.get("Account", ids[249], fields=["Name"])["Name"] == "Renamed 249"

    deleted = client.collection_delete(ids)
    assert [r.id for r in deleted] == ids
    assert client.query_count(count("Account", where="Name LIKE 'Renamed %'")) == 0


def test_given_composite_of_five_queries_when_called_then_one_api_call(crm_sandbox: str) -> None:
    client = client_for(crm_sandbox)
    client.login()
    subrequests = [
        {
            "method": "GET",
            "url": client.data_url("query?q=" + requests.utils.quote(count(name))),
            "referenceId": f"q{n}",
        }
        for n, name in enumerate(["Account", "Contact", "Product2", "Account", "Contact"])
    ]

    items = client.composite(subrequests)

    assert [i["httpStatusCode"] for i in items] == [200] * 5
    assert client.api_calls == 1


def test_given_modstamp_window_when_querying_then_sandbox_accepts_the_datetime_literals(
    crm_sandbox: str,
) -> None:
    client = client_for(crm_sandbox)
    now = datetime.now(UTC)
    everything = client.query_count(count("Account"))

    in_window = client.query_count(
        count("Account", where=modstamp_window(now - timedelta(days=3650), now))
    )
    future = client.query_count(
        count("Account", where=modstamp_window(now + timedelta(days=1), now + timedelta(days=2)))
    )

    assert in_window == everything > 0
    assert future == 0
