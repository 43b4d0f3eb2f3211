"""Load mappings/*.yaml into :class:`MappingSet`, bound to the local tables.

Everything that can be checked without the CRM is checked here: the YAML itself, the
keys, the table (one of the local tables the caller hands in, described as
:data:`~sync.mapping.spec.TableShapes`: nothing here reads the database's models), that
each column exists there, is not a system column, is used once, and can hold the
declared type. The checks against
the CRM's describe live in :mod:`sync.mapping.validate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping as ReadOnly
from pathlib import Path
from typing import Any

import yaml

from sync.mapping.spec import (
    SYSTEM_COLUMNS,
    ColumnShape,
    ColumnType,
    Direction,
    FieldSpec,
    Mapping,
    MappingError,
    MappingSet,
    Problem,
    TableShapes,
)

PROJECT_MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
_CRM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TOP_KEYS = {
    "name",
    "object",
    "table",
    "direction",
    "filter",
    "fields",
    "references",
    "bulk_threshold",
    "events",
}
_FIELD_KEYS = {"column", "type"}
_REFERENCE_KEYS = {"column", "to"}


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice (PyYAML keeps the last silently)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def default_mappings_dir(configured: str | None = None) -> Path:
    """The mappings folder: ``BILLING_SYNC_MAPPINGS_DIR`` when set, else the project's."""
    return Path(configured) if configured else PROJECT_MAPPINGS


