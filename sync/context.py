"""What every unit of work needs: settings, the database, the CRM client, the mappings.

:meth:`SyncContext.from_settings` is the service's start: it brings the database schema
up to date, loads mappings/*.yaml and validates them against the CRM's describe (one
/composite call for up to 25 objects), so that a bad mapping stops the service with one
clear message before any data moves.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from sync.crm.client import CrmClient
from sync.crm.errors import CrmError
from sync.crm.soql import and_, select
from sync.db import service_state
from sync.db.engine import make_engine, upgrade
from sync.db.shapes import MIRRORED_SHAPES
from sync.mapping.loader import default_mappings_dir, load_mappings
from sync.mapping.spec import Direction, Mapping, MappingError, MappingSet, Problem
from sync.mapping.validate import validate_mappings
from sync.settings import Settings

logger = logging.getLogger("sync.context")


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def crm_from_settings(settings: Settings) -> CrmClient:
    """The CRM client ``settings`` describe.

    Without ``SALESFORCE_USERNAME`` but with ``SALESFORCE_INSTANCE_URL``, the instance is
    taken to be the embedded sandbox and its default login is used.

    Raises:
        CrmConfigurationError: neither a login nor a sandbox URL is configured.
    """
    if settings.uses_embedded_crm and settings.salesforce_instance_url:
        return CrmClient.from_settings(settings, sandbox_url=settings.salesforce_instance_url)
    return CrmClient.from_settings(settings)


@dataclass
class SyncContext:
    """The collaborators of a pull (and of everything built on it).

    Attributes:
        settings: the process settings.
        engine: the billing database.
        crm: the CRM client.
        mappings: the validated mappings.
        clock: the time source (tests pass a frozen one).
        warnings: mapping limits some values could exceed (see ``mappings check``).
    """

    settings: Settings
    engine: Engine
    crm: CrmClient
    mappings: MappingSet
    clock: Callable[[], dt.datetime] = utcnow
    warnings: list[Problem] = field(default_factory=list)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        crm: CrmClient | None = None,
        engine: Engine | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> SyncContext:
        """Start: upgrade the schema, load and validate the mappings.

        Args:
            settings: the process settings.
            crm: a client to use (default: :func:`crm_from_settings`).
            engine: an engine to use (default: one for ``settings.database_url``).
            clock: the time source.

        Raises:
            MappingError: a mapping is malformed or does not match the CRM.
            CrmError: the CRM could not be asked for its describe.
            CrmConfigurationError: no CRM login is configured, or the org does not offer
                ``SALESFORCE_API_VERSION``.
        """
        mappings = load_mappings(default_mappings_dir(settings.mappings_dir), MIRRORED_SHAPES)
        own_engine = engine is None
        engine = engine if engine is not None else make_engine(settings.database_url)
        client = crm if crm is not None else crm_from_settings(settings)
        try:
            upgrade(engine)
            # A version the org does not offer stops the start, naming what it offers.
            client.check_api_version()
            describes = describe_objects(client, mappings)
            report = validate_mappings(mappings, describes)
            check_filters(client, report.mappings)
            save_field_limits(engine, report.mappings, describes, clock())
        except BaseException:
            if own_engine:
                engine.dispose()
            if crm is None:
                client.close()
            raise
        for warning in report.warnings:
            logger.info("mapping limit: %s", warning)
        return cls(
            settings=settings,
            engine=engine,
            crm=client,
            mappings=report.mappings,
            clock=clock,
            warnings=report.warnings,
        )

    def now(self) -> dt.datetime:
        """The context clock's current time."""
        return self.clock()

    def mapping(self, name: str) -> Mapping:
        """The mapping called ``name``.

        Raises:
            KeyError: no such mapping; the message lists the known ones.
        """
        try:
            return self.mappings[name]
        except KeyError:
            raise KeyError(
                f"no mapping called {name!r} (known: {', '.join(self.mappings.names)})"
            ) from None

    def close(self) -> None:
        """Release the database pool and the CRM session."""
        self.engine.dispose()
        self.crm.close()


def describe_objects(crm: CrmClient, mappings: MappingSet) -> dict[str, dict[str, Any] | None]:
    """The describe of every mapped object, 25 per /composite call.

    Returns:
        Describe JSON by object name as the mappings spell it; None for an object the CRM
        does not know (404 NOT_FOUND).

    Raises:
        CrmError: the call failed, or a describe failed for another reason.
    """
    objects = list(dict.fromkeys(m.crm_object for m in mappings))
    found: dict[str, dict[str, Any] | None] = {}
    for answer in crm.describe_many(objects):
        if answer.error is not None:
            raise CrmError(f"describe {answer.sobject} failed: {answer.text}", status=answer.status)
        found[answer.sobject] = answer.describe
    return found


def check_filters(crm: CrmClient, mappings: MappingSet) -> None:
    """Run each mapping's SOQL filter once (LIMIT 1), 5 per /composite call.

    Raises:
        MappingError: the CRM rejects a filter; the message names file and mapping.
    """
    filtered = [m for m in mappings if m.filter]
    soqls = [select(m.crm_object, ["Id"], where=and_(m.filter), limit=1) for m in filtered]
    problems = [
        Problem(
            mapping.source, f"the CRM rejects the filter: {answer.text}", mapping.name, "filter"
        )
        for mapping, answer in zip(filtered, crm.query_many(soqls), strict=True)
        if answer.error is not None
    ]
    if problems:
        raise MappingError(problems)


def save_field_limits(
    engine: Engine,
    mappings: MappingSet,
    describes: dict[str, dict[str, Any] | None],
    now: dt.datetime,
) -> None:
    """Keep the CRM's text field lengths of writable mappings, for the portal's checks.

    The portal never calls the CRM; it reads these limits (by table and column) to refuse
    a value the CRM would refuse, before anything is staged.
    """
    limits: dict[str, dict[str, int]] = {}
    for mapping in mappings:
        if mapping.direction is not Direction.READ_WRITE:
            continue
        describe = describes.get(mapping.crm_object) or {}
        by_name = {
            str(f.get("name", "")).lower(): f
            for f in describe.get("fields") or []
            if isinstance(f, dict)
        }
        for spec in mapping.fields:
            meta = by_name.get(spec.crm_name.lower())
            length = int(meta.get("length") or 0) if meta else 0
            if length > 0:
                limits.setdefault(mapping.table, {})[spec.column] = length
    service_state.write(engine, service_state.FIELD_LIMITS_KEY, limits, now)
