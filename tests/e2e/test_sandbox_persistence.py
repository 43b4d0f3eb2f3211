"""The sandbox's ``--db`` file: data and Ids survive a restart of the process."""

from __future__ import annotations

from simple_salesforce import Salesforce

from tests.support.sandbox import running_sandbox, simple_salesforce


def client(url: str) -> Salesforce:
    return simple_salesforce(url, "59.0")


def test_given_db_file_when_sandbox_restarts_then_data_survives_and_ids_continue(tmp_path):
    db = str(tmp_path / "crm.db")
    with running_sandbox("--db", db, "--seed", "2", "--seed-random", "4") as first:
        sf = client(first.url)
        created = sf.Account.create({"Name": "Survivor Ltd."})["id"]
        deleted = sf.query("SELECT Id FROM Contact ORDER BY Id LIMIT 1")["records"][0]["Id"]
        sf.Contact.delete(deleted)
        counts = {
            o: sf.query(f"SELECT COUNT() FROM {o}")["totalSize"] for o in ("Account", "Contact")
        }
        stamp = sf.Account.get(created)["SystemModstamp"]
    assert first.process.returncode == 0

    with running_sandbox("--db", db, "--seed", "2", "--seed-random", "4") as second:
        sf = client(second.url)
        survivor = sf.Account.get(created)
        after = {
            o: sf.query(f"SELECT COUNT() FROM {o}")["totalSize"] for o in ("Account", "Contact")
        }
        in_bin = sf.query_all(
            f"SELECT IsDeleted FROM Contact WHERE Id = '{deleted}'", include_deleted=True
        )["records"]
        newer = sf.Account.create({"Name": "Newcomer"})["id"]
        newer_stamp = sf.Account.get(newer)["SystemModstamp"]

    assert survivor["Name"] == "Survivor Ltd."
    assert after == counts
    assert in_bin == [{"attributes": in_bin[0]["attributes"], "IsDeleted": True}]
    assert newer != created
    assert newer_stamp > stamp


def test_given_same_seed_when_started_twice_then_same_data():
    soql = "SELECT Id, Name, Phone FROM Account ORDER BY Id"
    with running_sandbox("--seed", "3", "--seed-random", "9") as one:
        first = client(one.url).query(soql)["records"]
    with running_sandbox("--seed", "3", "--seed-random", "9") as two:
        second = client(two.url).query(soql)["records"]
    with running_sandbox("--seed", "3", "--seed-random", "10") as three:
        other = client(three.url).query(soql)["records"]

    assert first == second
    assert [r["Name"] for r in first] != [r["Name"] for r in other]
