"""Deletes in the sandbox follow each reference's declared relationship.

Master-detail and cascade-delete children go with their parent, a required lookup refuses
the delete, an optional lookup is cleared.
"""

from __future__ import annotations

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

ORDER = "Apttus_Config2__Order__c"
ORDER_LINE = "Apttus_Config2__OrderLineItem__c"
ASSET = "Apttus_Config2__AssetLineItem__c"
INVOICE = "Apttus_Billing__Invoice__c"
INVOICE_LINE = "Apttus_Billing__InvoiceLineItem__c"
PAYMENT_METHOD = "Apttus_Billing__PaymentMethod__c"
AUTHORIZATION = "Billing_Authorization__c"

# the required lookups to Account, which block deleting it
ACCOUNT_LOOKUPS = {
    ORDER: "Apttus_Config2__SoldToAccountId__c",
    ASSET: "Apttus_Config2__AccountId__c",
    INVOICE: "Apttus_Billing__BillToAccountId__c",
    PAYMENT_METHOD: "Apttus_Billing__AccountId__c",
}


def ids(sf, soql: str, *, include_deleted: bool = False) -> list[str]:
    return [r["Id"] for r in sf.query_all(soql, include_deleted=include_deleted)["records"]]


def first_account(sf) -> dict:
    return sf.query("SELECT Id, Name FROM Account ORDER BY Name LIMIT 1")["records"][0]


def records(sf, soql: str) -> dict[str, dict]:
    return {r["Id"]: r for r in sf.query_all(soql, include_deleted=True)["records"]}


def blocking_children(sf, account: str) -> list[str]:
    found = []
    for obj, ref in ACCOUNT_LOOKUPS.items():
        found += ids(sf, f"SELECT Id FROM {obj} WHERE {ref} = '{account}' ORDER BY Id")
    return found


def collection_delete(sf, record_ids: list[str], *, all_or_none: bool) -> list[dict]:
    return sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": ",".join(record_ids), "allOrNone": str(all_or_none).lower()},
    )


def test_given_account_with_orders_when_deleting_then_delete_failed_naming_them(sf):
    account = first_account(sf)
    contacts_before = ids(sf, f"SELECT Id FROM Contact WHERE AccountId = '{account['Id']}'")
    order_names = [
        r["Name"]
        for r in sf.query(
            f"SELECT Name FROM {ORDER} WHERE {ACCOUNT_LOOKUPS[ORDER]} = '{account['Id']}'"
        )["records"]
    ]

    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.Account.delete(account["Id"])

    error = failure.value.content[0]
    assert error["errorCode"] == "DELETE_FAILED"
    assert error["message"].startswith(
        f"Your attempt to delete {account['Name']} could not be completed because it is "
        "associated with the following orders: "
    )
    assert order_names[0] in error["message"]
    assert "invoices: " in error["message"]
    assert sf.Account.get(account["Id"])["IsDeleted"] is False
    assert ids(sf, f"SELECT Id FROM Contact WHERE AccountId = '{account['Id']}'") == (
        contacts_before
    )


def test_given_account_without_blocking_children_when_deleting_then_contacts_and_roles_go(sf):
    account = first_account(sf)["Id"]
    blockers = blocking_children(sf, account)
    for start in range(0, len(blockers), 200):
        results = collection_delete(sf, blockers[start : start + 200], all_or_none=True)
        assert all(r["success"] for r in results), results
    contacts = ids(sf, f"SELECT Id FROM Contact WHERE AccountId = '{account}'")
    contact_list = ", ".join(f"'{c}'" for c in contacts)
    roles = ids(
        sf,
        f"SELECT Id FROM AccountContactRole WHERE AccountId = '{account}' "
        f"OR ContactId IN ({contact_list})",
    )
    other_contacts = sf.query(f"SELECT COUNT() FROM Contact WHERE AccountId != '{account}'")

    sf.Account.delete(account)

    gone = records(
        sf, f"SELECT Id, IsDeleted, SystemModstamp FROM Contact WHERE AccountId = '{account}'"
    )
    gone_roles = records(sf, "SELECT Id, IsDeleted FROM AccountContactRole")
    deleted_account = records(
        sf, f"SELECT Id, IsDeleted, SystemModstamp FROM Account WHERE Id = '{account}'"
    )[account]
    assert contacts and roles
    assert sorted(gone) == sorted(contacts)
    assert all(r["IsDeleted"] for r in gone.values())
    assert all(r["SystemModstamp"] > deleted_account["SystemModstamp"] for r in gone.values())
    assert all(gone_roles[r]["IsDeleted"] for r in roles)
    assert deleted_account["IsDeleted"] is True
    assert sf.query(f"SELECT COUNT() FROM Contact WHERE AccountId != '{account}'") == (
        other_contacts
    )


