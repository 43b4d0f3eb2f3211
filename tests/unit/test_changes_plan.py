"""From staged changes to CRM writes: payment-method rules and minimal updates."""

from __future__ import annotations

import pytest

from sync.changes.plan import (
    MethodState,
    PlanError,
    PlanInput,
    Staged,
    WriteTargets,
    plan_items,
    project_methods,
)
from sync.changes.rules import CardWords, ChangeKind, Operation
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings

TARGETS = WriteTargets.from_mappings(load_mappings(default_mappings_dir(None), MIRRORED_SHAPES))
ACCOUNT = "001000000000001AAA"


def method(ref: str, *, default: bool = False, status: str = "Active") -> MethodState:
    return MethodState(ref, default, status, CardWords("Visa", ref[-4:]))


def card(n: int, *, default: bool = False) -> Staged:
    payload = {
        "token": f"tok_{n}",
        "brand": "Visa",
        "last_four": "4242",
        "exp_month": 12,
        "exp_year": 2031,
        "is_default": default,
        "is_one_time": False,
    }
    return Staged(n, ChangeKind.ADD_CARD, None, payload, "")


def change(n: int, kind: ChangeKind, target: str) -> Staged:
    return Staged(n, kind, target, {}, "")


MIRRORED = [method("a0F0000000000001", default=True), method("a0F0000000000002")]


def defaults(methods: list[MethodState]) -> list[str]:
    return [m.ref for m in methods if m.is_default and m.active]


def test_given_make_default_when_projected_then_exactly_one_default():
    projected = project_methods(MIRRORED, [change(1, ChangeKind.MAKE_DEFAULT, "a0F0000000000002")])
    assert defaults(projected) == ["a0F0000000000002"]


def test_given_the_default_removed_when_projected_then_refused_with_the_rule():
    with pytest.raises(PlanError, match="make another method the default first"):
        project_methods(MIRRORED, [change(1, ChangeKind.REMOVE_METHOD, "a0F0000000000001")])


def test_given_make_default_then_remove_the_old_default_when_projected_then_allowed():
    projected = project_methods(
        MIRRORED,
        [
            change(1, ChangeKind.MAKE_DEFAULT, "a0F0000000000002"),
            change(2, ChangeKind.REMOVE_METHOD, "a0F0000000000001"),
        ],
    )
    assert defaults(projected) == ["a0F0000000000002"]
    assert [m.status for m in projected] == ["Inactive", "Active"]


def test_given_an_inactive_or_unknown_method_when_changed_then_refused():
    mirrored = [*MIRRORED, method("a0F0000000000003", status="Inactive")]
    for target in ("a0F0000000000003", "a0F0000000000009"):
        with pytest.raises(PlanError, match="no longer active"):
            project_methods(mirrored, [change(1, ChangeKind.MAKE_DEFAULT, target)])


def test_given_a_first_card_on_an_account_without_default_then_it_becomes_the_default():
    projected = project_methods([method("a0F0000000000002")], [card(1)])
    assert defaults(projected) == ["new:1"]


def test_given_a_new_default_card_when_planned_then_old_default_off_and_card_upserted():
    items = plan_items(
        PlanInput(ACCOUNT, "k1", TARGETS, list(MIRRORED)),
        [card(7, default=True)],
    )
    update, create = items
    assert update.operation is Operation.UPDATE
    assert (update.record_sfid, update.field) == (
        "a0F0000000000001",
        "Apttus_Billing__IsDefault__c",
    )
    assert (update.old_value, update.new_value) == (True, False)
    assert create.operation is Operation.CREATE
    assert create.external_key == "bs-k1-2"
    assert create.sobject == "Apttus_Billing__PaymentMethod__c"
    body = create.new_value
    assert body["Apttus_Billing__PaymentToken__c"] == "tok_7"
    assert body["Apttus_Billing__IsDefault__c"] is True
    assert body["Apttus_Billing__AccountId__c"] == ACCOUNT
    assert body["Billing_Sync_Key__c"] == "bs-k1-2"
    assert not any("number" in k.lower() or "cvc" in k.lower() for k in body)


def test_given_make_default_when_planned_then_two_updates_in_one_set():
    items = plan_items(
        PlanInput(ACCOUNT, "k2", TARGETS, list(MIRRORED)),
        [change(1, ChangeKind.MAKE_DEFAULT, "a0F0000000000002")],
    )
    assert sorted((i.record_sfid, i.old_value, i.new_value) for i in items) == [
        ("a0F0000000000001", True, False),
        ("a0F0000000000002", False, True),
    ]


def test_given_account_fields_when_planned_then_updates_with_the_crm_field_names():
    staged = Staged(
        1,
        ChangeKind.ACCOUNT_FIELD,
        "billing_email",
        {"label": "Billing email", "saw": "a@x.com", "new": "b@x.com"},
        "",
    )
    (item,) = plan_items(PlanInput(ACCOUNT, "k3", TARGETS, []), [staged])
    assert (item.sobject, item.record_sfid, item.field) == ("Account", ACCOUNT, "Billing_Email__c")
    assert item.label == "Billing email: a@x.com -> b@x.com"
