"""The templates of the web process: one Jinja environment for the portal and ops pages.

Every template in ``templates/`` renders through :class:`Templates`, with the same
helpers: the formatting functions, unit prices, durations, and versioned URLs of the
files in ``static/`` (a changed file gets a new URL, so browsers never keep a stale copy).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from sync.changes.pricing import money_text
from sync.monitoring.charts import duration
from sync.portal import formatting

HERE = Path(__file__).resolve().parent


def _static_versions() -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12]
        for p in (HERE / "static").iterdir()
        if p.is_file()
    }


class Templates:
    """The templates folder with its helpers, ready to render."""

    def __init__(self) -> None:
        versions = _static_versions()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship with the code: no need to stat them on every request.
            auto_reload=False,
        )
        self.env.globals.update(
            money=formatting.money,
            quantity=formatting.quantity,
            day=formatting.day,
            iso_day=formatting.iso_day,
            status_class=formatting.status_class,
            # unit prices below a cent keep their digits on pages
            unit_price=money_text,
            duration=duration,
            static=lambda name: f"/static/{name}?v={versions.get(name, '0')}",
        )
        self.env.filters["when"] = formatting.utc_time

    def text(self, name: str, **context: Any) -> str:
        """Render template ``name`` with ``context``."""
        return self.env.get_template(name).render(**context)

    def response(self, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render template ``name`` into an HTML response."""
        return HTMLResponse(self.text(name, **context), status_code)