def test_given_children_then_parent_in_one_collection_when_deleting_then_all_succeed(sf):
    account = first_account(sf)["Id"]
    blockers = blocking_children(sf, account)
    assert len(blockers) < 200

    results = collection_delete(sf, [*blockers, account], all_or_none=True)

    assert all(r["success"] for r in results), [r for r in results if not r["success"]]
    assert sf.query(f"SELECT COUNT() FROM Account WHERE Id = '{account}'")["totalSize"] == 0


def test_given_blocked_record_in_collection_when_not_all_or_none_then_only_it_fails(sf):
    account = first_account(sf)["Id"]
    contact = ids(sf, f"SELECT Id FROM Contact WHERE AccountId != '{account}' LIMIT 1")[0]

    results = collection_delete(sf, [account, contact], all_or_none=False)

    assert [r["success"] for r in results] == [False, True]
    assert results[0]["id"] == account
    assert results[0]["errors"][0]["statusCode"] == "DELETE_FAILED"
    assert "orders: " in results[0]["errors"][0]["message"]
    assert sf.query(f"SELECT COUNT() FROM Contact WHERE Id = '{contact}'")["totalSize"] == 0


def test_given_blocked_record_in_collection_when_all_or_none_then_nothing_deleted(sf):
    account = first_account(sf)["Id"]
    contact = ids(sf, f"SELECT Id FROM Contact WHERE AccountId != '{account}' LIMIT 1")[0]

    results = collection_delete(sf, [contact, account], all_or_none=True)

    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "DELETE_FAILED"
    assert sf.query(f"SELECT COUNT() FROM Contact WHERE Id = '{contact}'")["totalSize"] == 1


def test_given_order_when_deleting_then_its_lines_deleted_with_it(sf):
    order = ids(sf, f"SELECT Id FROM {ORDER} ORDER BY Id LIMIT 1")[0]
    lines = ids(sf, f"SELECT Id FROM {ORDER_LINE} WHERE Apttus_Config2__OrderId__c = '{order}'")

    sf.__getattr__(ORDER).delete(order)

    after = records(
        sf, f"SELECT Id, IsDeleted FROM {ORDER_LINE} WHERE Apttus_Config2__OrderId__c = '{order}'"
    )
    assert lines
    assert sorted(after) == sorted(lines)
    assert all(r["IsDeleted"] for r in after.values())


def test_given_invoice_when_deleting_then_its_lines_deleted_with_it(sf):
    invoice = ids(sf, f"SELECT Id FROM {INVOICE} ORDER BY Id LIMIT 1")[0]
    where = f"Apttus_Billing__InvoiceId__c = '{invoice}'"
    lines = ids(sf, f"SELECT Id FROM {INVOICE_LINE} WHERE {where}")

    sf.__getattr__(INVOICE).delete(invoice)

    assert lines
    assert ids(sf, f"SELECT Id FROM {INVOICE_LINE} WHERE {where}") == []
    assert sorted(
        ids(
            sf,
            f"SELECT Id FROM {INVOICE_LINE} WHERE {where} AND IsDeleted = true",
            include_deleted=True,
        )
    ) == sorted(lines)


def test_given_contact_when_deleting_then_roles_go_and_account_stays(sf):
    contact = sf.query("SELECT ContactId, AccountId FROM AccountContactRole ORDER BY Id LIMIT 1")[
        "records"
    ][0]
    roles = ids(sf, f"SELECT Id FROM AccountContactRole WHERE ContactId = '{contact['ContactId']}'")

    sf.Contact.delete(contact["ContactId"])

    assert roles
    assert (
        ids(sf, f"SELECT Id FROM AccountContactRole WHERE ContactId = '{contact['ContactId']}'")
        == []
    )
    assert sf.Account.get(contact["AccountId"])["IsDeleted"] is False


