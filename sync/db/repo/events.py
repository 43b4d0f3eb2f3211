"""Repository of ``event_channels``: the replay id of the last event handled per channel."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from sync.db.models import EventChannel


def replay_ids(engine: Engine) -> dict[str, int | None]:
    """Every stored channel with its replay id (None: resume from new events)."""
    with engine.connect() as conn:
        rows = conn.execute(select(EventChannel.channel, EventChannel.replay_id)).all()
    return {row.channel: row.replay_id for row in rows}


def save_replay_id(engine: Engine, channel: str, replay_id: int | None, now: dt.datetime) -> None:
    """Store ``replay_id`` as the last event handled on ``channel``."""
    with engine.begin() as conn:
        written = conn.execute(
            update(EventChannel)
            .where(EventChannel.channel == channel)
            .values(replay_id=replay_id, updated_at=now)
        ).rowcount
    if written:
        return
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(EventChannel).values(channel=channel, replay_id=replay_id, updated_at=now)
            )
    except IntegrityError:
        # another writer inserted it meanwhile: update instead
        with engine.begin() as conn:
            conn.execute(
                update(EventChannel)
                .where(EventChannel.channel == channel)
                .values(replay_id=replay_id, updated_at=now)
            )


def forget_channel(engine: Engine, channel: str) -> None:
    """Drop ``channel``'s stored replay id (its mapping no longer listens)."""
    with engine.begin() as conn:
        conn.execute(delete(EventChannel).where(EventChannel.channel == channel))
