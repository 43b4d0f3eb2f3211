"""uvicorn in a background thread of this process, shared by the sandbox and the portal.

The listening socket is bound before the server thread starts, so ``port=0`` gets a
free port, and :meth:`ThreadedServer.start` returns only once requests are answered.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import uvicorn


def bind(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio's own loop only turns Nagle's algorithm off
    # (TCP_NODELAY) on sockets whose proto says TCP, and accepted sockets inherit proto 0
    # otherwise (uvloop sets it regardless). With Nagle on, a response's body waits for
    # the client's delayed ACK of its headers: ~40 ms per request on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://HOST:PORT`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class Server(uvicorn.Server):
    """uvicorn that tells the application it is stopping before it waits for requests.

    uvicorn stops accepting, closes idle connections and then waits for the requests in
    flight (at most ``timeout_graceful_shutdown``, after which it cancels them with an
    ERROR and a traceback). A request the application holds open on purpose, such as a
    long poll, would only end by that cancellation: ``on_shutdown`` runs first, on the
    server's event loop, so the application can answer such requests at once.
    """

    def __init__(
        self, config: uvicorn.Config, on_shutdown: Callable[[], object] | None = None
    ) -> None:
        super().__init__(config)
        self.on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.on_shutdown is not None:
            # Wake-ups it schedules run at uvicorn's first await, after every connection
            # was told to close once its current answer is sent: released requests are
            # answered, and their clients cannot send another on the same connection.
            self.on_shutdown()
        await super().shutdown(sockets=sockets)


class ThreadedServer:
    """A uvicorn server running ``config`` on ``host:port`` in a daemon thread.

    ``on_shutdown`` is :attr:`Server.on_shutdown`.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        host: str,
        port: int,
        name: str,
        *,
        on_shutdown: Callable[[], object] | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.port = port
        self.name = name
        self.on_shutdown = on_shutdown
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self, timeout: float = 30.0) -> str:
        """Start serving and return the base URL.

        Raises:
            RuntimeError: already running, or not answering within ``timeout`` seconds.
        """
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} server is already running")
        sock = self._socket = bind(self.host, self.port)
        server = self._server = Server(self.config, self.on_shutdown)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.name} server did not start")
            time.sleep(0.01)
        self.url = base_url(sock)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the server thread to finish."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None
        self.url = ""
