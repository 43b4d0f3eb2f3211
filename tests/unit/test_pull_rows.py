"""The pull's generated row builder gives the rows of the reference ``record_to_row``."""

import datetime as dt
import random
from decimal import Decimal

import pytest

from sync.db import repo
from sync.db.engine import make_engine
from sync.db.shapes import MIRRORED_SHAPES
from sync.db.types import BindForm
from sync.mapping import ColumnType, ConversionError, Mapping, load_mappings, record_to_row
from sync.mapping.loader import PROJECT_MAPPINGS
from sync.pull.rows import RowBuilder

UTC = dt.UTC
SYNCED = dt.datetime(2026, 11, 22, 12, 0, 0, 250000, tzinfo=UTC)
MAPPINGS = load_mappings(PROJECT_MAPPINGS, MIRRORED_SHAPES)
SQLITE = make_engine("sqlite://").dialect
POSTGRES = make_engine("postgresql://localhost/unused").dialect  # never connects

# Values each type meets in CRM answers: good ones in several forms, and bad ones.
GOOD = {
    ColumnType.STRING: ["", "Acme", "Ünïcode ✓", "x" * 40, 7, 2.5],
    ColumnType.TEXT: ["a longer text\nwith lines", "", 12],
    ColumnType.SFID: ["001000000000001AAA", "001000000000001", "a0D000000000042"],
    ColumnType.BOOLEAN: [True, False, "true", "False"],
    ColumnType.INTEGER: [0, -3, 12, 4.0, "17", "-2.00"],
    ColumnType.DECIMAL: [0, 1234.5, 0.1 + 0.2, -0.005, 12, "99.99", 1e-7, 123456789.12],
    ColumnType.DATE: ["2026-12-01", "2024-02-29"],
    ColumnType.DATETIME: [
        "2026-11-22T10:00:00.000+0000",
        "2026-11-22T10:00:00.123+0000",
        "2026-01-05T23:59:59.999+0000",
        "2026-11-22T10:00:00Z",
        "2026-11-22T12:00:00.5+02:00",
        "2026-11-22T10:00:00.123456-0130",
    ],
}
BAD = {
    ColumnType.STRING: [["a"], "nul\x00", True],
    ColumnType.TEXT: [{"a": 1}],
    ColumnType.SFID: ["001", "001000000000001AA!", 15],
    ColumnType.BOOLEAN: ["yes", 1, 0.0],
    ColumnType.INTEGER: [1.5, "x", True],
    ColumnType.DECIMAL: ["abc", True, float("inf"), float("nan"), 1e30],
    ColumnType.DATE: ["2026-13-01", 20261201, "2026-11-22T10:00:00Z"],
    ColumnType.DATETIME: ["2026-11-22", "2026-11-22T10:00:00", 5, "soon"],
}


def good_value(rng, spec):
    value = rng.choice(GOOD[spec.type])
    if isinstance(value, str) and spec.max_length is not None:
        value = value[: spec.max_length]
    return value


def record_of(rng, mapping, n):
    record = {
        "attributes": {"type": mapping.crm_object},
        "Id": f"a0X{n:012d}AAA",
        "IsDeleted": rng.choice([False, True, None]),
        "SystemModstamp": rng.choice(GOOD[ColumnType.DATETIME]),
    }
    for spec in mapping.fields:
        record[spec.crm_name] = None if rng.random() < 0.2 else good_value(rng, spec)
    return record


