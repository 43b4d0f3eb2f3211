"""SOAP calls of the partner API beyond login: ``undelete``.

The REST API has no undelete; integrations restore records from the recycle bin with
the SOAP ``undelete(ids)`` call, authenticated by the ``SessionHeader``. The answer has
one ``result`` per Id, in request order, each ``success`` with the Id or ``errors``.
"""

from __future__ import annotations

from html import escape

from defusedxml import ElementTree

_PARTNER_NS = "{urn:partner.soap.sforce.com}"
_ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns="urn:partner.soap.sforce.com" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
)

MAX_UNDELETE = 200


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_undelete(body: bytes) -> tuple[str | None, list[str]] | None:
    """(session id, Ids) of an ``undelete`` envelope; None when the body is no undelete."""
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, ValueError):
        return None
    session_id: str | None = None
    found = False
    record_ids: list[str] = []
    for element in root.iter():
        name = _local(element.tag)
        if name == "sessionId":
            session_id = (element.text or "").strip() or None
        elif name == "undelete":
            found = True
            record_ids = [
                (child.text or "").strip() for child in element if _local(child.tag) == "ids"
            ]
    return (session_id, record_ids) if found else None


def undelete_response(results: list[tuple[str, str | None, str | None]]) -> str:
    """The ``undeleteResponse``: per Id, (id, error code or None, message or None)."""
    parts = []
    for record_id, code, message in results:
        if code is None:
            parts.append(f"<result><id>{escape(record_id)}</id><success>true</success></result>")
        else:
            parts.append(
                "<result><errors>"
                f"<message>{escape(message or '')}</message>"
                f"<statusCode>{escape(code)}</statusCode>"
                '</errors><id xsi:nil="true"/><success>false</success></result>'
            )
    return _ENVELOPE.format(body=f"<undeleteResponse>{''.join(parts)}</undeleteResponse>")


def invalid_session_fault() -> str:
    """The SOAP fault of a call with a missing or expired session."""
    return _ENVELOPE.format(
        body="<soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode>"
        "<faultstring>INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: "
        "Illegal Session</faultstring></soapenv:Fault>"
    )