def load_mappings(directory: str | Path, tables: TableShapes) -> MappingSet:
    """Load every ``*.yaml`` file of ``directory``, in file-name order.

    Args:
        directory: the mappings folder.
        tables: the local tables a mapping may fill, by name.

    Raises:
        MappingError: a file is malformed or names something that does not exist locally;
            every problem found is listed, each naming its file, mapping and field.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise MappingError([Problem(str(folder), "mappings folder not found")])
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    if not files:
        raise MappingError([Problem(str(folder), "no mapping files (*.yaml) in this folder")])
    return load_mapping_files(files, tables)


def load_mapping_files(files: Iterable[Path], tables: TableShapes) -> MappingSet:
    """Load the given mapping files (see :func:`load_mappings`)."""
    problems: list[Problem] = []
    loaded: dict[str, Mapping] = {}
    filled: dict[str, str] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            problems.append(Problem(str(path), f"cannot be read: {exc.strerror or exc}"))
            continue
        mapping = parse_mapping(
            text, source=str(path), default_name=path.stem, tables=tables, problems=problems
        )
        if mapping is None:
            continue
        if mapping.name in loaded:
            problems.append(
                Problem(
                    str(path),
                    f"mapping name already used by {loaded[mapping.name].source}",
                    mapping.name,
                )
            )
            continue
        if mapping.table in filled:
            problems.append(
                Problem(
                    str(path),
                    f"table {mapping.table!r} is already filled by mapping "
                    f"{filled[mapping.table]!r}",
                    mapping.name,
                )
            )
            continue
        loaded[mapping.name] = mapping
        filled[mapping.table] = mapping.name
    if problems:
        raise MappingError(problems)
    return MappingSet(loaded)


def parse_mapping(
    text: str,
    *,
    source: str,
    default_name: str,
    tables: TableShapes,
    problems: list[Problem] | None = None,
) -> Mapping | None:
    """Parse one mapping document and bind it to its table.

    Args:
        text: the YAML document.
        source: where it comes from (a file name), for messages.
        default_name: the mapping's name when the document has no ``name``.
        tables: the local tables a mapping may fill, by name.
        problems: where to add problems; when None, the first problems raise.

    Returns:
        The mapping, or None when problems were added to ``problems``.

    Raises:
        MappingError: only when ``problems`` is None and the document is not usable.
    """
    found: list[Problem] = []
    mapping = _parse(text, source, default_name, tables, found)
    if found:
        if problems is None:
            raise MappingError(found)
        problems.extend(found)
        return None
    return mapping


def _parse(
    text: str, source: str, default_name: str, tables: TableShapes, problems: list[Problem]
) -> Mapping | None:
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(source, f"malformed YAML{where}: {reason}"))
        return None
    if not isinstance(doc, dict):
        problems.append(Problem(source, "malformed mapping: expected a YAML mapping at the top"))
        return None

    name = doc.get("name", default_name)
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(Problem(source, f"name {name!r} must be lower-case letters, digits and _"))
        return None
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        problems.append(Problem(source, f"unknown keys {unknown}", name))

    crm_object = doc.get("object")
    if not isinstance(crm_object, str) or not _CRM_NAME.match(crm_object):
        problems.append(Problem(source, "'object' must name the CRM object", name))
    table_name = doc.get("table")
    columns: ReadOnly[str, ColumnShape] | None = None
    if not isinstance(table_name, str):
        problems.append(Problem(source, "'table' must name a local table", name))
    elif table_name not in tables:
        problems.append(
            Problem(
                source,
                f"table {table_name!r} is not a mirrored table "
                f"(one of: {', '.join(sorted(tables))})",
                name,
            )
        )
    else:
        columns = tables[table_name]

    direction_raw = doc.get("direction", Direction.READ.value)
    try:
        direction = Direction(direction_raw)
    except ValueError:
        problems.append(
            Problem(source, f"direction {direction_raw!r} must be 'read' or 'read_write'", name)
        )
        direction = Direction.READ

    soql_filter = doc.get("filter")
    if soql_filter is not None and (not isinstance(soql_filter, str) or not soql_filter.strip()):
        problems.append(Problem(source, "'filter' must be a SOQL condition (text)", name))
        soql_filter = None

    bulk_threshold = doc.get("bulk_threshold")
    whole = isinstance(bulk_threshold, int) and not isinstance(bulk_threshold, bool)
    if bulk_threshold is not None and (not whole or bulk_threshold < 0):
        problems.append(
            Problem(source, "'bulk_threshold' must be a whole number of records (0: never)", name)
        )
        bulk_threshold = None
    events = doc.get("events", True)
    if not isinstance(events, bool):
        problems.append(Problem(source, "'events' must be true or false", name))
        events = True

    specs: list[FieldSpec] = []
    fields = doc.get("fields") or {}
    references = doc.get("references") or {}
    if not isinstance(fields, dict):
        problems.append(Problem(source, "'fields' must map CRM field names to columns", name))
        fields = {}
    if not isinstance(references, dict):
        problems.append(Problem(source, "'references' must map CRM field names to columns", name))
        references = {}
    if not fields and not references:
        problems.append(Problem(source, "no fields mapped", name))

    for crm_name, entry in fields.items():
        spec = _field_spec(crm_name, entry, source, name, problems, reference=False)
        if spec:
            specs.append(spec)
    for crm_name, entry in references.items():
        spec = _field_spec(crm_name, entry, source, name, problems, reference=True)
        if spec:
            specs.append(spec)

    _check_duplicates(specs, source, name, problems)
    if columns is not None:
        assert isinstance(table_name, str)
        specs = [_bind(spec, table_name, columns, source, name, problems) for spec in specs]
    if problems:
        return None
    assert isinstance(crm_object, str)
    assert isinstance(table_name, str)
    return Mapping(
        name=name,
        crm_object=crm_object,
        table=table_name,
        fields=tuple(specs),
        direction=direction,
        filter=soql_filter.strip() if soql_filter else None,
        source=source,
        bulk_threshold=bulk_threshold,
        events=events,
    )


def _field_spec(
    crm_name: Any,
    entry: Any,
    source: str,
    mapping: str,
    problems: list[Problem],
    *,
    reference: bool,
) -> FieldSpec | None:
    if not isinstance(crm_name, str) or not _CRM_NAME.match(crm_name):
        problems.append(Problem(source, "not a CRM field name", mapping, str(crm_name)))
        return None
    section = "references" if reference else "fields"
    keys = _REFERENCE_KEYS if reference else _FIELD_KEYS
    if not isinstance(entry, dict):
        problems.append(
            Problem(
                source,
                f"{section} entries look like {{{', '.join(sorted(keys))}}}",
                mapping,
                crm_name,
            )
        )
        return None
    unknown = sorted(set(entry) - keys)
    if unknown:
        problems.append(Problem(source, f"unknown keys {unknown}", mapping, crm_name))
    column = entry.get("column")
    if not isinstance(column, str) or not _NAME.match(column):
        problems.append(Problem(source, "'column' must name a local column", mapping, crm_name))
        return None
    if column in SYSTEM_COLUMNS:
        problems.append(
            Problem(
                source, f"column {column!r} is maintained by the pull itself", mapping, crm_name
            )
        )
        return None
    if reference:
        target = entry.get("to")
        if not isinstance(target, str) or not _CRM_NAME.match(target):
            problems.append(
                Problem(source, "'to' must name the referenced CRM object", mapping, crm_name)
            )
            return None
        return FieldSpec(crm_name, column, ColumnType.SFID, reference_to=target)
    raw_type = entry.get("type")
    try:
        ctype = ColumnType(str(raw_type))
    except ValueError:
        problems.append(
            Problem(
                source,
                f"type {raw_type!r} is not one of {[t.value for t in ColumnType]}",
                mapping,
                crm_name,
            )
        )
        return None
    return FieldSpec(crm_name, column, ctype)


def _check_duplicates(
    specs: list[FieldSpec], source: str, mapping: str, problems: list[Problem]
) -> None:
    columns: dict[str, str] = {}
    crm_names: set[str] = set()
    for spec in specs:
        lowered = spec.crm_name.lower()
        if lowered in crm_names:
            problems.append(Problem(source, "CRM field mapped twice", mapping, spec.crm_name))
        crm_names.add(lowered)
        if spec.column in columns:
            problems.append(
                Problem(
                    source,
                    f"duplicate column {spec.column!r} (also mapped from {columns[spec.column]!r})",
                    mapping,
                    spec.crm_name,
                )
            )
        columns.setdefault(spec.column, spec.crm_name)


def _bind(
    spec: FieldSpec,
    table: str,
    columns: ReadOnly[str, ColumnShape],
    source: str,
    mapping: str,
    problems: list[Problem],
) -> FieldSpec:
    """``spec`` with the column's limits, after checking the column can hold it."""
    column = columns.get(spec.column)
    if column is None:
        problems.append(
            Problem(
                source,
                f"column {spec.column!r} is not in table {table!r}",
                mapping,
                spec.crm_name,
            )
        )
        return spec
    if spec.type not in column.holds:
        problems.append(
            Problem(
                source,
                f"type {spec.type.value!r} cannot be stored in column "
                f"{table}.{spec.column} ({column.type_text})",
                mapping,
                spec.crm_name,
            )
        )
        return spec
    max_length = column.max_length
    if spec.type is ColumnType.SFID and max_length is not None and max_length < 18:
        problems.append(
            Problem(
                source,
                f"column {table}.{spec.column} holds {max_length} characters; an Id has 18",
                mapping,
                spec.crm_name,
            )
        )
    return FieldSpec(
        crm_name=spec.crm_name,
        column=spec.column,
        type=spec.type,
        reference_to=spec.reference_to,
        max_length=max_length,
        precision=column.precision,
        scale=column.scale,
    )
