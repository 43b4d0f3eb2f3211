"""The billing database: models, Alembic migrations, and the repositories holding its SQL.

:mod:`sync.db.models` (the tables), :mod:`sync.db.types` (column types that behave the
same on SQLite and PostgreSQL), :mod:`sync.db.engine` (engines and migrations),
:mod:`sync.db.service_state` (small JSON documents the service keeps), and
:mod:`sync.db.repo` (every statement of the pull, the write side and monitoring).
"""
