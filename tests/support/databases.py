"""Migrated billing databases for tests, with one Alembic upgrade per database kind.

Running the migrations for every test costs far more than the tests themselves, so a
test process migrates once per kind and copies the result:

- SQLite: one migrated template file, copied to each test's database path.
- PostgreSQL: one migrated template schema, dumped with ``pg_dump`` (schema, data and
  sequence positions) and dropped; each test's fresh schema is filled by replaying that
  dump with the template's name replaced by the test's.

Both copies are exact (tables, indexes, constraints, ``alembic_version`` and any rows the
migrations insert), so code that checks the schema revision or compares the schema with
the models sees what an upgrade would have left. The migrations themselves still run for
real: once here per process, and in the tests that upgrade an empty database.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg

from sync.db.engine import make_engine, upgrade

_SEARCH_PATH = re.compile(r"(?:^|&)options=-csearch_path%3D([A-Za-z0-9_]+)")

# A plain pg_dump opens with session settings, which would outlive the transaction that
# replays it, and recent versions wrap it in psql's ``\restrict`` meta-commands, not SQL.
_HEADER_PREFIXES = ("SET ", "SELECT pg_catalog.set_config(")
_PSQL_META = re.compile(r"^\\(un)?restrict ")


def postgres_schema_url(base: str, schema: str) -> str:
    """``base`` with a search_path that puts every table in ``schema``."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def schema_of(url: str) -> str:
    """The schema named by the search_path of a :func:`postgres_schema_url` URL.

    Raises:
        ValueError: the URL names no schema.
    """
    match = _SEARCH_PATH.search(urlsplit(url).query)
    if match is None:
        raise ValueError(f"no search_path schema in {url!r}")
    return match.group(1)


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///PATH`` URL."""
    if not url.startswith("sqlite:///") or url in ("sqlite:///", "sqlite:///:memory:"):
        raise ValueError(f"not a SQLite file URL: {url!r}")
    return Path(unquote(url[len("sqlite:///") :]))


@dataclass(frozen=True)
class _PostgresTemplate:
    schema: str  # the name the dumps use, replaced by each copy's
    ddl: str  # tables, sequences, indexes, constraints and rows
    data: str  # rows and sequence positions only
    tables: tuple[str, ...]


_FINGERPRINT = """
SELECT c.relname, c.relkind::text,
       coalesce((SELECT string_agg(a.attname || ':' || a.atttypid::text || ':'
                                   || a.attnotnull::text, ',' ORDER BY a.attnum)
                 FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), ''),
       coalesce((SELECT string_agg(k.conname || ':' || k.contype::text, ',' ORDER BY k.conname)
                 FROM pg_constraint k WHERE k.conrelid = c.oid), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s
ORDER BY c.relname
"""


