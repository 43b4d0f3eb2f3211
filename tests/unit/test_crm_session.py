"""The CRM session: URL rewriting to the instance URL and the default timeout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from sync.crm.session import CrmSession, InstanceSession, make_session, rewrite_url


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        (
            "https://login.salesforce.com/services/Soap/u/59.0",
            "http://127.0.0.1:8700",
            "http://127.0.0.1:8700/services/Soap/u/59.0",
        ),
        (
            "https://na1.salesforce.com/services/data/v59.0/query/?q=SELECT+Id",
            "http://127.0.0.1:8700/crm/",
            "http://127.0.0.1:8700/crm/services/data/v59.0/query/?q=SELECT+Id",
        ),
        ("http://127.0.0.1:8700/x", "http://127.0.0.1:9999", "http://127.0.0.1:8700/x"),
    ],
)
def test_given_url_when_rewritten_then_only_https_hosts_change(
    url: str, base: str, expected: str
) -> None:
    assert rewrite_url(url, base) == expected


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as m:
        yield m


def test_given_instance_session_when_requesting_https_then_sent_to_instance(
    mock: responses.RequestsMock,
) -> None:
    mock.add(responses.GET, "http://127.0.0.1:8700/services/data/v59.0/limits", json={})
    session = make_session("http://127.0.0.1:8700")

    session.get("https://na1.salesforce.com/services/data/v59.0/limits")

    assert isinstance(session, InstanceSession)


def test_given_no_timeout_when_requesting_then_session_default_applies(
    mock: responses.RequestsMock,
) -> None:
    mock.add(responses.GET, "https://na1.salesforce.com/x", json={})
    session = make_session(timeout=(1.5, 7.0))
    assert isinstance(session, CrmSession)

    session.get("https://na1.salesforce.com/x")

    assert mock.calls[0].request.req_kwargs["timeout"] == (1.5, 7.0)
