"""Relationships in the sandbox schema, delete rules and the purge, on the store itself."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from sync.sandbox import deletes
from sync.sandbox.clock import ModstampClock, format_ms, to_ms
from sync.sandbox.errors import ApiError
from sync.sandbox.schema import SCHEMA_FILE, DeleteRule, load_schema, parse_schema
from sync.sandbox.seed import seed
from sync.sandbox.store import Store

FROZEN = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ORDER = "Apttus_Config2__Order__c"
ORDER_LINE = "Apttus_Config2__OrderLineItem__c"


def document() -> dict[str, Any]:
    with SCHEMA_FILE.open(encoding="utf-8") as fh:
        loaded: dict[str, Any] = yaml.safe_load(fh)
    return copy.deepcopy(loaded)


@pytest.fixture
def store() -> Store:
    seeded = Store(load_schema(), clock=ModstampClock(lambda: FROZEN))
    seed(seeded, 2, 5, today=FROZEN.date())
    return seeded


def live(store: Store, obj: str, where: str = "1 = 1", *params: Any) -> list[str]:
    rows = store.conn.execute(
        f'SELECT "Id" FROM "{obj}" WHERE "IsDeleted" = 0 AND {where} ORDER BY "Id"', params
    ).fetchall()
    return [row[0] for row in rows]


def stored(store: Store, obj: str, record_id: str) -> dict[str, Any]:
    cur = store.conn.execute(f'SELECT * FROM "{obj}" WHERE "Id" = ?', (record_id,))
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    return dict(zip(names, row, strict=True)) if row else {}


def test_given_shipped_schema_when_loading_then_declared_delete_rules():
    schema = load_schema()

    def rule(obj: str, field: str) -> DeleteRule | None:
        found = schema.get(obj)
        assert found is not None
        f = found.field(field)
        assert f is not None
        return f.delete_rule

    assert rule("AccountContactRole", "AccountId") is DeleteRule.CASCADE
    assert rule("AccountContactRole", "ContactId") is DeleteRule.CASCADE
    assert rule(ORDER_LINE, "Apttus_Config2__OrderId__c") is DeleteRule.CASCADE
    assert rule("Apttus_Billing__InvoiceLineItem__c", "Apttus_Billing__InvoiceId__c") is (
        DeleteRule.CASCADE
    )
    assert rule("Contact", "AccountId") is DeleteRule.CASCADE
    assert rule(ORDER, "Apttus_Config2__SoldToAccountId__c") is DeleteRule.RESTRICT
    assert rule(ORDER_LINE, "Apttus_Config2__ProductId__c") is DeleteRule.CLEAR
    assert rule("Account", "Name") is None


@pytest.mark.parametrize(
    ("obj", "field", "change", "message"),
    [
        ("Account", "Name", {"relationship": "masterDetail"}, "only apply to references"),
        ("Contact", "AccountId", {"relationship": "parent"}, "relationship must be one of"),
        (ORDER_LINE, "Apttus_Config2__OrderId__c", {"required": False}, "master-detail"),
        (ORDER_LINE, "Apttus_Config2__OrderId__c", {"cascadeDelete": False}, "master-detail"),
        ("Contact", "AccountId", {"referenceTo": ["Nothing__c"]}, "unknown 'Nothing__c'"),
        ("Contact", "AccountId", {"childRelationshipName": "AccountContactRoles"}, "is taken"),
    ],
)
def test_given_bad_relationship_declaration_when_parsing_then_value_error(
    obj, field, change, message
):
    doc = document()
    doc["objects"][obj]["fields"][field].update(change)

    with pytest.raises(ValueError, match=message):
        parse_schema(doc)


def test_given_three_master_details_when_parsing_then_value_error():
    doc = document()
    fields = doc["objects"]["AccountContactRole"]["fields"]
    fields["Third__c"] = {"type": "reference", "referenceTo": ["Account"]}
    fields["Third__c"]["relationship"] = "masterDetail"

    with pytest.raises(ValueError, match="at most two master-detail"):
        parse_schema(doc)


def test_given_null_checkbox_when_writing_through_store_then_false(store):
    role_obj = store.object("AccountContactRole")
    account, contact = live(store, "Account")[0], live(store, "Contact")[0]

    role = store.create(role_obj, {"AccountId": account, "ContactId": contact, "IsPrimary": None})
    store.update(role_obj, role, {"IsPrimary": True})
    primary = stored(store, "AccountContactRole", role)["IsPrimary"]
    store.update(role_obj, role, {"IsPrimary": None})

    assert (primary, stored(store, "AccountContactRole", role)["IsPrimary"]) == (1, 0)


def test_given_null_on_required_reference_when_updating_then_required_field_missing(store):
    role = live(store, "AccountContactRole")[0]

    with pytest.raises(ApiError) as failure:
        store.update(store.object("AccountContactRole"), role, {"ContactId": None})

    assert failure.value.error_code == "REQUIRED_FIELD_MISSING"
    assert failure.value.fields == ["ContactId"]


def test_given_refused_delete_when_planning_then_nothing_written(store):
    account = live(store, "Account")[0]
    before = store.conn.execute('SELECT MAX("SystemModstamp") FROM "Contact"').fetchone()

    with pytest.raises(ApiError) as failure:
        store.delete(store.object("Account"), account)

    assert failure.value.error_code == "DELETE_FAILED"
    assert store.conn.execute('SELECT MAX("SystemModstamp") FROM "Contact"').fetchone() == before
    assert live(store, "Account", '"Id" = ?', account) == [account]


def test_given_cascade_when_planning_then_root_first_and_grandchildren_included(store):
    account = live(store, "Account")[0]
    contacts = live(store, "Contact", '"AccountId" = ?', account)
    for obj, ref in (
        (ORDER, "Apttus_Config2__SoldToAccountId__c"),
        ("Apttus_Config2__AssetLineItem__c", "Apttus_Config2__AccountId__c"),
        ("Apttus_Billing__Invoice__c", "Apttus_Billing__BillToAccountId__c"),
        ("Apttus_Billing__PaymentMethod__c", "Apttus_Billing__AccountId__c"),
    ):
        for record_id in live(store, obj, f'"{ref}" = ?', account):
            store.delete(store.object(obj), record_id)

    plan = deletes.plan_delete(store.conn, store.schema, store.object("Account"), account)

    assert plan.deleted["account"].ids == [account]
    assert sorted(plan.deleted["contact"].ids) == contacts
    roles = live(store, "AccountContactRole", '"AccountId" = ?', account)
    assert sorted(plan.deleted["accountcontactrole"].ids) == roles
    assert plan.count() == 1 + len(contacts) + len(roles)
    assert plan.cleared == {}


def test_given_cascaded_children_stamped_after_cutoff_when_purging_then_purged_with_master(
    store,
):
    order = live(store, ORDER)[0]
    lines = live(store, ORDER_LINE, '"Apttus_Config2__OrderId__c" = ?', order)
    store.delete(store.object(ORDER), order)
    order_stamp = stored(store, ORDER, order)["SystemModstamp"]
    line_stamps = {stored(store, ORDER_LINE, i)["SystemModstamp"] for i in lines}
    other = live(store, "Contact")[0]
    store.delete(store.object("Contact"), other)
    # the cutoff falls between the order's own stamp and its lines' stamps
    cutoff = format_ms(to_ms(datetime.strptime(order_stamp, "%Y-%m-%dT%H:%M:%S.%f%z")) + 1)

    with store.transaction() as conn:
        purged = deletes.purge(conn, store.schema, cutoff)

    assert lines and min(line_stamps) >= cutoff
    assert purged == 1 + len(lines)
    assert stored(store, ORDER, order) == {}
    assert all(stored(store, ORDER_LINE, i) == {} for i in lines)
    assert stored(store, "Contact", other)["IsDeleted"] == 1


def test_given_zero_retention_when_purging_then_everything_deleted_goes(store):
    store.retention = 0.0
    order = live(store, ORDER)[0]
    lines = live(store, ORDER_LINE, '"Apttus_Config2__OrderId__c" = ?', order)
    store.delete(store.object(ORDER), order)
    # stamps run ahead of the frozen wall clock; move the wall clock past them
    store.clock = ModstampClock(lambda: datetime(2026, 11, 23, tzinfo=UTC))

    purged = store.maybe_purge(force=True)

    assert purged == 1 + len(lines)
    assert live(store, ORDER_LINE, '"Apttus_Config2__OrderId__c" = ?', order) == []
