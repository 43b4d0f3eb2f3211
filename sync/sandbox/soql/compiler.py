"""Resolve a parsed SOQL SELECT against the schema and turn it into SQLite SQL.

Semantics kept from Salesforce:

- Names are case-insensitive and resolve to the canonical spelling.
- Text comparisons and sorting ignore case (``COLLATE NOCASE`` on text fields).
- ``!=`` and ``NOT IN`` also match null values, as SOQL's do; ``<``, ``>``, LIKE do not.
  NOT is two-valued too: ``NOT Amount > 5`` matches a null Amount.
- ``= null`` / ``!= null`` test for null; on a boolean field null means false.
- An empty string (``= ''``) on a text or Id field means null: Salesforce stores no
  empty strings.
- Date fields take date literals (``2026-11-22``) and datetime fields datetime literals
  (``2026-11-22T10:00:00Z``, ``+hh:mm``, optional fractional seconds); either kind in the
  other's place, or any quoted value, is refused with INVALID_FIELD ("must be of type
  date/dateTime and should not be enclosed in quotes"). Relative literals (TODAY,
  YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n, N_DAYS_AGO:n) work on both, as whole
  UTC days relative to ``now``.
- Picklists sort in the order of their values, not alphabetically.
- ORDER BY defaults: ASC puts nulls first, DESC last. LIMIT applies after OFFSET; OFFSET
  is at most 2000.

Every value is a bound parameter; identifiers come from the schema only, double-quoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sync.sandbox.schema import FieldDef, ObjectDef, Schema
from sync.sandbox.soql.errors import SoqlError
from sync.sandbox.soql.nodes import (
    And,
    Comparison,
    Condition,
    Literal,
    Name,
    Not,
    Or,
    SelectQuery,
)
from sync.sandbox.tables import quote_identifier
from sync.sandbox.values import (
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    format_datetime,
    normalize_id,
    parse_date,
    parse_datetime,
)

MAX_OFFSET = 2000
_COMPLEMENT = {"=": "!=", "!=": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
# The SOQL type names Salesforce's messages use.
_TYPE_WORDS = {"id": "id", "reference": "id", "datetime": "dateTime"}


@dataclass(frozen=True)
class ParentColumn:
    """A child-to-parent field in the SELECT list (``Account.Name``).

    Attributes:
        label: the name as Salesforce reports it (``Account.Name``, canonical spelling).
        reference: the child's reference field (``AccountId``).
        relationship: the relationship name (``Account``).
        parent: the referenced object.
        field: the parent's field.
    """

    label: str
    reference: FieldDef
    relationship: str
    parent: ObjectDef
    field: FieldDef


@dataclass
class CompiledQuery:
    """A query resolved against the schema, ready to run on the sandbox's SQLite store.

    Attributes:
        object: The queried object.
        fields: The selected fields of the object itself, canonical, in SELECT order
            (empty for COUNT()); ``columns`` has the whole SELECT list.
        count_only: ``SELECT COUNT() FROM ...``.
        limit: LIMIT, or None.
        offset: OFFSET, or None.
        where_sql: The WHERE condition (without the keyword), including the
            ``"IsDeleted" = 0`` filter unless deleted rows were asked for; "" for none.
        where_params: Parameters of ``where_sql``.
        order_sql: The ORDER BY terms (without the keyword), or "".
        order_params: Parameters of ``order_sql`` (picklist orders bind their values).
    """

    object: ObjectDef
    fields: list[FieldDef]
    count_only: bool
    limit: int | None
    offset: int | None
    where_sql: str = ""
    where_params: list[Any] = field(default_factory=list)
    order_sql: str = ""
    order_params: list[Any] = field(default_factory=list)
    # The SELECT list in order: a FieldDef of the object or a ParentColumn.
    columns: list[FieldDef | ParentColumn] = field(default_factory=list)

    def sql(self, select_list: str | None = None) -> tuple[str, list[Any]]:
        """The SQLite statement and its parameters (qmark style).

        Args:
            select_list: SQL for the selected columns; default: the selected fields,
                quoted, in order. For a COUNT() query without ``select_list`` the
                statement returns one row holding the count (after OFFSET and LIMIT,
                as Salesforce counts).
        """
        table = quote_identifier(self.object.name)
        params: list[Any] = list(self.where_params)
        where = f" WHERE {self.where_sql}" if self.where_sql else ""
        page = ""
        page_params: list[Any] = []
        if self.limit is not None or self.offset is not None:
            page = " LIMIT ? OFFSET ?"
            page_params = [-1 if self.limit is None else self.limit, self.offset or 0]
        if self.count_only and select_list is None:
            if page:
                return (
                    f"SELECT COUNT(*) FROM (SELECT 1 FROM {table}{where}{page})",
                    params + page_params,
                )
            return f"SELECT COUNT(*) FROM {table}{where}", params
        columns = select_list or ", ".join(quote_identifier(f.name) for f in self.fields)
        order = ""
        if self.order_sql:
            order = f" ORDER BY {self.order_sql}"
            params += self.order_params
        return f"SELECT {columns} FROM {table}{where}{order}{page}", params + page_params


class _Compiler:
    def __init__(self, query: SelectQuery, schema: Schema, now: datetime) -> None:
        self.query = query
        self.schema = schema
        self.today = now.astimezone(UTC).date()
        obj = schema.get(query.object.text)
        if obj is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"sObject type '{query.object.text}' is not supported. If you are attempting "
                "to use a custom object, be sure to append the '__c' after the entity name. "
                "Please reference your WSDL or the describe call for the appropriate names.",
                text=query.text,
                pos=query.object.pos,
            )
        self.obj = obj

    def error(self, code: str, detail: str, pos: int) -> SoqlError:
        return SoqlError(code, detail, text=self.query.text, pos=pos)

    def resolve(self, name: Name) -> FieldDef:
        found = self.obj.field(name.text)
        if found is None:
            raise self.error(
                "INVALID_FIELD",
                f"No such column '{name.text}' on entity '{self.obj.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after the "
                "custom field name. Please reference your WSDL or the describe call for "
                "the appropriate names.",
                name.pos,
            )
        return found

    def select_columns(self) -> list[FieldDef | ParentColumn]:
        columns: list[FieldDef | ParentColumn] = []
        seen: set[str] = set()
        for name in self.query.fields:
            resolved = self.resolve_parent(name) if "." in name.text else self.resolve(name)
            label = resolved.label if isinstance(resolved, ParentColumn) else resolved.name
            if label.lower() in seen:
                raise self.error(
                    "MALFORMED_QUERY", f"duplicate field selected: {name.text}", name.pos
                )
            seen.add(label.lower())
            columns.append(resolved)
        return columns

    def resolve_parent(self, name: Name) -> ParentColumn:
        """``Relationship.Field`` (one level: the sandbox serves no deeper paths)."""
        parts = name.text.split(".")
        if len(parts) != 2:
            raise self.error(
                "MALFORMED_QUERY",
                f"relationship paths deeper than one level are not supported by the "
                f"sandbox CRM: {name.text}",
                name.pos,
            )
        relationship, field_name = parts
        reference = next(
            (
                f
                for f in self.obj.fields.values()
                if f.relationship_name and f.relationship_name.lower() == relationship.lower()
            ),
            None,
        )
        if reference is None or not reference.reference_to:
            raise self.error(
                "INVALID_FIELD",
                f"Didn't understand relationship '{relationship}' in field path. If you are "
                "attempting to use a custom relationship, be sure to append the '__r' after "
                "the custom relationship name. Please reference your WSDL or the describe "
                "call for the appropriate names.",
                name.pos,
            )
        parent = self.schema.get(reference.reference_to[0])
        assert parent is not None  # the schema checks referenceTo
        found = parent.field(field_name)
        if found is None:
            raise self.error(
                "INVALID_FIELD",
                f"No such column '{field_name}' on entity '{parent.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after the "
                "custom field name. Please reference your WSDL or the describe call for "
                "the appropriate names.",
                name.pos,
            )
        assert reference.relationship_name is not None
        return ParentColumn(
            label=f"{reference.relationship_name}.{found.name}",
            reference=reference,
            relationship=reference.relationship_name,
            parent=parent,
            field=found,
        )

    # -- values ------------------------------------------------------------------------

    def type_error(self, fdef: FieldDef, lit: Literal) -> SoqlError:
        word = _TYPE_WORDS.get(fdef.type, fdef.type)
        if fdef.type in TEXT_TYPES or fdef.type in ID_TYPES:
            tail = "should be enclosed in quotes"
        else:
            tail = "should not be enclosed in quotes"
        return self.error(
            "INVALID_FIELD",
            f"value of filter criterion for field '{fdef.name}' must be of type {word} and {tail}",
            lit.pos,
        )

    def value(self, fdef: FieldDef, lit: Literal, op: str) -> Any:
        """The stored form of ``lit`` compared with ``fdef`` (None for null).

        Relative date literals return a (start, end) half-open range.
        """
        kind = lit.kind
        if kind == "null":
            return 0 if fdef.type == "boolean" else None
        if kind == "string" and lit.like_only and op != "LIKE":
            raise self.error(
                "MALFORMED_QUERY",
                f"Invalid string literal {lit.text}. The escapes \\% and \\_ are valid in "
                "LIKE expressions only.",
                lit.pos,
            )
        ftype = fdef.type
        if ftype in TEXT_TYPES:
            if kind != "string":
                raise self.type_error(fdef, lit)
            return lit.value or None
        if ftype in ID_TYPES:
            if kind != "string":
                raise self.type_error(fdef, lit)
            text = str(lit.value)
            if not text:
                return None
            normalized = normalize_id(text)
            if normalized is None:
                raise self.error(
                    "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}", lit.pos
                )
            return normalized
        if ftype == "boolean":
            if kind != "boolean":
                raise self.type_error(fdef, lit)
            return int(bool(lit.value))
        if ftype in NUMBER_TYPES:
            if kind != "number":
                raise self.type_error(fdef, lit)
            text = str(lit.value)
            if text.lstrip("+-").isdigit() and abs(int(text)) < 2**63:
                return int(text)
            # Decimals, and integers too wide for SQLite's 64 bits, compare as REAL.
            return float(text)
        if ftype == "date":
            if kind == "date_literal":
                start, end = self.day_range(lit)
                return (start.isoformat(), end.isoformat())
            if kind != "date":
                raise self.type_error(fdef, lit)
            try:
                return parse_date(str(lit.value)).isoformat()
            except ValueError:
                raise self.error("MALFORMED_QUERY", f"invalid date: {lit.text}", lit.pos) from None
        if ftype == "datetime":
            if kind == "date_literal":
                start, end = self.day_range(lit)
                return (_midnight(start), _midnight(end))
            if kind != "datetime":
                raise self.type_error(fdef, lit)
            try:
                return format_datetime(parse_datetime(str(lit.value)))
            except ValueError:
                raise self.error(
                    "MALFORMED_QUERY", f"invalid datetime: {lit.text}", lit.pos
                ) from None
        raise self.type_error(fdef, lit)  # pragma: no cover - every schema type is handled

    def day_range(self, lit: Literal) -> tuple[date, date]:
        """The half-open range of days a relative date literal stands for."""
        today = self.today
        n = lit.n or 0
        day = timedelta(days=1)
        ranges = {
            "TODAY": (today, today + day),
            "YESTERDAY": (today - day, today),
            "TOMORROW": (today + day, today + 2 * day),
            "LAST_N_DAYS": (today - n * day, today + day),
            "NEXT_N_DAYS": (today + day, today + (n + 1) * day),
            "N_DAYS_AGO": (today - n * day, today - (n - 1) * day),
        }
        return ranges[str(lit.value)]

    # -- conditions --------------------------------------------------------------------

    def condition(self, cond: Condition, negated: bool) -> tuple[str, list[Any]]:
        if isinstance(cond, Not):
            return self.condition(cond.operand, not negated)
        if isinstance(cond, And | Or):
            # De Morgan: negation is pushed down to the comparisons, so that each one
            # decides by itself whether null matches.
            joiner = " AND " if isinstance(cond, And) != negated else " OR "
            parts = [self.condition(c, negated) for c in cond.operands]
            params = [p for _, ps in parts for p in ps]
            return "(" + joiner.join(sql for sql, _ in parts) + ")", params
        return self.comparison(cond, negated)

    def comparison(self, cmp: Comparison, negated: bool) -> tuple[str, list[Any]]:
        fdef = self.resolve(cmp.field)
        col = _column(fdef)
        if cmp.op in ("IN", "NOT IN"):
            assert isinstance(cmp.value, tuple)
            return self.membership(fdef, col, cmp, negated)
        assert isinstance(cmp.value, Literal)
        lit = cmp.value
        if cmp.op == "LIKE":
            if fdef.type not in TEXT_TYPES:
                raise self.error(
                    "INVALID_FIELD",
                    f"invalid operator on field '{fdef.name}': LIKE applies to text fields only",
                    cmp.pos,
                )
            if lit.kind != "string":
                raise self.type_error(fdef, lit)
            if negated:
                return f"({col} NOT LIKE ? ESCAPE '\\' OR {col} IS NULL)", [lit.like]
            return f"{col} LIKE ? ESCAPE '\\'", [lit.like]
        value = self.value(fdef, lit, cmp.op)
        if value is None:
            if cmp.op not in ("=", "!="):
                raise self.error(
                    "MALFORMED_QUERY",
                    f"null can be compared with = and != only, not with {cmp.op}",
                    lit.pos,
                )
            is_null = (cmp.op == "=") != negated
            return f"{col} IS {'' if is_null else 'NOT '}NULL", []
        if isinstance(value, tuple):
            return _range(col, cmp.op, value, negated)
        return _simple(col, cmp.op, value, negated)

    def membership(
        self, fdef: FieldDef, col: str, cmp: Comparison, negated: bool
    ) -> tuple[str, list[Any]]:
        assert isinstance(cmp.value, tuple)
        values = []
        for lit in cmp.value:
            value = self.value(fdef, lit, cmp.op)
            if isinstance(value, tuple):
                if value[1] != _next_day(value[0]):
                    raise self.error(
                        "MALFORMED_QUERY",
                        f"{lit.text} spans several days and cannot be an IN value",
                        lit.pos,
                    )
                value = value[0]
            values.append(value)
        present = list(dict.fromkeys(v for v in values if v is not None))
        has_null = len(present) < len(values)
        inside = (cmp.op == "IN") != negated
        marks = ", ".join("?" * len(present))
        if inside:
            parts = [f"{col} IN ({marks})"] if present else []
            if has_null:
                parts.append(f"{col} IS NULL")
            return ("(" + " OR ".join(parts) + ")" if len(parts) > 1 else parts[0]), present
        if not present:
            return f"{col} IS NOT NULL", []
        if has_null:
            # NOT IN (..., null): a null value is excluded, which plain NOT IN does.
            return f"{col} NOT IN ({marks})", present
        return f"({col} NOT IN ({marks}) OR {col} IS NULL)", present

    # -- the rest ----------------------------------------------------------------------

    def order(self) -> tuple[str, list[Any]]:
        terms: list[str] = []
        params: list[Any] = []
        for item in self.query.order_by:
            fdef = self.resolve(item.field)
            expr = _column(fdef)
            if fdef.type == "picklist" and fdef.picklist_values:
                whens = " ".join(
                    f"WHEN {expr} = ? THEN {i}" for i in range(len(fdef.picklist_values))
                )
                expr = (
                    f"CASE WHEN {expr} IS NULL THEN NULL {whens} "
                    f"ELSE {len(fdef.picklist_values)} END"
                )
                params.extend(fdef.picklist_values)
            term = expr + (" DESC" if item.descending else "")
            # SQLite's defaults are Salesforce's (ASC: nulls first, DESC: nulls last), so
            # only the non-default choice is spelled out (and indexes stay usable).
            if item.nulls_first is not None and item.nulls_first == item.descending:
                term += " NULLS FIRST" if item.nulls_first else " NULLS LAST"
            terms.append(term)
        return ", ".join(terms), params

    def compile(self, include_deleted: bool) -> CompiledQuery:
        query = self.query
        columns = self.select_columns()
        fields = [c for c in columns if isinstance(c, FieldDef)]
        where_sql, where_params = "", list[Any]()
        if query.where is not None:
            where_sql, where_params = self.condition(query.where, False)
        if not include_deleted:
            where_sql = f'{where_sql} AND "IsDeleted" = 0' if where_sql else '"IsDeleted" = 0'
        order_sql, order_params = self.order()
        if query.offset is not None and query.offset > MAX_OFFSET:
            raise SoqlError(
                "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}"
            )
        return CompiledQuery(
            object=self.obj,
            fields=fields,
            count_only=query.count_only,
            limit=query.limit,
            offset=query.offset,
            where_sql=where_sql,
            where_params=where_params,
            order_sql=order_sql,
            order_params=order_params,
            columns=columns,
        )


def _column(fdef: FieldDef) -> str:
    """The column of ``fdef`` as compared and sorted: text ignores case, as in Salesforce.

    The collation is spelled out, so that it holds whatever the table's declaration.
    """
    column = quote_identifier(fdef.name)
    return f"{column} COLLATE NOCASE" if fdef.type in TEXT_TYPES else column


def _midnight(day: date) -> str:
    return format_datetime(datetime.combine(day, time(), tzinfo=UTC))


def _next_day(start: str) -> str:
    if "T" in start:
        return _midnight(parse_datetime(start).date() + timedelta(days=1))
    return (date.fromisoformat(start) + timedelta(days=1)).isoformat()


def _simple(col: str, op: str, value: Any, negated: bool) -> tuple[str, list[Any]]:
    effective = _COMPLEMENT[op] if negated else op
    # SOQL is two-valued: != (and any negated comparison) also matches null.
    if negated != (op == "!="):
        return f"({col} {effective} ? OR {col} IS NULL)", [value]
    return f"{col} {effective} ?", [value]


def _range(col: str, op: str, bounds: tuple[str, str], negated: bool) -> tuple[str, list[Any]]:
    start, end = bounds
    if op in ("=", "!="):
        if (op == "=") != negated:
            return f"({col} >= ? AND {col} < ?)", [start, end]
        return f"({col} < ? OR {col} >= ? OR {col} IS NULL)", [start, end]
    bound_op, bound = {"<": ("<", start), "<=": ("<", end), ">": (">=", end), ">=": (">=", start)}[
        op
    ]
    return _simple(col, bound_op, bound, negated)


def compile_select(
    query: SelectQuery, schema: Schema, *, include_deleted: bool, now: datetime | None = None
) -> CompiledQuery:
    """Resolve ``query`` against ``schema``.

    Args:
        query: The parsed query.
        schema: The CRM schema.
        include_deleted: True for queryAll (soft-deleted rows too).
        now: The clock for TODAY and the other relative date literals (default: now).

    Raises:
        SoqlError: INVALID_TYPE (unknown object), INVALID_FIELD (unknown field, or a
            value of the wrong type for its field), INVALID_QUERY_FILTER_OPERATOR (a
            malformed Id value), MALFORMED_QUERY (duplicate field, misuse of null or an
            escape), NUMBER_OUTSIDE_VALID_RANGE (OFFSET over 2000).
    """
    compiler = _Compiler(query, schema, now or datetime.now(UTC))
    return compiler.compile(include_deleted)
