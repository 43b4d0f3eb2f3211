"""Bad client input always gets a Salesforce-shaped 4xx naming the problem, never a 500.

Each test drives an in-process sandbox over real HTTP and, at the end of the module, the
sandbox's count of unexpected exceptions must be zero (``/_sandbox/stats``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from sync.sandbox import ids
from sync.sandbox.schema import FieldDef, ObjectDef, load_schema
from sync.sandbox.server import SandboxConfig, SandboxServer
from tests.support.sandbox import simple_salesforce_cc

SCHEMA = load_schema()
OBJECTS = list(SCHEMA.objects.values())
VERSION = "59.0"


class Api:
    """A logged-in raw REST client that checks the shape of every answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        sf = simple_salesforce_cc(url, VERSION)
        self.http.headers["Authorization"] = f"Bearer {sf.session_id}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.http.request(
            method, f"{self.url}/services/data/v{VERSION}/{path}", timeout=30, **kwargs
        )
        assert response.status_code < 500, (method, path, kwargs, response.text[:500])
        if response.status_code >= 400:
            body = response.json()
            assert isinstance(body, list), body
            assert body and all({"errorCode", "message"} <= set(item) for item in body), body
        return response

    def error(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The single error of a request that must fail."""
        response = self.call(method, path, **kwargs)
        assert response.status_code >= 400, (method, path, kwargs, response.text[:500])
        (error,) = response.json()
        return error

    def ids_of(self, obj: ObjectDef, limit: int = 1) -> list[str]:
        soql = f"SELECT Id FROM {obj.name} ORDER BY Id LIMIT {limit}"
        return [r["Id"] for r in self.call("GET", "query", params={"q": soql}).json()["records"]]

    def existing(self, obj: ObjectDef) -> str:
        """The Id of a live ``obj`` record (created when there is none)."""
        found = self.ids_of(obj)
        if found:
            return found[0]
        created = self.call("POST", f"sobjects/{obj.name}", json=base_record(self, obj))
        assert created.status_code == 201, created.text
        record_id: str = created.json()["id"]
        return record_id


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(seed=1, seed_random=3)) as running:
        yield running
        stats = requests.get(f"{running.url}/_sandbox/stats", timeout=10).json()
        assert stats["unhandled_errors"] == 0, stats["recent_unhandled"]


@pytest.fixture(scope="module")
def api(server: SandboxServer) -> Api:
    return Api(server.url)


def valid_value(api: Api, f: FieldDef) -> Any:
    """A value ``f`` accepts (references point at a live record)."""
    if f.type == "reference":
        return api.ids_of(SCHEMA.objects[f.reference_to[0].lower()])[0]
    if f.type == "picklist":
        return f.picklist_values[0]
    return {
        "boolean": True,
        "double": 1.5,
        "currency": 2.5,
        "percent": 3.0,
        "int": 1,
        "date": "2026-11-22",
        "datetime": "2026-11-22T10:00:00.000+0000",
        "email": "ann@example.com",
    }.get(f.type, "x")


def base_record(api: Api, obj: ObjectDef) -> dict[str, Any]:
    """The required fields of ``obj`` with valid values."""
    return {f.name: valid_value(api, f) for f in obj.fields.values() if f.required}


def writable(obj: ObjectDef) -> list[FieldDef]:
    return [f for f in obj.fields.values() if not f.system]


# JSON values of every kind, and edge cases of each field type
PROBES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    10**20,
    1e308,
    "",
    "x",
    "x" * 100_000,
    "2026-11-22",
    "2026-11-22T10:00:00Z",
    "2026-02-30",
    "2026-11-22T25:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    [],
    [1],
    {},
    {"a": 1},
    "true",
    "NaN",
    "1e999",
    "\u00e9\u0000\ud7ff",
    "001",
    "not-an-id",
    ids.make_id("003", 999_999),
    ids.make_id("001", 999_999),
]


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o.name)
def test_given_any_json_value_in_any_field_when_writing_then_success_or_400_naming_it(api, obj):
    base = base_record(api, obj)
    existing = api.existing(obj)
    answers = 0
    for f in writable(obj):
        for value in PROBES:
            for method, path, body in (
                ("POST", f"sobjects/{obj.name}", {**base, f.name: value}),
                ("PATCH", f"sobjects/{obj.name}/{existing}", {f.name: value}),
            ):
                response = api.call(method, path, json=body)
                answers += 1
                if response.status_code >= 400:
                    (error,) = response.json()
                    assert response.status_code == 400, (f.name, value, error)
                    assert error["fields"] == [f.name], (method, f.name, value, error)

    assert answers == 2 * len(writable(obj)) * len(PROBES)


@pytest.mark.parametrize(
    ("obj", "field"),
    [(o, f) for o in OBJECTS for f in writable(o) if f.type == "boolean"],
    ids=lambda v: v.name,
)
def test_given_null_checkbox_when_creating_and_updating_then_stored_false(api, obj, field):
    created = api.call(
        "POST", f"sobjects/{obj.name}", json={**base_record(api, obj), field.name: None}
    )
    record_id = created.json()["id"]
    api.call("PATCH", f"sobjects/{obj.name}/{record_id}", json={field.name: True})
    before = api.call("GET", f"sobjects/{obj.name}/{record_id}").json()[field.name]
    updated = api.call("PATCH", f"sobjects/{obj.name}/{record_id}", json={field.name: None})

    after = api.call("GET", f"sobjects/{obj.name}/{record_id}").json()[field.name]
    assert created.status_code == 201
    assert updated.status_code == 204
    assert (before, after) == (True, False)


def test_given_null_checkbox_and_default_when_creating_then_false_not_the_default(api):
    product = api.call("POST", "sobjects/Product2", json={"Name": "Gizmo", "IsActive": None})
    defaulted = api.call("POST", "sobjects/Product2", json={"Name": "Gadget"})

    assert api.call("GET", f"sobjects/Product2/{product.json()['id']}").json()["IsActive"] is False
    assert api.call("GET", f"sobjects/Product2/{defaulted.json()['id']}").json()["IsActive"] is True


@pytest.mark.parametrize(
    ("obj", "field"),
    [(o, f) for o in OBJECTS for f in writable(o) if f.required and f.type != "boolean"],
    ids=lambda v: v.name,
)
def test_given_null_on_required_field_when_writing_then_required_field_missing_naming_it(
    api, obj, field
):
    existing = api.existing(obj)
    on_create = api.error(
        "POST", f"sobjects/{obj.name}", json={**base_record(api, obj), field.name: None}
    )
    on_update = (
        api.error("PATCH", f"sobjects/{obj.name}/{existing}", json={field.name: None})
        if field.updateable
        else None
    )

    assert on_create["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert on_create["fields"] == [field.name]
    assert field.name in on_create["message"]
    if on_update is not None:
        assert on_update["errorCode"] == "REQUIRED_FIELD_MISSING"
        assert on_update["fields"] == [field.name]


@pytest.mark.parametrize(
    "key", ["Nope__c", "", "\u00e9t\u00e9", "x" * 5000, "Name.Sub", "attributes2"]
)
def test_given_unknown_field_when_writing_anywhere_then_invalid_field_naming_it(api, key):
    account = api.ids_of(SCHEMA.objects["account"])[0]
    record = {"attributes": {"type": "Account"}, "Name": "Acme", key: 1}
    answers = [
        api.error("POST", "sobjects/Account", json={"Name": "Acme", key: 1}),
        api.error("PATCH", f"sobjects/Account/{account}", json={key: 1}),
        api.error("PATCH", f"sobjects/Account/Id/{account}", json={key: 1}),
        api.call("POST", "composite/sobjects", json={"records": [record]}).json()[0]["errors"][0],
    ]

    for error in answers:
        assert error.get("errorCode", error.get("statusCode")) == "INVALID_FIELD"
        assert error["fields"] == [key]
        assert key in error["message"]


@pytest.mark.parametrize("body", [b"[]", b"[{}]", b"1", b"null", b'"text"', b"{", b"\xff\xfe", b""])
def test_given_body_that_is_not_an_object_when_writing_then_400_json_parser_error(api, body):
    account = api.ids_of(SCHEMA.objects["account"])[0]
    headers = {"Content-Type": "application/json"}
    for method, path in (
        ("POST", "sobjects/Account"),
        ("PATCH", f"sobjects/Account/{account}"),
        ("PATCH", f"sobjects/Account/Id/{account}"),
        ("POST", "composite/sobjects"),
        ("PATCH", "composite/sobjects"),
        ("PATCH", "composite/sobjects/Account/Id"),
        ("POST", "composite"),
    ):
        error = api.error(method, path, data=body, headers=headers)

        assert error["errorCode"] == "JSON_PARSER_ERROR", (method, path, error)


@pytest.mark.parametrize(
    "records",
    [
        [1, "x", None, []],
        [{"attributes": 1}, {"attributes": {"type": 5}}, {"attributes": {"type": ["Account"]}}],
        [{"attributes": {"type": {}}}, {"attributes": {"type": "Nothing__c"}, "Name": "x"}],
    ],
)
def test_given_malformed_collection_records_when_writing_then_each_fails_alone(api, records):
    for method in ("POST", "PATCH"):
        results = api.call(method, "composite/sobjects", json={"records": records}).json()

        assert len(results) == len(records)
        assert all(r["success"] is False and r["errors"][0]["statusCode"] for r in results)


@pytest.mark.parametrize("value", [[1], {"a": 1}, True, 5, 1.5, "x" * 1000])
def test_given_odd_external_id_values_when_upserting_collection_then_4xx_per_record(api, value):
    order = "Apttus_Config2__Order__c"
    record = {
        "attributes": {"type": order},
        "Billing_Sync_Key__c": value,
        "Apttus_Config2__SoldToAccountId__c": api.ids_of(SCHEMA.objects["account"])[0],
    }

    (result,) = api.call(
        "PATCH", f"composite/sobjects/{order}/Billing_Sync_Key__c", json={"records": [record]}
    ).json()

    if not result["success"]:
        assert result["errors"][0]["fields"] == ["Billing_Sync_Key__c"]


@pytest.mark.parametrize(
    "raw_id",
    ["x", "001", "001ZZZZZZZZZZZZZZZ", "0015g0000000001AAB", "\u00e9" * 15, "0" * 18, "a b", "%00"],
)
def test_given_malformed_id_in_url_when_calling_then_404_naming_it(api, raw_id):
    for method in ("GET", "PATCH", "DELETE"):
        error = api.error(method, f"sobjects/Account/{raw_id}", json={"Name": "x"})

        assert error["errorCode"] == "NOT_FOUND", (method, error)
        assert requests.utils.unquote(raw_id) in error["message"]


def test_given_id_of_another_object_in_url_when_calling_then_malformed_id_naming_it(api):
    contact = api.ids_of(SCHEMA.objects["contact"])[0]

    for method in ("GET", "PATCH", "DELETE"):
        error = api.error(method, f"sobjects/Account/{contact}", json={"Name": "x"})

        assert error["errorCode"] == "MALFORMED_ID"
        assert contact in error["message"]


def test_given_malformed_ids_in_collections_when_calling_then_4xx_naming_them(api):
    deleted = api.call("DELETE", "composite/sobjects", params={"ids": "bogus,001ZZZZZZZZZZZZZZZ"})
    fetched = api.error(
        "GET", "composite/sobjects/Account", params={"ids": "bogus", "fields": "Name"}
    )
    upserted = api.error("PATCH", "sobjects/Account/Id/bogus", json={"Name": "x"})

    assert [r["errors"][0]["statusCode"] for r in deleted.json()] == ["MALFORMED_ID"] * 2
    assert "bogus" in deleted.json()[0]["errors"][0]["message"]
    assert fetched["errorCode"] == "MALFORMED_ID" and "bogus" in fetched["message"]
    assert upserted["errorCode"] == "MALFORMED_ID" and "bogus" in upserted["message"]


@pytest.mark.parametrize(
    ("field", "target"),
    [
        ("Apttus_Config2__SoldToAccountId__c", "contact"),
        ("Apttus_Config2__SoldToAccountId__c", "apttus_config2__order__c"),
    ],
)
def test_given_reference_to_record_of_wrong_object_when_writing_then_field_integrity(
    api, field, target
):
    wrong = api.ids_of(SCHEMA.objects[target])[0]

    error = api.error("POST", "sobjects/Apttus_Config2__Order__c", json={field: wrong})

    assert error["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert error["fields"] == [field]
    assert wrong in error["message"]


@pytest.mark.parametrize(
    "subrequests",
    [
        [
            {
                "method": "GET",
                "url": "/services/data/v59.0/limits",
                "referenceId": "a",
                "httpHeaders": "x",
            }
        ],
        [{"method": "GET", "url": "http://[::1", "referenceId": "a"}],
        [{"method": "GET", "url": "", "referenceId": "a"}],
        [{"method": 5, "url": "/", "referenceId": "a"}],
        [{"method": "GET", "url": "/services/data/v59.0/query", "referenceId": "a", "body": [1]}],
        [
            {"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": "a"},
            {"method": "GET", "url": "@{a}", "referenceId": "b"},
            {
                "method": "PATCH",
                "url": "/services/data/v59.0/sobjects/Account/@{a.DailyApiRequests}",
                "referenceId": "c",
                "body": "@{a}",
            },
        ],
    ],
)
def test_given_malformed_composite_when_calling_then_4xx_in_salesforce_shape(api, subrequests):
    response = api.call("POST", "composite", json={"compositeRequest": subrequests})

    if response.status_code == 200:
        answers = response.json()["compositeResponse"]
        assert any(a["httpStatusCode"] >= 400 for a in answers)
        assert all(a["httpStatusCode"] < 500 for a in answers)


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        (
            "SELECT Id FROM Account WHERE " + " AND ".join(["Name = 'a'"] * 2000),
            "QUERY_TOO_COMPLICATED",
        ),
        ("SELECT Id FROM Account WHERE Name = '" + "x" * 100_000 + "'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account LIMIT 99999999999999999999999", "MALFORMED_QUERY"),
        ("\u0000", "MALFORMED_QUERY"),
    ],
)
def test_given_oversized_soql_when_querying_then_400(api, soql, code):
    # a composite subrequest carries its URL in the body: no limit on the URL's length
    subrequest = {"method": "GET", "url": f"/services/data/v{VERSION}/query?q={quote(soql)}"}
    (answer,) = api.call(
        "POST", "composite", json={"compositeRequest": [{**subrequest, "referenceId": "q"}]}
    ).json()["compositeResponse"]
    direct = api.error("GET", "query", params={"q": soql}) if len(soql) < 16_384 else None

    assert answer["httpStatusCode"] == 400
    assert answer["body"][0]["errorCode"] == code
    if direct is not None:
        assert direct["errorCode"] == code


@pytest.mark.parametrize(
    "moment",
    [
        "x",
        "Fri, 31 Dec 9999 23:59:59 -1400",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
    ],
)
def test_given_datetime_out_of_range_in_header_window_or_soql_when_calling_then_400(api, moment):
    account = api.ids_of(SCHEMA.objects["account"])[0]
    header = api.error(
        "PATCH",
        f"sobjects/Account/{account}",
        json={"Name": "x"},
        headers={"If-Unmodified-Since": moment},
    )
    window = api.error(
        "GET", "sobjects/Account/updated/", params={"start": moment, "end": "2026-11-22T10:00:00Z"}
    )
    soql = api.error(
        "GET", "query", params={"q": f"SELECT Id FROM Account WHERE CreatedDate > {moment}"}
    )

    assert header["errorCode"] == "INVALID_HEADER_VALUE"
    assert moment in header["message"]
    assert window["errorCode"] == "INVALID_REPLICATION_DATE"
    assert moment in window["message"]
    assert soql["errorCode"] == "MALFORMED_QUERY"


def test_given_sandbox_hook_with_absurd_seed_size_when_posting_then_400(server):
    response = requests.post(f"{server.url}/_sandbox/seed", json={"accounts": 1e300}, timeout=10)

    assert response.status_code == 400
    assert "accounts" in response.json()["error"]


def test_given_unexpected_exception_when_serving_then_counted_for_tests(server, monkeypatch):
    sandbox = server.sandbox
    assert sandbox is not None

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(sandbox.api, "_limits", explode)
    api = Api(server.url)
    response = api.http.get(f"{server.url}/services/data/v{VERSION}/limits", timeout=10)
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()
    sandbox.stats.reset()

    assert response.status_code == 500
    assert response.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert stats["unhandled_errors"] == 1
    assert stats["recent_unhandled"] == ["GET /services/data/v59.0/limits: RuntimeError: boom"]


def test_given_client_gone_mid_body_when_serving_then_not_counted_as_sandbox_fault(server):
    api = Api(server.url)
    host, port = server.url.removeprefix("http://").split(":")
    head = (
        f"POST /services/data/v{VERSION}/sobjects/Account HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nAuthorization: {api.http.headers['Authorization']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b'{"Name": "half a bo')
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()
        time.sleep(0.1)
    assert stats["unhandled_errors"] == 0, stats["recent_unhandled"]
    assert api.call("GET", "limits").status_code == 200
