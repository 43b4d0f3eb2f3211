"""Compare the local mirror with the CRM, independently of the pull's own conversions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import requests
from sqlalchemy import Engine, func, select

from sync.context import SyncContext
from sync.crm.client import CrmClient
from sync.crm.retry import RetryPolicy
from sync.crm.soql import select as soql_select
from sync.db.repo import mirrored_table
from sync.mapping.spec import ColumnType, Mapping, MappingSet
from sync.settings import Settings
from tests.support.sandbox import jwt_settings

FAST_RETRY = RetryPolicy(max_attempts=12, max_seconds=60, initial_wait=0.01, max_wait=0.05)


def crm_client(url: str, *, retry: RetryPolicy = FAST_RETRY, **settings: Any) -> CrmClient:
    """A CRM client logged into the sandbox at ``url`` (JWT bearer), fast retry policy."""
    return CrmClient.from_settings(jwt_settings(url, **settings), retry=retry)


def make_context(url: str, database_url: str, **settings: Any) -> SyncContext:
    """A started context against the sandbox at ``url``."""
    base = Settings(database_url=database_url, salesforce_instance_url=url, **settings)
    return SyncContext.from_settings(base, crm=crm_client(url))


def stats(url: str) -> dict[str, Any]:
    """The sandbox's call counters."""
    answer = requests.get(f"{url}/_sandbox/stats", timeout=10)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def hook(url: str, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
    """Call a sandbox test hook."""
    answer = requests.request(method, f"{url}/_sandbox/{path}", json=body, timeout=60)
    answer.raise_for_status()
    return answer.json()


def _normal(value: Any, kind: ColumnType, scale: int | None) -> Any:
    if value is None:
        return None
    if kind is ColumnType.DECIMAL:
        return Decimal(repr(value)).quantize(Decimal(1).scaleb(-(scale or 0)))
    if kind is ColumnType.INTEGER:
        return int(value)
    if kind is ColumnType.BOOLEAN:
        return bool(value)
    if kind is ColumnType.DATE:
        return dt.date.fromisoformat(value)
    if kind is ColumnType.DATETIME:
        text = value[:-5] + value[-5:-2] + ":" + value[-2:] if value[-5] in "+-" else value
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    return value


def crm_state(crm: CrmClient, mapping: Mapping) -> dict[str, tuple[bool, dict[str, Any]]]:
    """Every record of the mapping's object (deleted ones included): Id -> (deleted, values)."""
    soql = soql_select(mapping.crm_object, mapping.crm_fields)
    records = crm.query_all(soql, include_deleted=True)
    return {
        r["Id"]: (
            bool(r["IsDeleted"]),
            {f.column: _normal(r[f.crm_name], f.type, f.scale) for f in mapping.fields},
        )
        for r in records
    }


def local_state(engine: Engine, mapping: Mapping) -> dict[str, tuple[bool, dict[str, Any]]]:
    """Every row of the mapping's table: sfid -> (is_deleted, values)."""
    table = mirrored_table(mapping.table)
    columns = [table.c[f.column] for f in mapping.fields]
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.sfid, table.c.is_deleted, *columns)).all()
    return {
        row[0]: (bool(row[1]), {f.column: row[i + 2] for i, f in enumerate(mapping.fields)})
        for row in rows
    }


def mirror_differences(engine: Engine, crm: CrmClient, mappings: MappingSet) -> list[str]:
    """What differs between the CRM and the mirror (empty when the mirror is exact).

    Exact means: the same live Ids, the same values, a tombstone for every record the CRM
    lists as deleted, and every local row that the CRM no longer lists is a tombstone.
    """
    problems: list[str] = []
    for mapping in mappings:
        remote = crm_state(crm, mapping)
        local = local_state(engine, mapping)
        for sfid, (deleted, values) in remote.items():
            if sfid not in local:
                problems.append(f"{mapping.name}: {sfid} missing locally")
                continue
            local_deleted, local_values = local[sfid]
            if local_deleted != deleted:
                problems.append(f"{mapping.name}: {sfid} deleted={local_deleted}, CRM {deleted}")
            if local_values != values:
                diff = {k: (local_values[k], v) for k, v in values.items() if local_values[k] != v}
                problems.append(f"{mapping.name}: {sfid} differs (local, CRM): {diff}")
        for sfid, (deleted, _) in local.items():
            if sfid not in remote and not deleted:
                problems.append(f"{mapping.name}: {sfid} live locally, gone from the CRM")
    return problems


def duplicate_sfids(engine: Engine, mappings: MappingSet) -> dict[str, int]:
    """Per table, rows minus distinct sfids (all zero when nothing is duplicated)."""
    result = {}
    with engine.connect() as conn:
        for mapping in mappings:
            table = mirrored_table(mapping.table)
            rows, distinct = conn.execute(
                select(func.count(), func.count(func.distinct(table.c.sfid)))
            ).one()
            result[mapping.table] = rows - distinct
    return result
