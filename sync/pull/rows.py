"""The pull's row builder: CRM records straight into the forms the database driver binds.

A :class:`RowBuilder` is generated once per mapping (and per set of column binds, see
:class:`~sync.db.types.Bind`) and converts a page of records into tuples ready for a
bulk upsert. It knows the database's storage forms, which is why it lives with the pull
and not with the pure conversions of :mod:`sync.mapping.transform`; every value it makes
is checked as :func:`~sync.mapping.transform.convert_value` checks it, and a test holds
its rows to :func:`~sync.mapping.transform.record_to_row`, the reference.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any, NoReturn

from sync.db.types import VALUE, Bind, BindForm, utc_text
from sync.mapping.spec import ColumnType, FieldSpec, Mapping
from sync.mapping.transform import (
    CONVERTERS,
    SYSTEM_ROW_COLUMNS,
    UTC,
    ConversionError,
    decimal_limits,
    fast_sf_datetime,
    field_value,
    to_date,
    to_decimal,
)

# Above this magnitude (in units of the scale) a double's multiple of 10**-scale is no
# longer certain to be the decimal the CRM meant, so the exact Decimal path is taken.
_EXACT_SCALED = float(2**50)


def _datetime_text(spec_name: str) -> Callable[[Any], str]:
    """CRM datetime text -> UTCDateTime's SQLite text, for ``spec_name``'s values."""

    def convert(value: Any) -> str:
        # The REST API's own form, 2026-11-22T10:00:00.000+0000, is already UTC: its
        # storage is a slice once fromisoformat has checked it. Any other form is parsed.
        if (
            type(value) is str
            and len(value) == 28
            and value[10] == "T"
            and value[19] == "."
            and value.endswith("+0000")
        ):
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                return value[:10] + " " + value[11:23] + "000"
        if not isinstance(value, str):
            raise ConversionError(spec_name, f"expected a datetime, got {value!r}")
        try:
            return utc_text(fast_sf_datetime(value))
        except ValueError:
            raise ConversionError(spec_name, f"not a datetime: {value!r}") from None

    return convert


def _datetime_value(spec_name: str) -> Callable[[Any], dt.datetime]:
    def convert(value: Any) -> dt.datetime:
        if not isinstance(value, str):
            raise ConversionError(spec_name, f"expected a datetime, got {value!r}")
        try:
            return fast_sf_datetime(value)
        except ValueError:
            raise ConversionError(spec_name, f"not a datetime: {value!r}") from None

    return convert


def _decimal_bound(spec: FieldSpec, bind: Bind) -> Callable[[Any], Any]:
    """CRM number -> the column's bound form, exact, with a fast path for plain numbers.

    A JSON double whose multiple of the scale is a whole number (well inside a double's
    exact range) is that decimal exactly: it needs no Decimal on its way to a scaled
    integer (SQLite) or to PostgreSQL (which reads its shortest text at the column's
    scale). Everything else takes :func:`~sync.mapping.transform.to_decimal`'s path.
    """
    limits = decimal_limits(spec)
    adapt = bind.adapt

    def general(value: Any) -> Any:
        return adapt(to_decimal(spec, value, limits))

    if not _exact_floats(spec, bind):
        return general
    assert spec.scale is not None
    factor = 10**spec.scale
    cap = float(min(10**spec.precision, 2**50)) if spec.precision else _EXACT_SCALED
    whole_cap = 10 ** (spec.precision - spec.scale) if spec.precision else 1 << 62
    scaled = bind.form is BindForm.SCALED_INT

    def convert(value: Any) -> Any:
        kind = type(value)
        if kind is float:
            units = value * factor
            if units.is_integer() and -cap < units < cap:
                return int(units) if scaled else value
        elif kind is int and -whole_cap < value < whole_cap:
            return value * factor if scaled else value
        return general(value)

    return convert


def _exact_floats(spec: FieldSpec, bind: Bind) -> bool:
    """Whether plain JSON numbers of ``spec`` can skip the Decimal path for ``bind``."""
    return (
        spec.scale is not None
        and spec.scale == bind.scale
        and bind.form in (BindForm.SCALED_INT, BindForm.NUMERIC)
    )


def _date_bound(spec: FieldSpec, bind: Bind) -> Callable[[Any], Any]:
    if bind.form is not BindForm.DATE_TEXT:
        return lambda value: bind.adapt(to_date(spec, value))

    def convert(value: Any) -> Any:
        if type(value) is str and len(value) == 10 and value[4] == "-" and value[7] == "-":
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                pass
            else:
                return value  # YYYY-MM-DD: already the stored text
        return to_date(spec, value).isoformat()

    return convert


def _bound_converter(spec: FieldSpec, bind: Bind) -> Callable[[Any], Any]:
    """A converter of non-null CRM values straight to ``bind``'s form."""
    if spec.type is ColumnType.DECIMAL:
        return _decimal_bound(spec, bind)
    if spec.type is ColumnType.DATE:
        return _date_bound(spec, bind)
    if spec.type is ColumnType.DATETIME:
        if bind.form is BindForm.UTC_TEXT:
            return _datetime_text(spec.crm_name)
        return _datetime_value(spec.crm_name)
    convert = CONVERTERS[spec.type]
    adapt = bind.adapt
    if bind.form is BindForm.VALUE:
        return lambda value: convert(spec, value)
    return lambda value: adapt(convert(spec, value))


