"""The sandbox's CometD endpoint and change events, driven by the project's streaming client.

Each rule of Salesforce's Streaming API that the listener relies on has a test here:
handshake, auth schemes, cookie, long polling, idle expiry, replay -1/-2/N and the
invalid-replay text, retention, refused channels, allocations, fault hooks, and one
event shape per change type from every API surface that writes.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sync.crm.client import CrmClient
from sync.crm.streaming import (
    REPLAY_ALL,
    REPLAY_NEW,
    DeliveryLimitExceededError,
    Outcome,
    StreamingClient,
    StreamingUnavailableError,
)
from sync.sandbox.server import SandboxConfig, SandboxServer
from tests.support.pull import crm_client
from tests.support.sandbox import jwt_keys

ACCOUNTS = "/data/AccountChangeEvent"
CONTACTS = "/data/ContactChangeEvent"
ORDERS = "/data/Apttus_Config2__Order__ChangeEvent"
ALL = "/data/ChangeEvents"
INVALID = (
    "400::The replayId {0} you provided was invalid.  Please provide a valid ID, -2 to "
    "replay all events, or -1 to replay only new events."
)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    srv = SandboxServer(
        SandboxConfig(seed=3, seed_random=5, cometd_timeout=0.3, jwt_cert=str(jwt_keys().cert_file))
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def url(server: SandboxServer) -> Iterator[str]:
    requests.post(f"{server.url}/_sandbox/reset", timeout=30).raise_for_status()
    requests.delete(f"{server.url}/_sandbox/cometd", timeout=30).raise_for_status()
    hook(server.url, connect_timeout=0.3)
    yield server.url
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=30).json()
    assert stats["unhandled_errors"] == 0, stats["recent_unhandled"]


@pytest.fixture
def crm(url: str) -> Iterator[CrmClient]:
    client = crm_client(url, salesforce_api_version="59.0")
    yield client
    client.close()


@pytest.fixture
def stream(crm: CrmClient) -> Iterator[StreamingClient]:
    client = StreamingClient(crm)
    yield client
    client.disconnect()


def hook(url: str, **spec: Any) -> dict[str, Any]:
    answer = requests.post(f"{url}/_sandbox/cometd", json=spec, timeout=30)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def create(crm: CrmClient, obj: str, values: dict[str, Any], **headers: str) -> str:
    body = crm._request("POST", crm.sobject_url(obj), body=values, headers=headers or None)
    return str(body["id"])


def update(crm: CrmClient, obj: str, record_id: str, values: dict[str, Any]) -> None:
    crm._request("PATCH", crm.sobject_url(obj, record_id), body=values, expect_body=False)


def delete(crm: CrmClient, obj: str, record_id: str) -> None:
    crm._request("DELETE", crm.sobject_url(obj, record_id), expect_body=False)


def drain(stream: StreamingClient, polls: int = 3) -> list[dict[str, Any]]:
    """Every event the next few long polls deliver."""
    events: list[dict[str, Any]] = []
    for _ in range(polls):
        events.extend(stream.poll().events)
    return events


def payloads(events: list[dict[str, Any]], channel: str | None = None) -> list[dict[str, Any]]:
    return [e["data"]["payload"] for e in events if channel is None or e["channel"] == channel]


def headers_of(events: list[dict[str, Any]], channel: str | None = None) -> list[dict[str, Any]]:
    return [p["ChangeEventHeader"] for p in payloads(events, channel)]


def raw(
    url: str,
    messages: Any,
    *,
    token: str | None,
    scheme: str = "Bearer",
    version: str = "59.0",
    session: requests.Session | None = None,
) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    return (session or requests.Session()).post(
        f"{url}/cometd/{version}" if version else f"{url}/cometd", json=messages, headers=headers
    )


def handshake_message() -> dict[str, Any]:
    return {
        "channel": "/meta/handshake",
        "version": "1.0",
        "supportedConnectionTypes": ["long-polling"],
        "id": "1",
        "ext": {"replay": True},
    }


def token_of(crm: CrmClient) -> str:
    return crm._current_auth().session_id


# -- transport, handshake, auth --------------------------------------------------------------


def test_given_handshake_when_answered_then_client_id_long_polling_replay_ext_and_cookie(url, crm):
    answer = raw(url, [handshake_message()], token=token_of(crm))

    (reply,) = answer.json()
    assert reply["successful"] is True and reply["channel"] == "/meta/handshake"
    assert reply["clientId"] and reply["supportedConnectionTypes"] == ["long-polling"]
    assert reply["ext"] == {"replay": True, "payload.format": True}
    assert "BAYEUX_BROWSER" in answer.cookies


@pytest.mark.parametrize("scheme", ["Bearer", "OAuth"])
def test_given_either_auth_scheme_when_handshaking_then_accepted(url, crm, scheme):
    (reply,) = raw(url, [handshake_message()], token=token_of(crm), scheme=scheme).json()
    assert reply["successful"] is True


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "401::Request requires authentication"), ("bogus", "401::Authentication invalid")],
)
def test_given_no_or_bad_token_when_handshaking_then_denied_with_the_401_reason(url, token, reason):
    (reply,) = raw(url, [handshake_message()], token=token).json()
    assert reply["successful"] is False
    assert reply["error"] == "403::Handshake denied"
    assert reply["ext"]["sfdc"]["failureReason"] == reason


@pytest.mark.parametrize(
    ("version", "body", "status", "text"),
    [
        ("59.0", {"channel": "/meta/handshake"}, 400, "JSON array"),
        ("36.0", [handshake_message()], 400, "Only API versions '37.0' and later"),
        ("", [handshake_message()], 400, "API version in the URI is mandatory"),
    ],
)
def test_given_a_malformed_request_when_posted_then_400_with_salesforce_text(
    url, crm, version, body, status, text
):
    answer = raw(url, body, token=token_of(crm), version=version)
    assert answer.status_code == status
    assert text in answer.json()[0]["error"]


def test_given_a_body_over_32k_when_posted_then_413(url, crm):
    big = [dict(handshake_message(), padding="x" * 40_000)]
    assert raw(url, big, token=token_of(crm)).status_code == 413


def test_given_no_cookie_after_handshake_when_connecting_then_400_no_cookie(url, crm):
    token = token_of(crm)
    (hs,) = raw(url, [handshake_message()], token=token).json()
    connect = {
        "channel": "/meta/connect",
        "clientId": hs["clientId"],
        "connectionType": "long-polling",
    }

    (reply,) = raw(url, [connect], token=token).json()  # a fresh session: no cookie

    assert reply["successful"] is False
    assert "no BAYEUX_BROWSER cookie present" in reply["error"]


def test_given_another_connection_type_when_connecting_then_invalid_connection_type(url, crm):
    session = requests.Session()
    token = token_of(crm)
    (hs,) = raw(url, [handshake_message()], token=token, session=session).json()
    connect = {
        "channel": "/meta/connect",
        "clientId": hs["clientId"],
        "connectionType": "websocket",
    }

    (reply,) = raw(url, [connect], token=token, session=session).json()

    assert reply["error"] == "400::Invalid connection type websocket"


def test_given_connect_and_subscribe_in_one_post_when_answered_then_one_reply_each(url, crm):
    session = requests.Session()
    token = token_of(crm)
    (hs,) = raw(url, [handshake_message()], token=token, session=session).json()
    cid = hs["clientId"]
    batch = [
        {"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling", "id": "2"},
        {"channel": "/meta/subscribe", "clientId": cid, "subscription": ACCOUNTS, "id": "3"},
        {"channel": "/meta/subscribe", "clientId": cid, "subscription": "/data/NopeChangeEvent"},
    ]

    replies = {
        r.get("id", r.get("subscription")): r
        for r in raw(url, batch, token=token, session=session).json()
    }

    assert replies["2"]["successful"] is True
    assert replies["3"]["successful"] is True
    assert replies["/data/NopeChangeEvent"]["successful"] is False


# -- long polling, advice, idle expiry ---------------------------------------------------------


def test_given_no_events_when_connecting_then_held_and_answered_with_retry_advice(url, crm, stream):
    hook(url, connect_timeout=0.2)
    stream.start({ACCOUNTS: REPLAY_NEW})
    stream.poll()  # the first connect is answered at once

    result = stream.poll()

    assert result.events == []
    assert stream.connect_timeout == pytest.approx(0.2)
    assert stream.client_id is not None


def test_given_an_event_while_connect_is_held_when_committed_then_delivered(url, crm, stream):
    hook(url, connect_timeout=30)
    stream.start({ACCOUNTS: REPLAY_NEW})
    stream.poll()
    writer = threading.Timer(0.05, lambda: create(crm, "Account", {"Name": "Held"}))
    writer.start()

    events = stream.poll().events
    writer.join()

    assert [p["Name"] for p in payloads(events)] == ["Held"]


def test_given_a_client_idle_too_long_when_connecting_then_unknown_client_and_handshake_advice(
    url, crm
):
    session = requests.Session()
    token = token_of(crm)
    (hs,) = raw(url, [handshake_message()], token=token, session=session).json()
    hook(url, idle_timeout=0)  # every silence is too long now
    connect = {
        "channel": "/meta/connect",
        "clientId": hs["clientId"],
        "connectionType": "long-polling",
    }

    (reply,) = raw(url, [connect], token=token, session=session).json()

    assert reply["successful"] is False and reply["error"] == "403::Unknown client"
    assert reply["advice"]["reconnect"] == "handshake"


def test_given_sessions_dropped_when_polling_then_client_handshakes_resubscribes_and_misses_nothing(
    url, crm, stream
):
    stream.start({ACCOUNTS: REPLAY_NEW})
    first = create(crm, "Account", {"Name": "Before drop"})
    assert headers_of(drain(stream, 2))[0]["recordIds"] == [first]
    handshakes = stream.handshakes
    hook(url, drop_sessions=True)
    second = create(crm, "Account", {"Name": "While dropped"})

    results = [stream.poll() for _ in range(3)]

    assert stream.handshakes == handshakes + 1
    assert [s.outcome for r in results for s in r.resubscribed] == [Outcome.SUBSCRIBED]
    ids = [h["recordIds"][0] for r in results for h in headers_of(r.events)]
    assert ids == [second]


def test_given_a_revoked_session_when_polling_then_client_logs_in_again_and_continues(
    url, crm, stream
):
    stream.start({ACCOUNTS: REPLAY_NEW})
    stream.poll()
    requests.post(f"{url}/_sandbox/expire-sessions", timeout=10).raise_for_status()

    stream.poll()  # 401::Authentication invalid: log in, hand shake, resubscribe
    record = create(crm, "Account", {"Name": "After revocation"})
    events = drain(stream, 3)

    assert stream.relogins == 1
    assert [h["recordIds"] for h in headers_of(events)] == [[record]]


def test_given_streaming_switched_off_when_handshaking_then_unavailable(url, crm, stream):
    hook(url, unavailable=True)
    with pytest.raises(StreamingUnavailableError):
        stream.start({ACCOUNTS: REPLAY_NEW})


# -- replay ------------------------------------------------------------------------------------


def test_given_replay_options_when_subscribing_then_new_all_and_strictly_after(url, crm, stream):
    ids = [create(crm, "Account", {"Name": f"R{i}"}) for i in range(3)]
    stream.start({ACCOUNTS: REPLAY_ALL})
    everything = drain(stream, 2)
    replay_ids = [e["data"]["event"]["replayId"] for e in everything]
    assert [h["recordIds"][0] for h in headers_of(everything)] == ids
    stream.disconnect()

    after_first = StreamingClient(crm)
    after_first.start({ACCOUNTS: replay_ids[0]})
    later = drain(after_first, 2)
    after_first.disconnect()
    only_new = StreamingClient(crm)
    only_new.start({ACCOUNTS: REPLAY_NEW})
    nothing = drain(only_new, 2)
    only_new.disconnect()

    assert [h["recordIds"][0] for h in headers_of(later)] == ids[1:]
    assert nothing == []


def test_given_events_when_delivered_then_replay_ids_increase_but_not_contiguously(
    url, crm, stream
):
    stream.start({ACCOUNTS: REPLAY_NEW})
    for i in range(6):
        create(crm, "Account", {"Name": f"Seq{i}"})
    ids = [e["data"]["event"]["replayId"] for e in drain(stream, 3)]

    assert len(ids) == 6 and ids == sorted(ids) and len(set(ids)) == 6
    assert any(b - a > 1 for a, b in itertools.pairwise(ids))


def test_given_an_unknown_replay_id_when_subscribing_then_exact_400_text_and_fallback_to_new(
    url, crm, stream
):
    stream.handshake()
    (sub,) = stream._subscribe_many({ACCOUNTS: 987_654_321})

    assert sub.outcome is Outcome.REPLAY_LOST
    assert sub.error == INVALID.format(987_654_321)
    assert stream.channels[ACCOUNTS] == REPLAY_NEW


def test_given_events_past_retention_when_replaying_their_id_then_invalid(url, crm, stream):
    create(crm, "Account", {"Name": "Old"})
    stream.start({ACCOUNTS: REPLAY_ALL})
    old_id = drain(stream, 2)[0]["data"]["event"]["replayId"]
    stream.disconnect()
    hook(url, event_retention=0)  # purges every event now

    late = StreamingClient(crm)
    (sub,) = late.start({ACCOUNTS: old_id})
    late.disconnect()

    assert sub.outcome is Outcome.REPLAY_LOST and sub.error == INVALID.format(old_id)


# -- channels, selection, allocations ------------------------------------------------------------


def test_given_an_object_not_selected_for_cdc_when_subscribing_then_refused_and_no_events(
    url, crm, stream
):
    hook(url, cdc_entities=["Account"])

    subs = {s.channel: s for s in stream.start({ACCOUNTS: REPLAY_NEW, CONTACTS: REPLAY_NEW})}
    account = create(crm, "Account", {"Name": "Selected"})
    create(crm, "Contact", {"LastName": "Not selected", "AccountId": account})
    events = drain(stream, 2)

    assert subs[ACCOUNTS].outcome is Outcome.SUBSCRIBED
    assert subs[CONTACTS].outcome is Outcome.REFUSED
    assert subs[CONTACTS].error == (
        f"400::The channel you requested to subscribe to doesn't exist {CONTACTS}"
    )
    assert [h["entityName"] for h in headers_of(events)] == ["Account"]


def test_given_the_all_objects_channel_when_writing_two_objects_then_both_arrive_on_it(
    url, crm, stream
):
    stream.start({ALL: REPLAY_NEW})
    account = create(crm, "Account", {"Name": "All"})
    create(crm, "Contact", {"LastName": "All", "AccountId": account})

    entities = [h["entityName"] for h in headers_of(drain(stream, 2), ALL)]

    assert entities == ["Account", "Contact"]


def test_given_deliveries_when_counted_then_limits_show_them_and_cometd_is_no_api_call(
    url, crm, stream
):
    stream.start({ACCOUNTS: REPLAY_NEW, ALL: REPLAY_NEW})
    before = requests.get(f"{url}/_sandbox/stats", timeout=10).json()
    create(crm, "Account", {"Name": "Counted"})
    drain(stream, 2)
    after = requests.get(f"{url}/_sandbox/stats", timeout=10).json()
    limits = crm.limits()["DailyDeliveredPlatformEvents"]

    assert limits["Max"] - limits["Remaining"] == 2  # one event, two subscriptions
    assert after["by_endpoint"]["cometd"] > before["by_endpoint"].get("cometd", 0)
    assert after["api_calls"] - before["api_calls"] == 1  # the create only


def test_given_the_allocation_spent_when_connecting_then_daily_limit_error(url, crm, stream):
    stream.start({ACCOUNTS: REPLAY_NEW})
    hook(url, delivery_limit=10, deliveries_used=10)

    with pytest.raises(DeliveryLimitExceededError, match="daily limit exceeded"):
        drain(stream, 2)


def test_given_unsubscribe_when_writing_then_nothing_more_arrives(url, crm, stream):
    stream.start({ACCOUNTS: REPLAY_NEW})
    stream.unsubscribe(ACCOUNTS)
    create(crm, "Account", {"Name": "Unheard"})

    assert drain(stream, 2) == []


# -- event shapes per change type and API surface ----------------------------------------------


def test_given_a_create_when_delivered_then_header_and_every_non_empty_field(url, crm, stream):
    stream.start({ACCOUNTS: REPLAY_NEW})
    record = create(
        crm,
        "Account",
        {"Name": "Shape", "BillingCity": "Lyon", "Phone": None},
        **{"Sforce-Call-Options": "client=billing-sync"},
    )

    (payload,) = payloads(drain(stream, 2))

    header = payload["ChangeEventHeader"]
    assert header["entityName"] == "Account" and header["recordIds"] == [record]
    assert header["changeType"] == "CREATE" and header["changedFields"] == []
    assert header["changeOrigin"] == "com/salesforce/api/rest/59.0;client=billing-sync"
    assert header["sequenceNumber"] == 1 and header["transactionKey"]
    assert isinstance(header["commitTimestamp"], int) and header["commitTimestamp"] > 10**12
    assert header["commitUser"].startswith("005") and isinstance(header["commitNumber"], int)
    assert payload["Name"] == "Shape" and payload["BillingAddress"] == {"City": "Lyon"}
    assert payload["CreatedDate"].endswith("Z")
    assert "Phone" not in payload
    assert not {"IsDeleted", "SystemModstamp", "Id"} & set(payload)


def test_given_an_update_when_delivered_then_changed_fields_plus_last_modified_date(
    url, crm, stream
):
    record = create(crm, "Account", {"Name": "Before", "BillingCity": "Lyon", "Phone": "1"})
    stream.start({ACCOUNTS: REPLAY_NEW})

    update(crm, "Account", record, {"BillingCity": "Nice", "Phone": None, "Name": "Before"})
    (payload,) = payloads(drain(stream, 2))

    header = payload["ChangeEventHeader"]
    assert header["changeType"] == "UPDATE"
    assert header["changedFields"] == ["BillingAddress.City", "Phone", "LastModifiedDate"]
    assert payload["BillingAddress"] == {"City": "Nice"}
    assert payload["Phone"] is None and "LastModifiedDate" in payload and "Name" not in payload


def test_given_a_delete_with_cascade_when_delivered_then_header_only_events_for_each_object(
    url, crm, stream
):
    account = create(crm, "Account", {"Name": "Doomed"})
    contact = create(crm, "Contact", {"LastName": "Goes too", "AccountId": account})
    stream.start({ALL: REPLAY_NEW})

    delete(crm, "Account", account)
    events = payloads(drain(stream, 2))

    assert [
        (p["ChangeEventHeader"]["entityName"], p["ChangeEventHeader"]["recordIds"]) for p in events
    ] == [
        ("Account", [account]),
        ("Contact", [contact]),
    ]
    assert all(p["ChangeEventHeader"]["changeType"] == "DELETE" for p in events)
    assert all(set(p) == {"ChangeEventHeader"} for p in events)
    keys = {p["ChangeEventHeader"]["transactionKey"] for p in events}
    assert len(keys) == 1
    assert [p["ChangeEventHeader"]["sequenceNumber"] for p in events] == [1, 2]


def test_given_a_soap_undelete_when_delivered_then_undelete_with_every_non_empty_field(
    url, crm, stream
):
    account = create(crm, "Account", {"Name": "Phoenix"})
    delete(crm, "Account", account)
    stream.start({ACCOUNTS: REPLAY_NEW})
    envelope = (
        '<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:partner.soap.sforce.com"><soapenv:Header><urn:SessionHeader>'
        f"<urn:sessionId>{token_of(crm)}</urn:sessionId></urn:SessionHeader></soapenv:Header>"
        f"<soapenv:Body><urn:undelete><urn:ids>{account}</urn:ids></urn:undelete>"
        "</soapenv:Body></soapenv:Envelope>"
    )

    answer = requests.post(
        f"{url}/services/Soap/u/59.0", data=envelope, headers={"Content-Type": "text/xml"}
    )
    (payload,) = payloads(drain(stream, 2))

    assert answer.status_code == 200 and "<success>true</success>" in answer.text
    assert payload["ChangeEventHeader"]["changeType"] == "UNDELETE"
    assert payload["ChangeEventHeader"]["changeOrigin"] == "com/salesforce/api/soap/59.0"
    assert payload["Name"] == "Phoenix"
    assert crm.query_all(f"SELECT Name FROM Account WHERE Id = '{account}'")[0]["Name"] == "Phoenix"


@pytest.mark.parametrize(
    ("change_type", "record_ids", "expected_ids"),
    [("GAP_UPDATE", ["001000000000001AAA"], ["001000000000001AAA"]), ("GAP_OVERFLOW", ["x"], [])],
)
def test_given_the_gap_hook_when_delivered_then_header_only(
    url, crm, stream, change_type, record_ids, expected_ids
):
    stream.start({ACCOUNTS: REPLAY_NEW})

    hook(url, gap={"object": "Account", "change_type": change_type, "record_ids": record_ids})
    (payload,) = payloads(drain(stream, 2))

    assert set(payload) == {"ChangeEventHeader"}
    assert payload["ChangeEventHeader"]["changeType"] == change_type
    assert payload["ChangeEventHeader"]["recordIds"] == expected_ids


def test_given_every_write_surface_when_used_then_each_emits_its_event(url, crm, stream):
    stream.start({ACCOUNTS: REPLAY_NEW, ORDERS: REPLAY_NEW})
    account = create(crm, "Account", {"Name": "Surfaces"})  # REST create
    update(crm, "Account", account, {"Name": "Surfaces 2"})  # REST update
    crm._request(  # collections create and update
        "POST",
        crm.data_url("composite/sobjects"),
        body={"allOrNone": True, "records": [{"attributes": {"type": "Account"}, "Name": "C1"}]},
    )
    crm._request(
        "PATCH",
        crm.data_url("composite/sobjects"),
        body={"records": [{"attributes": {"type": "Account"}, "id": account, "Phone": "9"}]},
    )
    crm.composite(  # /composite
        [
            {
                "method": "PATCH",
                "url": crm.sobject_url("Account", account),
                "referenceId": "a",
                "body": {"Phone": "10"},
            }
        ]
    )
    crm._request(  # upsert by external id (creates an order)
        "PATCH",
        crm.sobject_url("Apttus_Config2__Order__c", "Billing_Sync_Key__c", "k-1"),
        body={"Name": "O-1", "Apttus_Config2__SoldToAccountId__c": account},
    )
    order = crm.query_all(
        "SELECT Id FROM Apttus_Config2__Order__c WHERE Billing_Sync_Key__c = 'k-1'"
    )[0]["Id"]
    crm._request(  # collections delete
        "DELETE",
        crm.data_url("composite/sobjects"),
        params={"ids": order},
    )
    failed = crm._request(  # an all-or-none batch that fails emits nothing
        "POST",
        crm.data_url("composite/sobjects"),
        body={
            "allOrNone": True,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "Rolled back"},
                {"attributes": {"type": "Account"}},
            ],
        },
    )

    kinds = [(h["entityName"], h["changeType"]) for h in headers_of(drain(stream, 4))]

    assert not any(r["success"] for r in failed)
    assert kinds == [
        ("Account", "CREATE"),
        ("Account", "UPDATE"),
        ("Account", "CREATE"),
        ("Account", "UPDATE"),
        ("Account", "UPDATE"),
        ("Apttus_Config2__Order__c", "CREATE"),
        ("Apttus_Config2__Order__c", "DELETE"),
    ]


def test_given_a_user_without_view_all_data_when_subscribing_then_refused_with_403(
    url, crm, stream
):
    hook(url, view_all_data=False)

    (sub,) = stream.start({ACCOUNTS: REPLAY_NEW})

    assert sub.outcome is Outcome.REFUSED
    assert sub.error == "403::User not allowed to subscribe CDC without View All Data permissions"


def test_given_the_concurrent_client_limit_when_handshaking_then_denied_with_the_reason(url, crm):
    hook(url, max_clients=0)

    (reply,) = raw(url, [handshake_message()], token=token_of(crm)).json()

    assert reply["error"] == "403::Handshake denied"
    assert reply["ext"]["sfdc"]["failureReason"] == (
        "403::Organization concurrent user limit exceeded"
    )
