"""A sandbox centre on a loopback port, in a thread of this process (the demo, the tests).

``with LocalCentre() as centre: ...`` gives its URL and the :class:`~sandbox.centre.Centre`
itself, for the admin acts a registration centre would do (accounts, bundles, scripts).
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from typing import Any, Literal

import uvicorn

from sandbox import samples
from sandbox.app import create_app
from sandbox.centre import Centre
from sandbox.faults import Faults
from sandbox.register import CHANGFENG, SAMPLE_BANK_NAME, SAMPLE_BANK_USCC, County
from sandbox.store import Store
from sandbox.workflow import Timing
from sdk.suites import Suite

__all__ = ["LocalCentre", "LoopbackServer"]


class LoopbackServer:
    """An ASGI app served by uvicorn in a daemon thread of this process, on a socket bound at once (so its
    URL is known before the app is built: a centre names it in its QR codes and bundles).

    Args:
        host: the interface (loopback unless a caller says otherwise).
        port: the port; 0 picks a free one.

    Raises:
        OSError: the port cannot be bound (another process holds it).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = socket.socket()
        # accepted connections inherit it; without it, Nagle + delayed ACK add ~40 ms to every exchange
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, app: Any, *, lifespan: Literal["auto", "on", "off"] = "on", what: str = "the server") -> None:
        """Serve ``app`` and wait (15 s at most) until it takes requests.

        Raises:
            RuntimeError: naming ``what``, when it did not start.
        """
        config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, date_header=False, access_log=False)
        self._server = server = uvicorn.Server(config)
        self._thread = thread = threading.Thread(target=server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.01)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._sock.close()


class LocalCentre:
    def __init__(self, *, timing: Timing | None = None, faults: Faults | None = None, store: Store | None = None,
                 port: int = 0, passphrase: bytes | None = None, suite: Suite | None = None,
                 county: County = CHANGFENG) -> None:  # fmt: skip
        self.store = store or Store()
        self._server = LoopbackServer(port=port)
        self.port, self.url = self._server.port, self._server.url
        self.app = create_app(self.store, timing=timing or Timing(step_seconds=0.0, correction_days=1.0),
                              faults=faults, public_url=self.url, passphrase=passphrase, suite=suite,
                              county=county, centre_name=f"{county.name}不动产登记中心")  # fmt: skip
        self.centre: Centre = self.app.state.centre

    def start(self) -> LocalCentre:
        self._server.start(self.app, lifespan="on", what="the sandbox centre")
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalCentre:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def bank(self, *, operators: tuple[str, ...] = ("op-001", "op-002"), valid_for: timedelta = timedelta(days=1),
             name: str = SAMPLE_BANK_NAME, uscc: str = SAMPLE_BANK_USCC,
             filed: bool = True) -> tuple[str, dict[str, Any]]:  # fmt: skip
        """A bank account with operators, and its enrolment bundle: (institution id, bundle).

        With ``filed`` (the default) the bank's 银行信息备案 is already at the centre (the sample 营业执照 and
        金融许可证, as ``regbridge filing`` files them); without it the bank must file before applying.
        """
        iid = self.centre.create_institution(name=name, uscc=uscc, licence_no="B0001H234010001",
                                           district=self.centre.county.district)
        for i, op in enumerate(operators, 1):
            self.centre.create_operator(iid, f"经办人{i}", operator_id=op)
        if filed:
            samples.file_sample(self.centre, iid)
        return iid, self.centre.enrolment_bundle(iid, self.url, valid_for=valid_for)
