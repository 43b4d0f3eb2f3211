"""`billing-sync sync`, `status`, `mappings check`, `db upgrade` and `push` as processes."""

import json
import shutil

import pytest

from sync.mapping.loader import PROJECT_MAPPINGS
from tests.support.pull import hook

pytestmark = pytest.mark.slow


def test_given_malformed_mapping_file_when_sync_then_one_clear_error_and_exit_2(run, tmp_path):
    shutil.copytree(PROJECT_MAPPINGS, tmp_path / "mappings")
    broken = tmp_path / "mappings" / "orders.yaml"
    broken.write_text(broken.read_text() + "fields: [this is not closed\n")

    result = run("sync", BILLING_SYNC_MAPPINGS_DIR=str(tmp_path / "mappings"))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{broken}: malformed YAML" in result.stderr
    assert result.stdout == ""


def test_given_mapping_naming_unknown_field_when_checked_then_file_mapping_field_named(
    run, tmp_path
):
    shutil.copytree(PROJECT_MAPPINGS, tmp_path / "mappings")
    accounts = tmp_path / "mappings" / "accounts.yaml"
    accounts.write_text(accounts.read_text() + "  Fax__c: {column: phone, type: string}\n")
    accounts.write_text(
        accounts.read_text().replace("  Phone: {column: phone, type: string}\n", "")
    )

    result = run("mappings", "check", BILLING_SYNC_MAPPINGS_DIR=str(tmp_path / "mappings"))

    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"billing-sync: invalid mapping: {accounts}: mapping 'accounts': field 'Fax__c': "
        "field not found on Account in the CRM"
    )


def test_given_valid_mappings_when_checked_then_listed_with_call_count(run):
    result = run("mappings", "check")

    assert result.returncode == 0, result.stderr
    assert "13 mappings" in result.stdout
    assert "match the CRM (1 API call)" in result.stdout


def test_given_value_too_long_for_column_when_synced_then_recorded_and_rest_synced(
    run, tmp_path, sf
):
    # A deployment that keeps the street in a 40-character column: longer streets
    # cannot be stored faithfully.
    folder = tmp_path / "mappings"
    shutil.copytree(PROJECT_MAPPINGS, folder)
    accounts = folder / "accounts.yaml"
    text = accounts.read_text().replace("  BillingCity: {column: billing_city, type: string}\n", "")
    text = text.replace(
        "{column: billing_street, type: string}", "{column: billing_city, type: string}"
    )
    accounts.write_text(text)
    env = {"BILLING_SYNC_MAPPINGS_DIR": str(folder)}
    records = sf.query("SELECT Id FROM Account ORDER BY Id")["records"]
    bad = records[3]["Id"]
    sf.Account.update(bad, {"BillingStreet": "1 Extraordinarily Long Boulevard Name, Building 7"})

    first = run("sync", "--json", **env)

    assert first.returncode == 0, first.stderr
    result = {m["mapping"]: m for m in json.loads(first.stdout)["mappings"]}
    assert result["accounts"]["outcome"] == "ok"
    assert result["accounts"]["record_errors"] == 1
    status = json.loads(run("status", "--json", **env).stdout)
    accounts_status = {m["mapping"]: m for m in status["mappings"]}["accounts"]
    assert accounts_status["records"] == len(records) - 1
    assert accounts_status["record_errors"] == 1
    [error] = status["recent_record_errors"]
    assert error["sfid"] == bad
    assert "BillingStreet" in error["reason"]
    assert "do not fit column billing_city (40 characters)" in error["reason"]
    warnings = run("mappings", "check", **env).stdout
    assert "longer values become record errors" in warnings

    sf.Account.update(bad, {"BillingStreet": "1 Short Street"})
    second = run("sync", "--json", **env)

    assert second.returncode == 0
    status = json.loads(run("status", "--json", **env).stdout)
    accounts_status = {m["mapping"]: m for m in status["mappings"]}["accounts"]
    assert accounts_status["records"] == len(records)
    assert accounts_status["record_errors"] == 0


def test_given_synced_mirror_when_synced_again_then_json_reports_three_calls(run):
    assert run("sync").returncode == 0

    result = run("sync", "--json")

    document = json.loads(result.stdout)
    assert result.returncode == 0
    assert document["ok"] is True
    assert document["api_calls"] == 3
    assert {m["outcome"] for m in document["mappings"]} == {"unchanged"}


def test_given_text_output_when_synced_then_one_line_per_mapping_and_summary(run):
    result = run("sync", "--mapping", "products")

    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("products ")
    assert " ok " in lines[0]
    assert lines[-1].startswith("sync: 1 mapping (1 ok), 10 records")


def test_given_unknown_mapping_when_synced_then_exit_2(run):
    result = run("sync", "--mapping", "leads")

    assert result.returncode == 2
    assert "no mapping called 'leads'" in result.stderr


def test_given_api_limit_spent_when_synced_then_distinct_exit_code(run, crm_sandbox):
    assert run("sync", "--mapping", "products").returncode == 0
    used = json.loads(run("status", "--json").stdout)["api_usage"]["used"]
    hook(crm_sandbox, "faults", {"daily_limit": used + 5})

    result = run("sync", "--full")

    assert result.returncode == 75
    assert "REQUEST_LIMIT_EXCEEDED" in result.stderr
    status = json.loads(run("status", "--json").stdout)
    assert any("REQUEST_LIMIT_EXCEEDED" in (m["last_error"] or "") for m in status["mappings"])
    hook(crm_sandbox, "faults", method="DELETE")
    assert run("sync").returncode == 0


def test_given_fresh_database_when_upgraded_then_reports_revision(run):
    result = run("db", "upgrade")

    assert result.returncode == 0
    assert "upgraded from empty" in result.stdout
    assert "is current" in run("db", "upgrade").stdout


def test_given_no_outbox_when_push_then_says_so_and_succeeds(run):
    text = run("push")
    data = run("push", "--json")

    assert text.returncode == 0
    assert "nothing to push" in text.stdout
    assert json.loads(data.stdout)["pushed"] == 0
