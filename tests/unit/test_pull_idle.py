import datetime as dt
from urllib.parse import unquote

import pytest

from sync.context import SyncContext
from sync.crm.composite import CompositeReads
from sync.db import repo
from sync.db.engine import make_engine, upgrade
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping import load_mappings
from sync.mapping.loader import PROJECT_MAPPINGS
from sync.mapping.transform import format_sf_datetime
from sync.pull import changed_mappings, check_changes
from sync.settings import Settings

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
WATERMARK = NOW - dt.timedelta(minutes=10)


class FakeCrm(CompositeReads):
    """Answers /composite idle checks: a record newer than the watermark for `changed`."""

    def __init__(self, changed=()):
        self.changed = set(changed)
        self.calls = []
        self.api_calls = 0

    def data_url(self, path):
        return f"/services/data/v59.0/{path}"

    def composite(self, subrequests):
        self.api_calls += 1
        self.calls.append([unquote(s["url"]) for s in subrequests])
        answers = []
        for sub in subrequests:
            soql = unquote(sub["url"])
            obj = soql.split(" FROM ")[1].split(" ")[0]
            stamp = WATERMARK + dt.timedelta(seconds=1 if obj in self.changed else -0.5)
            records = [{"Id": "x", "SystemModstamp": format_sf_datetime(stamp)}]
            answers.append(
                {"httpStatusCode": 200, "body": {"totalSize": 1, "done": True, "records": records}}
            )
        return answers

    def close(self):
        pass


@pytest.fixture
def ctx(sqlite_database_url):
    engine = make_engine(sqlite_database_url)
    upgrade(engine)
    mappings = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)
    context = SyncContext(
        settings=Settings(database_url=sqlite_database_url),
        engine=engine,
        crm=FakeCrm(),  # type: ignore[arg-type]
        mappings=mappings,
        clock=lambda: NOW,
    )
    with engine.begin() as conn:
        for mapping in mappings:
            repo.save_state(
                conn,
                mapping.name,
                NOW,
                watermark=WATERMARK,
                last_pass_finished_at=NOW,
                fingerprint=mapping.fingerprint,
            )
    yield context
    engine.dispose()


def test_given_thirteen_idle_mappings_when_checked_then_three_calls_of_at_most_five_queries(ctx):
    assert changed_mappings(ctx, now=NOW) == []

    assert ctx.crm.api_calls == 3
    assert [len(c) for c in ctx.crm.calls] == [5, 5, 3]
    assert all(
        "queryAll?q=SELECT Id, SystemModstamp FROM" in url for c in ctx.crm.calls for url in c
    )
    assert all("LIMIT 1" in url for c in ctx.crm.calls for url in c)


def test_given_record_in_same_second_but_before_watermark_when_checked_then_unchanged(ctx):
    # SOQL bounds have whole seconds: the answer is compared with the exact watermark.
    ctx.crm.changed = set()

    assert changed_mappings(ctx, ["accounts"], now=NOW) == []


def test_given_changes_when_checked_then_those_mappings_and_crm_time_hint(ctx):
    ctx.crm.changed = {"Account", "AccountContactRole"}

    check = check_changes(ctx, now=NOW)
    changed = list(check.changed)

    assert changed == ["account_contact_roles", "accounts"]
    assert check.hint("accounts").crm_time == WATERMARK + dt.timedelta(seconds=1)


def test_given_paused_and_never_pulled_mappings_when_checked_then_not_asked(ctx):
    with ctx.engine.begin() as conn:
        repo.save_state(conn, "accounts", NOW, paused=True)
        repo.save_state(conn, "contacts", NOW, watermark=None, last_pass_finished_at=None)

    changed = changed_mappings(ctx, ["accounts", "contacts", "products"], now=NOW)

    assert changed == ["contacts"]
    # the never-pulled mapping is not asked for changes; its full load is counted in
    # the same call instead (for the choice between REST and Bulk)
    assert len(ctx.crm.calls) == 1
    asks = [u for u in ctx.crm.calls[0] if "COUNT()" not in u]
    assert asks == [u for u in ctx.crm.calls[0] if "FROM Product2" in u]
    assert [u for u in ctx.crm.calls[0] if "COUNT()" in u] == [
        "/services/data/v59.0/queryAll?q=SELECT COUNT() FROM Contact"
    ]


def test_given_record_error_due_when_checked_then_mapping_pulled(ctx):
    with ctx.engine.begin() as conn:
        repo.save_record_errors(
            conn, "orders", {"a0A000000000001AAA": "bad"}, now=NOW - dt.timedelta(minutes=2)
        )

    assert changed_mappings(ctx, ["orders"], now=NOW) == ["orders"]
    assert ctx.crm.api_calls == 0


def test_given_mapping_changed_since_load_when_checked_then_reloaded_without_asking(ctx):
    with ctx.engine.begin() as conn:
        repo.save_state(conn, "orders", NOW, fingerprint="old")

    assert changed_mappings(ctx, ["orders", "products"], now=NOW) == ["orders"]
    assert ctx.crm.api_calls == 1
    assert all("FROM Product2" in url for url in ctx.crm.calls[0] if "COUNT()" not in url)
