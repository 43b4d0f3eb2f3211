"""The HTTP session every CRM call goes through.

simple-salesforce builds every URL as ``https://{instance}/...``. When
``SALESFORCE_INSTANCE_URL`` is set (the local sandbox, a proxy), this session rewrites
the scheme and host of each such URL to that base, in this one place, so the same login
and query code runs against the sandbox and a real org.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests


def rewrite_url(url: str, instance_url: str) -> str:
    """``url`` with its scheme and host replaced by those of ``instance_url``.

    Only ``https`` URLs are rewritten; anything else (already rewritten, relative) is
    returned as is. A path prefix on ``instance_url`` is kept in front of the path.
    """
    parts = urlsplit(url)
    if parts.scheme != "https":
        return url
    base = urlsplit(instance_url)
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))


class InstanceSession(requests.Session):
    """A :class:`requests.Session` that sends every https request to ``instance_url``."""

    def __init__(self, instance_url: str) -> None:
        super().__init__()
        self.instance_url = instance_url.rstrip("/")

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, bytes):
            url = url.decode()
        return super().request(method, rewrite_url(url, self.instance_url), *args, **kwargs)


def make_session(instance_url: str | None = None) -> requests.Session:
    """A session for CRM calls: rewriting when ``instance_url`` is given, plain otherwise."""
    session: requests.Session = (
        InstanceSession(instance_url) if instance_url else requests.Session()
    )
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