def test_given_contact_with_authorization_when_deleting_then_refused_naming_it(sf):
    contact = sf.query("SELECT Id, AccountId, FirstName, LastName FROM Contact LIMIT 1")["records"][
        0
    ]
    sf.__getattr__(AUTHORIZATION).create(
        {
            "Name": "AUTH-1",
            "Account__c": contact["AccountId"],
            "Contact__c": contact["Id"],
            "Authorized_By_Name__c": "Ann Lee",
            "Accepted_At__c": "2026-11-22T10:00:00.000+0000",
        }
    )

    with pytest.raises(SalesforceMalformedRequest) as failure:
        sf.Contact.delete(contact["Id"])

    message = failure.value.content[0]["message"]
    assert failure.value.content[0]["errorCode"] == "DELETE_FAILED"
    assert message.startswith(
        f"Your attempt to delete {contact['FirstName']} {contact['LastName']}"
    )
    assert message.endswith("billing authorizations: AUTH-1")
    assert sf.Contact.get(contact["Id"])["IsDeleted"] is False


def test_given_product_when_deleting_then_optional_lookups_cleared_and_stamped(sf):
    product = sf.query(
        f"SELECT Apttus_Config2__ProductId__c FROM {ORDER_LINE} "
        "WHERE Apttus_Config2__ProductId__c != null ORDER BY Id LIMIT 1"
    )["records"][0]["Apttus_Config2__ProductId__c"]
    soql = (
        f"SELECT Id, LastModifiedDate, SystemModstamp FROM {{}} "
        f"WHERE Apttus_Config2__ProductId__c = '{product}'"
    )
    lines_before = records(sf, soql.format(ORDER_LINE))
    assets_before = records(sf, soql.format(ASSET))

    sf.Product2.delete(product)

    lines_after = records(
        sf,
        f"SELECT Id, IsDeleted, Apttus_Config2__ProductId__c, LastModifiedDate, SystemModstamp "
        f"FROM {ORDER_LINE} WHERE Id IN ({', '.join(repr(i) for i in lines_before)})",
    )
    assert lines_before and assets_before
    assert records(sf, soql.format(ASSET)) == {}
    for record_id, before in lines_before.items():
        after = lines_after[record_id]
        assert after["IsDeleted"] is False
        assert after["Apttus_Config2__ProductId__c"] is None
        assert after["SystemModstamp"] > before["SystemModstamp"]
        assert after["LastModifiedDate"] == after["SystemModstamp"]


def test_given_describe_when_reading_relationships_then_delete_rules_reported(sf):
    role_fields = {f["name"]: f for f in sf.AccountContactRole.describe()["fields"]}
    order_fields = {f["name"]: f for f in sf.__getattr__(ORDER).describe()["fields"]}
    account = sf.Account.describe()
    children = {(r["childSObject"], r["field"]): r for r in account["childRelationships"]}

    assert role_fields["AccountId"]["cascadeDelete"] is True
    assert role_fields["AccountId"]["relationshipOrder"] == 0
    assert role_fields["ContactId"]["relationshipOrder"] == 1
    assert role_fields["AccountId"]["relationshipName"] == "Account"
    assert order_fields[ACCOUNT_LOOKUPS[ORDER]]["cascadeDelete"] is False
    assert order_fields[ACCOUNT_LOOKUPS[ORDER]]["restrictedDelete"] is True
    assert order_fields[ACCOUNT_LOOKUPS[ORDER]]["relationshipOrder"] is None
    assert children[("Contact", "AccountId")]["cascadeDelete"] is True
    assert children[("Contact", "AccountId")]["relationshipName"] == "Contacts"
    assert children[(ORDER, ACCOUNT_LOOKUPS[ORDER])]["restrictedDelete"] is True
    assert children[("AccountContactRole", "AccountId")]["cascadeDelete"] is True