class MigratedTemplates:
    """Migrated templates of one test process, made on first use.

    PostgreSQL schemas filled from the template are kept in a pool and lent to one test
    at a time: before a schema is lent again, every row is deleted, the template's rows
    and sequence positions are put back, and its structure is compared with the
    template's. A schema whose structure a test changed is dropped, never lent again.

    Args:
        workdir: where the SQLite template lives (a directory of this process only).
        postgres_url: the PostgreSQL server, or None when PostgreSQL is not configured.
    """

    def __init__(self, workdir: Path, postgres_url: str | None) -> None:
        self.workdir = workdir
        self.postgres_url = postgres_url
        self._sqlite: Path | None = None
        self._pg: _PostgresTemplate | None = None
        self._fingerprint: list[tuple[str, ...]] | None = None
        self._idle: list[str] = []
        self._lent: set[str] = set()
        self._abandoned: list[str] = []

    def sqlite_template(self) -> Path:
        """The migrated SQLite template file (made on the first call)."""
        if self._sqlite is None:
            path = self.workdir / "template.db"
            engine = make_engine(f"sqlite:///{path}")
            try:
                upgrade(engine)
                with engine.connect() as conn:
                    # Fold the write-ahead log into the main file, which is all that is copied.
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                engine.dispose()
            self._sqlite = path
        return self._sqlite

    def _server(self) -> str:
        if self.postgres_url is None:
            raise RuntimeError("PostgreSQL is not configured")
        return self.postgres_url

    def _connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        # The catalogs of a busy test server are large and bloated, so the planner would
        # JIT-compile even these small catalog queries, which costs more than running them.
        return psycopg.connect(self._server(), autocommit=autocommit, options="-c jit=off")

    def postgres_template(self) -> _PostgresTemplate:
        """The dumps of a schema migrated once (made on the first call)."""
        if self._pg is None:
            server = self._server()
            schema = f"bs_tmpl_{uuid.uuid4().hex[:12]}"
            with self._connect(autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            try:
                engine = make_engine(postgres_schema_url(server, schema))
                try:
                    upgrade(engine)
                finally:
                    engine.dispose()
                ddl = _pg_dump(server, schema)
                data = _pg_dump(server, schema, "--data-only")
            finally:
                with self._connect(autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            tables = tuple(re.findall(rf"^CREATE TABLE {schema}\.(\w+) \(", ddl, re.MULTILINE))
            if not tables:
                raise RuntimeError("the dump of the migrated schema has no tables")
            self._pg = _PostgresTemplate(schema, ddl, data, tables)
        return self._pg

    def fill(self, url: str) -> None:
        """Give the empty database at ``url`` the migrated schema (and its rows).

        ``url`` is a SQLite file URL whose file does not exist yet, or a PostgreSQL URL
        whose search_path names an existing, empty schema.
        """
        if url.startswith("sqlite"):
            target = sqlite_path(url)
            if target.exists():
                raise FileExistsError(f"{target} exists: only a fresh database is filled")
            shutil.copyfile(self.sqlite_template(), target)
            return
        template = self.postgres_template()
        with self._connect() as conn:
            conn.execute(self._for(template.ddl, schema_of(url)).encode())

    def _for(self, script: str, schema: str) -> str:
        template = self.postgres_template()
        return re.sub(rf"\b{template.schema}\b", schema, script)

    def lend_postgres(self) -> str:
        """The URL of a migrated schema holding only the migrations' rows, for one test.

        Give it back with :meth:`give_back` once nothing uses it any more.
        """
        server = self._server()
        while self._idle:
            schema = self._idle.pop()
            try:
                reset = self._reset(schema)
            except psycopg.errors.LockNotAvailable:
                # A connection of a killed process still holds a lock: leave the schema
                # for close() and take a fresh one.
                self._abandoned.append(schema)
                continue
            if reset:
                self._lent.add(schema)
                return postgres_schema_url(server, schema)
            self._drop(schema)
        schema = f"bs_db_{uuid.uuid4().hex[:12]}"
        with self._connect(autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        self._lent.add(schema)
        url = postgres_schema_url(server, schema)
        self.fill(url)
        if self._fingerprint is None:
            self._fingerprint = self._structure(schema)
        return url

    def is_lent(self, url: str) -> bool:
        """True when ``url`` is a schema of :meth:`lend_postgres` (already migrated)."""
        return not url.startswith("sqlite") and schema_of(url) in self._lent

    def give_back(self, url: str) -> None:
        """Return a schema of :meth:`lend_postgres` to the pool."""
        schema = schema_of(url)
        self._lent.discard(schema)
        self._idle.append(schema)

    def close(self) -> None:
        """Drop every schema of the pool."""
        for schema in [*self._idle, *self._lent, *self._abandoned]:
            self._drop(schema)
        self._idle.clear()
        self._lent.clear()
        self._abandoned.clear()

    def _structure(self, schema: str) -> list[tuple[str, ...]]:
        with self._connect(autocommit=True) as conn:
            rows = conn.execute(_FINGERPRINT, (schema,)).fetchall()
        return [tuple(str(v) for v in row) for row in rows]

    def _reset(self, schema: str) -> bool:
        """Put ``schema`` back to the template's rows; False when its structure changed."""
        if self._structure(schema) != self._fingerprint:
            return False
        template = self.postgres_template()
        deletes = "".join(f'DELETE FROM "{schema}"."{t}";\n' for t in template.tables)
        with self._connect() as conn:
            # Rows go in any order: foreign keys are not checked while the copy is restored.
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("SET LOCAL lock_timeout = '10s'")
            conn.execute((deletes + self._for(template.data, schema)).encode())
        return True

    def _drop(self, schema: str) -> None:
        with self._connect(autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _pg_dump(server_url: str, schema: str, *options: str) -> str:
    """The plain-SQL dump of ``schema`` (without schema creation or session settings)."""
    argv = ["pg_dump", "--no-owner", "--no-privileges", "--inserts", "--schema", schema]
    result = subprocess.run(
        [*argv, *options, server_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump of the template schema failed: {result.stderr.strip()}")
    kept = []
    header = True
    for line in result.stdout.splitlines():
        if _PSQL_META.match(line):
            continue
        if header and line.startswith(_HEADER_PREFIXES):
            continue
        if line.startswith(("CREATE ", "ALTER ", "INSERT ")):
            header = False
        if line.startswith(("CREATE SCHEMA ", "ALTER SCHEMA ")):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"
