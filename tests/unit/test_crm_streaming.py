"""The Bayeux client's protocol rules against scripted answers (strict ``responses`` mocks)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from sync.crm.streaming import (
    REPLAY_NEW,
    DeliveryLimitExceededError,
    HandshakeRefusedError,
    Outcome,
    StreamingClient,
    StreamingError,
    StreamingUnavailableError,
    TransientCrmError,
)
from tests.unit.crm_mock import INSTANCE_URL, Sleeps, add_login, make_client

COMETD = f"{INSTANCE_URL}/cometd/59.0"
CHANNEL = "/data/AccountChangeEvent"


def handshake_ok(client_id: str = "c1") -> list[dict]:
    return [
        {
            "channel": "/meta/handshake",
            "successful": True,
            "clientId": client_id,
            "supportedConnectionTypes": ["long-polling"],
            "ext": {"replay": True, "payload.format": True},
        }
    ]


def subscribe_ok(channel: str = CHANNEL) -> list[dict]:
    return [{"channel": "/meta/subscribe", "successful": True, "subscription": channel}]


def connect_ok(*events: dict, advice: dict | None = None) -> list[dict]:
    reply = {
        "channel": "/meta/connect",
        "successful": True,
        "advice": advice or {"reconnect": "retry", "interval": 0, "timeout": 110000},
    }
    return [*events, reply]


def event(replay_id: int) -> dict:
    return {
        "channel": CHANNEL,
        "data": {
            "event": {"replayId": replay_id},
            "payload": {"ChangeEventHeader": {"entityName": "Account", "changeType": "UPDATE"}},
        },
    }


def sent(call: responses.Call) -> list[dict]:
    return json.loads(call.request.body)


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as m:
        yield m


def started(mock: responses.RequestsMock, sleeps: Sleeps | None = None) -> StreamingClient:
    add_login(mock)
    mock.add(responses.POST, COMETD, json=handshake_ok())
    mock.add(responses.POST, COMETD, json=subscribe_ok())
    client = StreamingClient(make_client(), sleep=sleeps or Sleeps())
    client.start({CHANNEL: REPLAY_NEW})
    return client


def test_given_handshake_and_subscribe_when_started_then_replay_ext_and_bearer_sent(mock):
    client = started(mock)

    handshake, subscribe = (sent(c) for c in mock.calls[1:3])
    assert handshake[0]["ext"] == {"replay": True}
    assert handshake[0]["supportedConnectionTypes"] == ["long-polling"]
    assert subscribe[0]["ext"] == {"replay": {CHANNEL: -1}} and subscribe[0]["clientId"] == "c1"
    assert mock.calls[1].request.headers["Authorization"] == "Bearer SESSION-1"
    assert client.channels == {CHANNEL: -1}


def test_given_events_when_connecting_then_delivered_and_resume_point_advances(mock):
    client = started(mock)
    mock.add(responses.POST, COMETD, json=connect_ok(event(5), event(9)))

    result = client.poll()

    assert [e["data"]["event"]["replayId"] for e in result.events] == [5, 9]
    assert client.channels[CHANNEL] == 9
    assert sent(mock.calls[-1])[0]["connectionType"] == "long-polling"


def test_given_interval_advice_when_polling_next_then_waits_that_long_first(mock):
    sleeps = Sleeps()
    client = started(mock, sleeps)
    mock.add(
        responses.POST,
        COMETD,
        json=connect_ok(advice={"reconnect": "retry", "interval": 2000, "timeout": 30000}),
    )
    mock.add(responses.POST, COMETD, json=connect_ok())

    client.poll()
    timeout_after_first = client.connect_timeout
    client.poll()

    assert sleeps.waits == [2.0]
    assert timeout_after_first == 30.0


def test_given_unknown_client_when_connecting_then_handshake_and_resubscribe_after_last_event(mock):
    client = started(mock)
    mock.add(responses.POST, COMETD, json=connect_ok(event(7)))
    mock.add(
        responses.POST,
        COMETD,
        json=[
            {
                "channel": "/meta/connect",
                "successful": False,
                "error": "403::Unknown client",
                "advice": {"reconnect": "handshake", "interval": 0},
            }
        ],
    )
    mock.add(responses.POST, COMETD, json=handshake_ok("c2"))
    mock.add(responses.POST, COMETD, json=subscribe_ok())

    client.poll()
    result = client.poll()

    assert [s.outcome for s in result.resubscribed] == [Outcome.SUBSCRIBED]
    assert sent(mock.calls[-1])[0]["ext"] == {"replay": {CHANNEL: 7}}
    assert client.client_id == "c2" and client.handshakes == 2


def test_given_401_on_connect_when_polling_then_logs_in_again_and_handshakes(mock):
    client = started(mock)
    mock.add(
        responses.POST,
        COMETD,
        json=[
            {
                "channel": "/meta/connect",
                "successful": False,
                "error": "401::Authentication invalid",
                "advice": {"reconnect": "none", "interval": 0},
            }
        ],
    )
    add_login(mock, "SESSION-2")
    mock.add(responses.POST, COMETD, json=handshake_ok("c2"))
    mock.add(responses.POST, COMETD, json=subscribe_ok())

    client.poll()

    assert client.relogins == 1
    assert mock.calls[-1].request.headers["Authorization"] == "Bearer SESSION-2"


def test_given_handshake_denied_for_401_when_starting_then_logs_in_again_once(mock):
    add_login(mock)
    denied = {
        "channel": "/meta/handshake",
        "successful": False,
        "error": "403::Handshake denied",
        "ext": {"sfdc": {"failureReason": "401::Authentication invalid"}},
    }
    mock.add(responses.POST, COMETD, json=[denied])
    add_login(mock, "SESSION-2")
    mock.add(responses.POST, COMETD, json=handshake_ok())
    client = StreamingClient(make_client())

    client.handshake()

    assert client.client_id == "c1" and client.relogins == 1


def test_given_handshake_denied_for_another_reason_when_starting_then_refused(mock):
    add_login(mock)
    denied = {
        "channel": "/meta/handshake",
        "successful": False,
        "error": "403::Handshake denied",
        "ext": {"sfdc": {"failureReason": "403::Organization concurrent user limit exceeded"}},
    }
    mock.add(responses.POST, COMETD, json=[denied])

    with pytest.raises(HandshakeRefusedError, match="concurrent user limit"):
        StreamingClient(make_client()).handshake()


def test_given_no_replay_in_handshake_when_starting_then_unavailable(mock):
    add_login(mock)
    reply = handshake_ok()
    reply[0]["ext"] = {}
    mock.add(responses.POST, COMETD, json=reply)

    with pytest.raises(StreamingUnavailableError, match="replay"):
        StreamingClient(make_client()).handshake()


def test_given_404_when_starting_then_unavailable(mock):
    add_login(mock)
    mock.add(responses.POST, COMETD, status=404, json=[{"errorCode": "NOT_FOUND"}])

    with pytest.raises(StreamingUnavailableError):
        StreamingClient(make_client()).handshake()


def test_given_invalid_replay_when_subscribing_then_subscribed_at_new_and_reported(mock):
    add_login(mock)
    mock.add(responses.POST, COMETD, json=handshake_ok())
    error = (
        "400::The replayId 42 you provided was invalid.  Please provide a valid ID, -2 to "
        "replay all events, or -1 to replay only new events."
    )
    mock.add(
        responses.POST,
        COMETD,
        json=[
            {
                "channel": "/meta/subscribe",
                "successful": False,
                "subscription": CHANNEL,
                "error": error,
            }
        ],
    )
    mock.add(responses.POST, COMETD, json=subscribe_ok())
    client = StreamingClient(make_client())

    (sub,) = client.start({CHANNEL: 42})

    assert sub.outcome is Outcome.REPLAY_LOST and sub.error == error
    assert sent(mock.calls[-1])[0]["ext"] == {"replay": {CHANNEL: -1}}
    assert client.channels == {CHANNEL: -1}


def test_given_daily_limit_when_connecting_then_delivery_limit_error(mock):
    client = started(mock)
    mock.add(
        responses.POST,
        COMETD,
        json=[
            {
                "channel": "/meta/connect",
                "successful": False,
                "error": "403::Organization total events daily limit exceeded",
                "advice": {"reconnect": "none"},
            }
        ],
    )

    with pytest.raises(DeliveryLimitExceededError):
        client.poll()


def test_given_reconnect_none_for_another_reason_when_polling_then_stream_error(mock):
    client = started(mock)
    mock.add(
        responses.POST,
        COMETD,
        json=[
            {
                "channel": "/meta/connect",
                "successful": False,
                "error": "503::Server is too busy",
                "advice": {"reconnect": "none"},
            }
        ],
    )

    with pytest.raises(StreamingError, match="too busy"):
        client.poll()
    assert client.client_id is None


def test_given_a_5xx_when_connecting_then_transient(mock):
    client = started(mock)
    mock.add(responses.POST, COMETD, status=503, body="busy")

    with pytest.raises(TransientCrmError):
        client.poll()


def test_given_streaming_requests_when_sent_then_not_counted_as_api_calls(mock):
    client = started(mock)
    mock.add(responses.POST, COMETD, json=connect_ok())

    client.poll()

    assert client.crm.api_calls == 0


def test_given_a_held_connect_when_closed_then_disconnect_sent_and_the_answer_ends_polling(mock):
    client = started(mock)
    before = len(mock.calls)
    unknown = {
        "channel": "/meta/connect",
        "successful": False,
        "error": "403::Unknown client",
        "advice": {"reconnect": "handshake", "interval": 0},
    }

    def cometd(request: Any) -> tuple[int, dict, str]:
        if json.loads(request.body)[0]["channel"] == "/meta/disconnect":
            return 200, {}, json.dumps([{"channel": "/meta/disconnect", "successful": True}])
        client.close()  # from the stopping thread, while the CRM holds this connect
        return 200, {}, json.dumps([event(7), unknown])

    mock.add_callback(responses.POST, COMETD, callback=cometd)

    result = client.poll()  # the released connect's answer: no handshake follows

    # answered in this order: the disconnect, then the connect it released
    channels = [sent(c)[0]["channel"] for c in mock.calls[-2:]]
    assert channels == ["/meta/disconnect", "/meta/connect"]
    assert sent(mock.calls[-2])[0]["clientId"] == "c1"
    assert [e["data"]["event"]["replayId"] for e in result.events] == [7]
    assert client.poll().events == []  # closed: no further connect is sent
    client.disconnect()  # said already: nothing more is sent
    assert len(mock.calls) == before + 2  # the connect and the disconnect only
