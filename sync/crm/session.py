"""The HTTP session every CRM call goes through.

simple-salesforce builds every URL as ``https://{instance}/...``. When
``SALESFORCE_INSTANCE_URL`` is set (the local sandbox, a proxy), this session rewrites
the scheme and host of each such URL to that base, in this one place, so the same login
and query code runs against the sandbox and a real org. The host asked for travels in
``X-Forwarded-Host``, as behind a reverse proxy.

The session also gives every request a timeout unless the caller passes one:
simple-salesforce's login sends none, and a request without a timeout can hang a worker
forever on a half-open connection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 120.0)
"""(connect, read) seconds: connecting is quick or broken; a 2000-record page can be slow."""


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


class CrmSession(requests.Session):
    """A :class:`requests.Session` with a default timeout on every request."""

    def __init__(self, *, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


class InstanceSession(CrmSession):
    """A :class:`CrmSession` that sends every https request to ``instance_url``."""

    def __init__(
        self, instance_url: str, *, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT
    ) -> None:
        super().__init__(timeout=timeout)
        self.instance_url = instance_url.rstrip("/")

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, bytes):
            url = url.decode()
        rewritten = rewrite_url(url, self.instance_url)
        if rewritten != url:
            # As a reverse proxy does: the server learns which host was asked for (the
            # sandbox tells login.salesforce.com from the My Domain host by it).
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault("X-Forwarded-Host", urlsplit(url).netloc)
            kwargs["headers"] = headers
        return super().request(method, rewritten, *args, **kwargs)


def make_session(
    instance_url: str | None = None,
    *,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
) -> requests.Session:
    """A session for CRM calls: rewriting when ``instance_url`` is given, plain otherwise.

    Args:
        instance_url: base URL (``http://127.0.0.1:8700``) that replaces every https host.
        timeout: default (connect, read) timeout in seconds of each request.
    """
    session: CrmSession = (
        InstanceSession(instance_url, timeout=timeout)
        if instance_url
        else CrmSession(timeout=timeout)
    )
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
