import copy

import pytest

from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping import MappingError, load_mappings, validate_mappings
from sync.mapping.loader import PROJECT_MAPPINGS, parse_mapping
from sync.mapping.spec import MappingSet
from sync.sandbox.describe import describe_object
from sync.sandbox.schema import load_schema


def describes(mappings):
    schema = load_schema()
    return {m.crm_object: describe_object(schema.get(m.crm_object), "59.0") for m in mappings}


def one(text, name="accounts"):
    mapping = parse_mapping(
        text, source=f"mappings/{name}.yaml", default_name=name, tables=MIRRORED_SHAPES
    )
    return MappingSet({mapping.name: mapping})


def test_given_default_mappings_when_validated_against_sandbox_describe_then_valid():
    mappings = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)

    report = validate_mappings(mappings, describes(mappings))

    assert report.mappings.names == mappings.names
    assert report.warnings == []


def test_given_missing_field_when_validated_then_message_names_file_mapping_field():
    mappings = one(
        "object: Account\ntable: accounts\nfields:\n  Fax__c: {column: phone, type: string}\n"
    )

    with pytest.raises(MappingError) as caught:
        validate_mappings(mappings, describes(mappings))

    assert str(caught.value) == (
        "invalid mapping: mappings/accounts.yaml: mapping 'accounts': field 'Fax__c': "
        "field not found on Account in the CRM"
    )


def test_given_type_that_cannot_map_when_validated_then_refused():
    mappings = one(
        "object: Apttus_Config2__Order__c\ntable: orders\nfields:\n"
        "  Apttus_Config2__Status__c: {column: amount, type: decimal}\n",
        name="orders",
    )

    with pytest.raises(MappingError) as caught:
        validate_mappings(mappings, describes(mappings))

    problem = caught.value.problems[0]
    assert (problem.mapping, problem.field) == ("orders", "Apttus_Config2__Status__c")
    assert "CRM type 'picklist' cannot map to 'decimal'" in problem.message


def test_given_reference_to_other_object_when_validated_then_refused():
    mappings = one(
        "object: Contact\ntable: contacts\nreferences:\n"
        "  AccountId: {column: account_sfid, to: Contact}\n",
        name="contacts",
    )

    with pytest.raises(MappingError, match="references Account in the CRM, not Contact"):
        validate_mappings(mappings, describes(mappings))


def test_given_unknown_object_when_validated_then_refused():
    mappings = one("object: Lead\ntable: accounts\nfields:\n  Name: {column: name, type: string}\n")

    with pytest.raises(MappingError, match="object 'Lead' not found in the CRM"):
        validate_mappings(mappings, {"Lead": None})


def test_given_other_letter_case_when_validated_then_canonical_names_used():
    mappings = one(
        "object: account\ntable: accounts\nfields:\n"
        "  billingcity: {column: billing_city, type: string}\n"
    )
    describe = describes(load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES))["Account"]

    report = validate_mappings(mappings, {"account": describe})

    mapping = report.mappings["accounts"]
    assert mapping.crm_object == "Account"
    assert mapping.fields[0].crm_name == "BillingCity"


def test_given_crm_field_longer_than_column_when_validated_then_warned_not_refused():
    mappings = one(
        "object: Account\ntable: accounts\nfields:\n  Name: {column: billing_city, type: string}\n"
    )

    report = validate_mappings(mappings, describes(mappings))

    assert len(report.warnings) == 1
    assert "the CRM allows 255 characters, column billing_city holds 40" in str(report.warnings[0])


def test_given_fractional_number_to_integer_when_validated_then_refused():
    mappings = one(
        "object: Apttus_Billing__PaymentMethod__c\ntable: payment_methods\nfields:\n"
        "  Apttus_Billing__CardExpirationMonth__c:\n"
        "    {column: card_expiration_month, type: integer}\n",
        name="payment_methods",
    )
    describe = copy.deepcopy(describes(mappings)["Apttus_Billing__PaymentMethod__c"])
    for f in describe["fields"]:
        if f["name"] == "Apttus_Billing__CardExpirationMonth__c":
            f["type"], f["scale"] = "double", 2

    with pytest.raises(MappingError, match="with 2 decimals cannot map to 'integer'"):
        validate_mappings(mappings, {"Apttus_Billing__PaymentMethod__c": describe})
