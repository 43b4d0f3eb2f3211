"""Helpers of the CRM client tests: fixtures on disk, a client wired to mocked HTTP.

The client talks to ``INSTANCE_URL`` through the rewriting session, exactly as it talks
to the sandbox; ``responses`` intercepts every request before any socket opens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import responses

from sync.crm.client import Credentials, CrmClient
from sync.crm.retry import RetryPolicy
from sync.crm.session import make_session

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "crm"
INSTANCE_URL = "http://127.0.0.1:8765"
DATA = f"{INSTANCE_URL}/services/data/v59.0"
LOGIN_URL = f"{INSTANCE_URL}/services/Soap/u/59.0"

USERNAME = "integration@example.com"
PASSWORD = "Pa55-w0rd-never-logged"
TOKEN = "T0ken-never-logged"


def text(name: str) -> str:
    """The content of a fixture file."""
    return (RESOURCES / name).read_text()


def data(name: str) -> Any:
    """A JSON fixture, decoded."""
    return json.loads(text(name))


def login_body(session_id: str) -> str:
    """The SOAP login answer simple-salesforce parses, carrying ``session_id``."""
    return text("login_ok.xml").replace("{session_id}", session_id)


@dataclass
class Sleeps:
    """Records the waits the retry policy asked for instead of sleeping."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_client(*, max_attempts: int = 3, sleeps: Sleeps | None = None) -> CrmClient:
    """A client with a recorded, zero-length backoff, against ``INSTANCE_URL``."""
    policy = RetryPolicy(
        max_attempts=max_attempts,
        max_seconds=60.0,
        initial_wait=0.01,
        max_wait=0.05,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    return CrmClient(
        Credentials(USERNAME, PASSWORD, TOKEN),
        session=make_session(INSTANCE_URL),
        api_version="59.0",
        retry=policy,
    )


def add_login(mock: responses.RequestsMock, session_id: str = "SESSION-1") -> None:
    """Register one successful SOAP login."""
    mock.add(
        responses.POST,
        LOGIN_URL,
        body=login_body(session_id),
        status=200,
        content_type="text/xml",
    )


def add_json(
    mock: responses.RequestsMock,
    method: str,
    url: str,
    body: Any,
    *,
    status: int = 200,
    usage: str | None = None,
    **kwargs: Any,
) -> responses.BaseResponse:
    """Register one JSON answer, optionally with a ``Sforce-Limit-Info`` header."""
    headers = {"Sforce-Limit-Info": f"api-usage={usage}"} if usage else None
    return mock.add(method, url, json=body, status=status, headers=headers, **kwargs)