def defective(rng, mapping, record):
    """``record`` with one defect (or a harmless change), and the field it concerns."""
    record = dict(record)
    spec = rng.choice(mapping.fields)
    kind = rng.choice(["bad", "missing", "case", "id", "stamp", "too_long"])
    if kind == "bad":
        record[spec.crm_name] = rng.choice(BAD[spec.type])
        return record, spec.crm_name
    if kind == "missing":
        del record[spec.crm_name]
        return record, spec.crm_name
    if kind == "case":
        # CRM field names ignore case: not a defect at all
        record[spec.crm_name.upper()] = record.pop(spec.crm_name)
        return record, None
    if kind == "id":
        record["Id"] = rng.choice([None, "short", 42])
        return record, "Id"
    if kind == "stamp":
        if rng.random() < 0.5:
            del record["SystemModstamp"]
        else:
            record["SystemModstamp"] = rng.choice([None, "2026-11-22"])
        return record, "SystemModstamp"
    text = next((s for s in mapping.fields if s.max_length and s.type is ColumnType.STRING), None)
    if text is None:
        return record, None
    assert text.max_length is not None
    record[text.crm_name] = "y" * (text.max_length + 1)
    return record, text.crm_name


def records_for(mapping, count=120, seed=0):
    rng = random.Random(f"{mapping.name}:{seed}")
    out = []
    for n in range(count):
        record = record_of(rng, mapping, n)
        out.append(defective(rng, mapping, record) if n % 3 == 0 else (record, None))
    return out


def comparable(value, bind):
    """A bound value as a plain comparable value (a NUMERIC bind may pass a float on)."""
    if value is None:
        return None
    if bind.form is BindForm.NUMERIC:
        return Decimal(repr(value) if isinstance(value, float) else value).quantize(
            Decimal(1).scaleb(-bind.scale)
        )
    return value


def expected_row(builder, reference):
    return tuple(
        comparable(builder.binds[c].adapt(reference[c]), builder.binds[c]) for c in builder.columns
    )


def actual_row(builder, row):
    return tuple(comparable(v, builder.binds[c]) for c, v in zip(builder.columns, row, strict=True))


def builders(mapping: Mapping) -> list[tuple[str, RowBuilder]]:
    table = repo.mirrored_table(mapping.table)
    made = [("values", RowBuilder(mapping))]
    for name, dialect in (("sqlite", SQLITE), ("postgresql", POSTGRES)):
        plan = repo.upsert_plan(dialect, table, tuple(mapping.columns))
        made.append((name, RowBuilder(mapping, columns=plan.columns, binds=plan.binds)))
    return made


@pytest.mark.parametrize("name", MAPPINGS.names)
def test_given_varied_records_when_built_then_rows_and_errors_are_the_references(name):
    mapping = MAPPINGS[name]
    cases = records_for(mapping)
    references = []
    for record, defect in cases:
        try:
            references.append(record_to_row(mapping, record, SYNCED))
        except ConversionError as exc:
            assert defect is not None, f"{record} failed without a defect: {exc}"
            assert exc.field == defect
            references.append(exc)
    assert any(isinstance(r, ConversionError) for r in references)
    assert any(isinstance(r, dict) for r in references)

    for label, builder in builders(mapping):
        records = [record for record, _ in cases]
        rows, failures = builder.convert(records, builder.bind_synced(SYNCED))
        failed = {id(record): exc for record, exc in failures}
        made = iter(rows)
        for record, reference in zip(records, references, strict=True):
            if isinstance(reference, ConversionError):
                assert id(record) in failed, f"{label}: {record} converted, reference refused it"
                assert failed[id(record)].field == reference.field, label
                assert str(failed[id(record)]) == str(reference), label
                with pytest.raises(ConversionError) as one:
                    builder.values(record, builder.bind_synced(SYNCED))
                assert str(one.value) == str(reference)
            else:
                assert id(record) not in failed, f"{label}: {failed.get(id(record))}"
                assert actual_row(builder, next(made)) == expected_row(builder, reference), label
        assert next(made, None) is None


def test_given_default_binds_when_built_then_row_dict_equals_reference_exactly():
    mapping = MAPPINGS["invoices"]
    builder = RowBuilder(mapping)
    for record, _ in records_for(mapping, count=60, seed=1):
        try:
            reference = record_to_row(mapping, record, SYNCED)
        except ConversionError:
            continue
        row = builder.row(record, SYNCED)
        assert row == reference
        assert [type(v) for v in row.values()] == [type(reference[c]) for c in row]
