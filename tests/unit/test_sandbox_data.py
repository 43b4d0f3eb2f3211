"""Pure parts of the sandbox: Ids, the modstamp clock, the seeded data."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from sync.sandbox import ids
from sync.sandbox.clock import ModstampClock, format_ms, to_ms
from sync.sandbox.schema import load_schema
from sync.sandbox.seed import seed
from sync.sandbox.store import Store

FROZEN = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_given_salesforce_documented_id_when_checksumming_then_known_suffix():
    assert ids.to_18("001D000000IqhSL") == "001D000000IqhSLIAZ"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("001D000000IqhSL", "001D000000IqhSLIAZ"),
        ("001D000000IqhSLIAZ", "001D000000IqhSLIAZ"),
        ("001D000000IqhSLiaz", "001D000000IqhSLIAZ"),
        ("001D000000IqhSLIAA", None),
        ("001D000000IqhS", None),
        ("001D000000Iqh-LIAZ", None),
    ],
)
def test_given_id_text_when_normalizing_then_18_chars_or_none(value, expected):
    assert ids.normalize(value) == expected


def test_given_allocator_when_observing_stored_ids_then_new_ids_continue_after_them():
    allocator = ids.IdAllocator()
    allocator.observe("001", ids.counter_of(ids.make_id("001", 41)))

    fresh = allocator.new("001")

    assert ids.counter_of(fresh) == 42
    assert ids.is_valid(fresh)
    assert fresh.startswith("0015g0")


def test_given_frozen_wall_clock_when_stamping_then_each_stamp_one_ms_later():
    clock = ModstampClock(lambda: FROZEN)

    stamps = [clock.next_ms() for _ in range(5)]

    assert stamps == [to_ms(FROZEN) + n for n in range(5)]
    assert format_ms(stamps[0]) == "2026-11-22T10:00:00.000+0000"


def test_given_recent_stamps_when_reserving_a_block_then_it_ends_now_and_never_overlaps():
    clock = ModstampClock(lambda: FROZEN)
    before = clock.next_ms()

    first, last = clock.reserve(10_000)
    after = clock.next_ms()

    assert first == before + 1
    assert last == to_ms(FROZEN) + 1
    assert after > last


def _seeded(accounts: int, random_seed: int) -> Store:
    store = Store(load_schema(), clock=ModstampClock(lambda: FROZEN))
    seed(store, accounts, random_seed, today=FROZEN.date())
    return store


def test_given_same_random_seed_when_seeding_twice_then_identical_rows():
    one, two = _seeded(5, 3), _seeded(5, 3)
    sql = 'SELECT * FROM "Apttus_Billing__PaymentMethod__c" ORDER BY "Id"'

    assert one.conn.execute(sql).fetchall() == two.conn.execute(sql).fetchall()


def test_given_seeded_accounts_when_inspecting_then_billing_rules_hold():
    store = _seeded(40, 1)
    q = store.conn.execute

    admins = Counter(
        row[0]
        for row in q(
            'SELECT "AccountId" FROM "AccountContactRole" WHERE "Role" = \'Billing Admin\''
        )
    )
    defaults = dict(
        q(
            'SELECT "Apttus_Billing__AccountId__c", SUM("Apttus_Billing__IsDefault__c") '
            'FROM "Apttus_Billing__PaymentMethod__c" GROUP BY 1'
        ).fetchall()
    )
    historical_with_attachment = q(
        'SELECT COUNT(*) FROM "Apttus_Billing__Invoice__c" '
        'WHERE "Apttus_Billing__Status__c" = \'Historical\' AND "Has_Attachment__c" = 1'
    ).fetchone()[0]
    invoices_per_account = set(
        row[0]
        for row in q(
            'SELECT COUNT(*) FROM "Apttus_Billing__Invoice__c" '
            'GROUP BY "Apttus_Billing__BillToAccountId__c"'
        )
    )
    last_fours = [
        row[0]
        for row in q(
            'SELECT "Apttus_Billing__CardLastFour__c" FROM "Apttus_Billing__PaymentMethod__c" '
            'WHERE "Apttus_Billing__CardLastFour__c" IS NOT NULL'
        )
    ]
    dialer = q(
        'SELECT COUNT(DISTINCT a."Apttus_Config2__AccountId__c") '
        'FROM "Apttus_Config2__AssetLineItem__c" a JOIN "Product2" p '
        'ON p."Id" = a."Apttus_Config2__ProductId__c" WHERE p."Family" = \'Dialer Minutes\''
    ).fetchone()[0]

    assert len(admins) == 40
    assert set(admins.values()) <= {1, 2}
    assert set(defaults.values()) == {1}
    assert historical_with_attachment == 0
    assert invoices_per_account == {24}
    assert all(len(v) == 4 and v.isdigit() for v in last_fours)
    assert dialer == 40
    assert store.count(store.schema.objects["account"]) == 40


def test_given_seed_when_reading_modstamps_then_unique_and_not_after_now():
    store = _seeded(3, 2)
    stamps = [
        row[0]
        for obj in store.schema.objects.values()
        for row in store.conn.execute(f'SELECT "SystemModstamp" FROM "{obj.name}"')
    ]

    assert len(stamps) == len(set(stamps))
    assert max(stamps) <= "2026-11-22T10:00:00.000+0000"


def _locator(rows: int):
    from array import array

    from sync.sandbox.queries import Locator

    account = load_schema().get("Account")
    assert account is not None
    return Locator(account, [], array("q", range(rows)), 200, False)


def test_given_idle_locator_when_ttl_passes_then_it_expires():
    import time

    from sync.sandbox.queries import LocatorCache

    cache = LocatorCache(ttl=0.05)
    locator_id = cache.add(_locator(10))
    assert cache.get(locator_id) is not None
    time.sleep(0.1)

    assert cache.get(locator_id) is None
    assert len(cache) == 0


def test_given_row_budget_when_adding_locators_then_least_recently_used_dropped():
    from sync.sandbox.queries import LocatorCache

    cache = LocatorCache(max_rows=1000)
    first = cache.add(_locator(400))
    second = cache.add(_locator(400))
    cache.get(first)
    third = cache.add(_locator(400))

    assert cache.get(second) is None
    assert cache.get(first) is not None
    assert cache.get(third) is not None
    assert first.startswith("01g")


@pytest.mark.parametrize(
    ("header", "size"),
    [
        (None, 2000),
        ("batchSize=500", 500),
        ("batchSize=10", 200),
        ("batchSize=9000", 2000),
        ("batchSize=lots", 2000),
        ("other=1, batchSize=700", 700),
    ],
)
def test_given_query_options_header_when_parsing_then_batch_size_in_range(header, size):
    from sync.sandbox.queries import batch_size_from_header

    assert batch_size_from_header(header) == size