def _not_an_id(value: Any) -> NoReturn:
    raise ConversionError("Id", f"not a record Id: {value!r}")


class RowBuilder:
    """Converts the records of one mapping into rows; build it once, use it per record.

    A row is a tuple of values in :attr:`columns` order: the system columns and the
    mapped ones. By default values are as the column types take them (str, bool, int,
    Decimal, date, aware UTC datetime); given ``binds``, each column's value is produced
    directly in the form the database driver takes (see :class:`~sync.db.types.Bind`),
    with no intermediate objects for the common cases. Either way every value is checked
    as :func:`~sync.mapping.transform.convert_value` checks it, and a bad one raises
    :class:`~sync.mapping.transform.ConversionError`.

    The per-record work is one function generated for the mapping (as
    :mod:`dataclasses` generates methods): field lookups, type checks and the fast paths
    inline, the rarer conversions as calls.
    """

    def __init__(
        self,
        mapping: Mapping,
        *,
        columns: Sequence[str] | None = None,
        binds: Sequence[Bind] | None = None,
    ) -> None:
        """Prepare the conversion of ``mapping``'s records.

        Args:
            mapping: the mapping.
            columns: the order of a row's values (default: system columns, then the
                mapping's in field order); exactly the system and mapped columns.
            binds: per column in ``columns`` order, its driver form (default: values as
                the column types take them).

        Raises:
            ValueError: ``columns`` are not the mapping's, or ``binds`` do not match.
        """
        self.mapping = mapping
        expected = (*SYSTEM_ROW_COLUMNS, *mapping.columns)
        self.columns: tuple[str, ...] = tuple(columns) if columns is not None else expected
        if sorted(self.columns) != sorted(expected):
            raise ValueError(f"columns {self.columns} are not those of mapping {mapping.name}")
        bind_list = tuple(binds) if binds is not None else (VALUE,) * len(self.columns)
        if len(bind_list) != len(self.columns):
            raise ValueError("one bind per column is needed")
        self.binds = dict(zip(self.columns, bind_list, strict=True))
        self.sfid_index = self.columns.index("sfid")
        self.modstamp_index = self.columns.index("system_modstamp")
        self._stamp_text = self.binds["system_modstamp"].form is BindForm.UTC_TEXT
        self._convert, self._convert_many = self._compile()
        self._names = ("Id", "SystemModstamp", *(f.crm_name for f in mapping.fields))

    def _field_lines(
        self,
        var: str,
        source: str,
        spec_name: str,
        kind: ColumnType,
        bind: Bind,
        spec: FieldSpec | None,
        helpers: dict[str, Any],
        *,
        inline: bool,
    ) -> list[str]:
        """Source lines that set ``var`` to the bound value of ``source`` (an expression).

        With ``inline``, the common cases are checked in line and a malformed value may
        raise a bare ValueError: the caller then converts the record again without
        ``inline``, which raises the :class:`ConversionError` that names the field.
        """
        conv = f"_c_{var}"
        lines = [f"{var} = {source}"]
        form = bind.form
        if kind is ColumnType.DATETIME:
            helpers[conv] = (
                _datetime_text(spec_name)
                if form is BindForm.UTC_TEXT
                else _datetime_value(spec_name)
            )
            if not inline:
                return [*lines, f"if {var} is not None:", f"    {var} = {conv}({var})"]
            # The REST API's own form, 2026-11-22T10:00:00.000+0000, is UTC already.
            canonical = (
                f"type({var}) is str and len({var}) == 28 and {var}[10] == 'T'"
                f" and {var}[19] == '.' and {var}.endswith('+0000')"
            )
            fast = (
                [
                    f"    _datetime_from({var})",
                    f"    {var} = {var}[:10] + ' ' + {var}[11:23] + '000'",
                ]
                if form is BindForm.UTC_TEXT
                else [f"    {var} = _datetime_from({var}).astimezone(_UTC)"]
            )
            return [
                *lines,
                f"if {canonical}:",
                *fast,
                f"elif {var} is not None:",
                f"    {var} = {conv}({var})",
            ]
        assert spec is not None
        helpers[conv] = _bound_converter(spec, bind)
        if form is BindForm.VALUE and kind in (ColumnType.STRING, ColumnType.TEXT):
            limit = spec.max_length if spec.max_length is not None else 1 << 62
            test = f"type({var}) is not str or len({var}) > {limit!r} or '\\x00' in {var}"
        elif form is BindForm.VALUE and kind is ColumnType.SFID:
            test = (
                f"not (type({var}) is str and len({var}) in (15, 18) and {var}.isascii()"
                f" and {var}.isalnum())"
            )
        elif form is BindForm.VALUE and kind is ColumnType.BOOLEAN:
            test = f"type({var}) is not bool"
        elif form is BindForm.VALUE and kind is ColumnType.INTEGER:
            test = f"type({var}) is not int"
        elif inline and kind is ColumnType.DECIMAL and _exact_floats(spec, bind):
            assert spec.scale is not None
            factor = float(10**spec.scale)
            cap = float(min(10**spec.precision, 2**50)) if spec.precision else _EXACT_SCALED
            units = f"_u_{var}"
            keep = f"int({units})" if form is BindForm.SCALED_INT else var
            return [
                *lines,
                f"if type({var}) is float and ({units} := {var} * {factor!r}).is_integer()"
                f" and {-cap!r} < {units} < {cap!r}:",
                f"    {var} = {keep}",
                f"elif {var} is not None:",
                f"    {var} = {conv}({var})",
            ]
        elif inline and kind is ColumnType.DATE and form is BindForm.DATE_TEXT:
            return [
                *lines,
                f"if type({var}) is str and len({var}) == 10 and {var}[4] == '-'"
                f" and {var}[7] == '-':",
                f"    _date_from({var})",
                f"elif {var} is not None:",
                f"    {var} = {conv}({var})",
            ]
        else:
            test = "True"
        return [*lines, f"if {var} is not None and ({test}):", f"    {var} = {conv}({var})"]

    def _compile(
        self,
    ) -> tuple[Callable[..., tuple[Any, ...]], Callable[..., list[tuple[Any, ...]]]]:
        """Generate the record converter and the page converter of the mapping.

        Only literals made with repr() and generated identifiers enter the source; the
        helpers are passed in as default arguments (fast local lookups).
        """
        helpers: dict[str, Any] = {
            "_not_an_id": _not_an_id,
            "_datetime_from": dt.datetime.fromisoformat,
            "_date_from": dt.date.fromisoformat,
            "_UTC": UTC,
        }

        def body(*, inline: bool) -> list[str]:
            lines = [
                "sfid = record['Id']",
                "if not (type(sfid) is str and len(sfid) in (15, 18) and sfid.isascii()"
                " and sfid.isalnum()):",
                "    _not_an_id(sfid)",
                *self._field_lines(
                    "stamp",
                    "record['SystemModstamp']",
                    "SystemModstamp",
                    ColumnType.DATETIME,
                    self.binds["system_modstamp"],
                    None,
                    helpers,
                    inline=inline,
                ),
                "if stamp is None:",
                "    _c_stamp(stamp)",
                "deleted = record.get('IsDeleted', False) is True",
            ]
            for i, spec in enumerate(self.mapping.fields):
                lines += self._field_lines(
                    f"v{i}",
                    f"record[{spec.crm_name!r}]",
                    spec.crm_name,
                    spec.type,
                    self.binds[spec.column],
                    spec,
                    helpers,
                    inline=inline,
                )
            return lines

        names = {
            "sfid": "sfid",
            "system_modstamp": "stamp",
            "is_deleted": "deleted",
            "synced_at": "synced",
        }
        names.update({spec.column: f"v{i}" for i, spec in enumerate(self.mapping.fields)})
        row = f"({', '.join(names[c] for c in self.columns)},)"
        one = body(inline=False)
        many = body(inline=True)
        params = ", ".join(f"{name}={name}" for name in helpers)
        source = "\n".join(
            [
                f"def convert_one(record, synced, *, {params}):",
                *(f"    {line}" for line in one),
                f"    return {row}",
                "",
                f"def convert_many(records, synced, fail, *, {params}):",
                "    rows = []",
                "    append = rows.append",
                "    for record in records:",
                "        try:",
                *(f"            {line}" for line in many),
                "        except (KeyError, ValueError):",
                "            failed = fail(record)",
                "            if failed is not None:",
                "                append(failed)",
                "            continue",
                f"        append({row})",
                "    return rows",
            ]
        )
        namespace: dict[str, Any] = {}
        code = compile(source, f"<row converters of mapping {self.mapping.name}>", "exec")
        exec(code, dict(helpers), namespace)  # noqa: S102
        return namespace["convert_one"], namespace["convert_many"]

    def bind_synced(self, synced_at: dt.datetime) -> Any:
        """``synced_at`` as :meth:`values` takes it (convert it once per page)."""
        return self.binds["synced_at"].adapt(synced_at)

    def values(self, record: dict[str, Any], synced: Any) -> tuple[Any, ...]:
        """The row of ``record``, ``synced`` (from :meth:`bind_synced`) as its synced_at.

        Raises:
            ConversionError: the record lacks a field or a value cannot be stored.
        """
        try:
            return self._convert(record, synced)
        except KeyError:
            return self._convert(self._canonical(record), synced)

    def convert(
        self, records: Iterable[dict[str, Any]], synced: Any
    ) -> tuple[list[tuple[Any, ...]], list[tuple[dict[str, Any], ConversionError]]]:
        """The rows of ``records`` (as :meth:`values`), and the records that failed.

        Returns:
            The rows, in record order, and each record that could not be converted with
            its :class:`ConversionError`.
        """
        failures: list[tuple[dict[str, Any], ConversionError]] = []
        values = self.values

        def fail(record: dict[str, Any]) -> tuple[Any, ...] | None:
            # The unusual records: spelled differently, or with a value to look at closely.
            try:
                return values(record, synced)
            except ConversionError as exc:
                failures.append((record, exc))
                return None

        rows: list[tuple[Any, ...]] = self._convert_many(records, synced, fail)
        return rows, failures

    def _canonical(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with the mapping's spelling of each field (CRM names ignore case).

        Raises:
            ConversionError: a field is missing.
        """
        canonical: dict[str, Any] = {}
        if "IsDeleted" in record:
            canonical["IsDeleted"] = record["IsDeleted"]
        for name in self._names:
            try:
                canonical[name] = field_value(record, name)
            except KeyError:
                if name == "Id":
                    raise ConversionError("Id", "not a record Id: None") from None
                raise ConversionError(name, "missing from the record") from None
        return canonical

    def modstamp(self, row: tuple[Any, ...]) -> dt.datetime:
        """The SystemModstamp of a row made by :meth:`values`, as an aware datetime."""
        value = row[self.modstamp_index]
        if self._stamp_text:
            return dt.datetime.fromisoformat(value).replace(tzinfo=UTC)
        stamp: dt.datetime = value
        return stamp

    def newest(self, rows: Sequence[tuple[Any, ...]]) -> dt.datetime | None:
        """The newest SystemModstamp of ``rows`` (None for no rows).

        Stored text (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) sorts as time does.
        """
        if not rows:
            return None
        return self.modstamp(max(rows, key=itemgetter(self.modstamp_index)))

    def row(self, record: dict[str, Any], synced_at: dt.datetime) -> dict[str, Any]:
        """The row of ``record`` as a column -> value dict (as ``record_to_row`` makes it)."""
        return dict(
            zip(self.columns, self.values(record, self.bind_synced(synced_at)), strict=True)
        )


@lru_cache(maxsize=64)
def row_builder(mapping: Mapping) -> RowBuilder:
    """The :class:`RowBuilder` of ``mapping`` with values as the column types take them.

    Cached: building one generates its conversion code.
    """
    return RowBuilder(mapping)
