"""The console served by uvicorn, in a thread of the daemon or as ``regbridge console``.

Loopback by default. LAN mode: ``[console] listen = "0.0.0.0"`` with ``tls_cert``/``tls_key`` (TLS
here, secure cookies), or ``behind_proxy = true`` (the bank's reverse proxy terminates TLS; its
``X-Forwarded-Proto`` and ``X-Forwarded-For`` are believed from ``trusted_proxies`` only, and cookies
are secure). Listening beyond loopback in plain HTTP without a proxy is refused.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

import uvicorn

from agent.console.app import ConsoleHost, create_app

__all__ = ["ConsoleServer", "ConsoleUnsafe"]


class ConsoleUnsafe(ValueError):
    """The console would serve passwords in clear beyond this machine."""


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


class ConsoleServer:
    """One console server for ``host``; :meth:`start` in a thread, :meth:`run` in the foreground.

    Raises:
        ConsoleUnsafe: a non-loopback address with neither TLS nor a reverse proxy.
        OSError: the port is taken.
    """

    def __init__(self, host: ConsoleHost, *, listen: str | None = None, port: int | None = None) -> None:
        c = host.config.console
        self.listen = listen or c.listen
        tls = c.tls_cert is not None and c.tls_key is not None
        if not _loopback(self.listen) and not tls and not c.behind_proxy:
            raise ConsoleUnsafe(
                f"the console would listen on {self.listen} in plain HTTP: set [console] tls_cert and tls_key "
                "(LAN mode), or behind_proxy = true behind the bank's TLS reverse proxy"
            )
        app = create_app(host, secure_cookies=tls or c.behind_proxy)
        kwargs: dict[str, object] = {}
        if tls:
            assert c.tls_cert is not None and c.tls_key is not None
            kwargs = {"ssl_certfile": str(host.config.resolve(c.tls_cert)),
                      "ssl_keyfile": str(host.config.resolve(c.tls_key))}  # fmt: skip
        self._sock = socket.socket(socket.AF_INET6 if ":" in self.listen else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.listen, c.port if port is None else port))
        self.port = int(self._sock.getsockname()[1])
        shown = "127.0.0.1" if self.listen in ("0.0.0.0", "::") else self.listen
        self.url = f"{'https' if tls else 'http'}://{shown}:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=c.behind_proxy,
            forwarded_allow_ips=",".join(c.trusted_proxies) if c.behind_proxy else None,
            server_header=False,
            **kwargs,  # type: ignore[arg-type]
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve until interrupted (``regbridge console``)."""
        self._server.run(sockets=[self._sock])

    def start(self) -> ConsoleServer:
        self._thread = threading.Thread(target=self.run, name="console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the console did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()
