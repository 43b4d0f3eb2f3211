from pathlib import Path

import pytest

from sync.db.models import MIRRORED_MODELS
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping import ColumnType, Direction, MappingError, load_mappings
from sync.mapping.loader import PROJECT_MAPPINGS, parse_mapping

ACCOUNTS = """\
name: accounts
object: Account
table: accounts
direction: read_write
fields:
  Name: {column: name, type: string}
  Phone: {column: phone, type: string}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def error_of(folder: Path) -> str:
    with pytest.raises(MappingError) as caught:
        load_mappings(folder, MIRRORED_SHAPES)
    return str(caught.value)


def test_given_project_mappings_when_loaded_then_one_per_mirrored_table():
    mappings = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)

    assert sorted(m.table for m in mappings) == sorted(MIRRORED_MODELS)
    assert len(list(PROJECT_MAPPINGS.glob("*.yaml"))) == 13
    roles = mappings["account_contact_roles"]
    assert roles.crm_object == "AccountContactRole"
    assert roles.field("role").column == "role"
    assert roles.field("ContactId").reference_to == "Contact"
    assert roles.field("ContactId").type is ColumnType.SFID
    assert mappings["payment_methods"].direction is Direction.READ_WRITE


def test_given_mapping_when_loaded_then_columns_carry_table_limits():
    mappings = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)

    city = mappings["accounts"].field("BillingCity")
    amount = mappings["orders"].field("Apttus_Config2__OrderAmount__c")
    quantity = mappings["assets"].field("Apttus_Config2__Quantity__c")

    assert city.max_length == 40
    assert (amount.precision, amount.scale) == (18, 2)
    assert (quantity.precision, quantity.scale) == (18, 4)


def test_given_mapping_when_fields_listed_then_system_fields_come_first():
    accounts = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)["accounts"]

    assert accounts.crm_fields[:3] == ["Id", "IsDeleted", "SystemModstamp"]
    assert "Billing_Email__c" in accounts.crm_fields


def test_given_malformed_yaml_when_loaded_then_one_message_names_the_file(tmp_path):
    path = write(tmp_path, "accounts.yaml", "name: accounts\nfields: [unclosed\n")

    message = error_of(tmp_path)

    assert str(path) in message
    assert "malformed YAML" in message
    assert "line" in message


def test_given_duplicate_column_when_loaded_then_error_names_mapping_and_field(tmp_path):
    write(
        tmp_path,
        "accounts.yaml",
        ACCOUNTS + "  BillingCity: {column: name, type: string}\n",
    )

    message = error_of(tmp_path)

    assert "accounts.yaml" in message
    assert "mapping 'accounts'" in message
    assert "field 'BillingCity'" in message
    assert "duplicate column 'name'" in message


def test_given_column_not_in_table_when_loaded_then_error_names_field(tmp_path):
    write(tmp_path, "accounts.yaml", ACCOUNTS + "  Fax: {column: fax, type: string}\n")

    message = error_of(tmp_path)

    assert "field 'Fax'" in message
    assert "column 'fax' is not in table 'accounts'" in message


def test_given_type_the_column_cannot_hold_when_loaded_then_refused(tmp_path):
    write(
        tmp_path, "accounts.yaml", ACCOUNTS + "  IsVip__c: {column: billing_city, type: boolean}\n"
    )

    message = error_of(tmp_path)

    assert "field 'IsVip__c'" in message
    assert "'boolean' cannot be stored in column accounts.billing_city" in message


def test_given_unknown_table_when_loaded_then_refused(tmp_path):
    write(tmp_path, "leads.yaml", ACCOUNTS.replace("table: accounts", "table: leads"))

    assert "table 'leads' is not a mirrored table" in error_of(tmp_path)


def test_given_system_column_when_mapped_then_refused(tmp_path):
    write(
        tmp_path,
        "accounts.yaml",
        ACCOUNTS + "  LastModifiedDate: {column: synced_at, type: datetime}\n",
    )

    assert "maintained by the pull itself" in error_of(tmp_path)


def test_given_key_twice_when_loaded_then_refused(tmp_path):
    write(tmp_path, "accounts.yaml", ACCOUNTS + "  Name: {column: billing_city, type: string}\n")

    message = error_of(tmp_path)

    assert "appears twice" in message
    assert "accounts.yaml" in message


def test_given_unknown_type_and_direction_when_loaded_then_every_problem_listed(tmp_path):
    text = ACCOUNTS.replace("direction: read_write", "direction: sideways").replace(
        "type: string}\n  Phone", "type: money}\n  Phone"
    )
    write(tmp_path, "accounts.yaml", text)

    with pytest.raises(MappingError) as caught:
        load_mappings(tmp_path, MIRRORED_SHAPES)

    messages = [str(p) for p in caught.value.problems]
    assert any("direction 'sideways'" in m for m in messages)
    assert any("type 'money'" in m and "field 'Name'" in m for m in messages)


def test_given_two_mappings_for_one_table_when_loaded_then_refused(tmp_path):
    write(tmp_path, "accounts.yaml", ACCOUNTS)
    write(tmp_path, "more_accounts.yaml", ACCOUNTS.replace("name: accounts", "name: more"))

    assert "already filled by mapping 'accounts'" in error_of(tmp_path)


def test_given_empty_folder_when_loaded_then_refused(tmp_path):
    assert "no mapping files" in error_of(tmp_path)


def test_given_filter_when_parsed_then_kept():
    mapping = parse_mapping(
        ACCOUNTS + 'filter: "BillingCountry != null"\n',
        source="x.yaml",
        default_name="x",
        tables=MIRRORED_SHAPES,
    )

    assert mapping is not None
    assert mapping.filter == "BillingCountry != null"


def test_given_bulk_threshold_when_loaded_then_kept_out_of_the_fingerprint(tmp_path):
    write(tmp_path, "accounts.yaml", ACCOUNTS.replace("fields:", "bulk_threshold: 5000\nfields:"))
    with_threshold = load_mappings(tmp_path, MIRRORED_SHAPES)["accounts"]
    write(tmp_path, "accounts.yaml", ACCOUNTS)
    without = load_mappings(tmp_path, MIRRORED_SHAPES)["accounts"]

    assert with_threshold.bulk_threshold == 5000
    assert without.bulk_threshold is None
    assert with_threshold.fingerprint == without.fingerprint


def test_given_negative_bulk_threshold_when_loaded_then_refused(tmp_path):
    write(tmp_path, "accounts.yaml", ACCOUNTS.replace("fields:", "bulk_threshold: -1\nfields:"))

    assert "'bulk_threshold' must be a whole number" in error_of(tmp_path)
