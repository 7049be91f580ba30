"""A sandbox centre on a loopback port, in a thread of this process (the demo, the tests).

``with LocalCentre() as centre: ...`` gives its URL and the :class:`~sandbox.centre.Centre`
itself, for the admin acts a registration centre would do (accounts, bundles, scripts).
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from typing import Any

import uvicorn

from sandbox import samples
from sandbox.app import create_app
from sandbox.centre import Centre
from sandbox.faults import Faults
from sandbox.register import CHANGFENG, SAMPLE_BANK_NAME, SAMPLE_BANK_USCC, County
from sandbox.store import Store
from sandbox.workflow import Timing
from sdk.suites import Suite

__all__ = ["LocalCentre"]


class LocalCentre:
    def __init__(self, *, timing: Timing | None = None, faults: Faults | None = None, store: Store | None = None,
                 port: int = 0, passphrase: bytes | None = None, suite: Suite | None = None,
                 county: County = CHANGFENG) -> None:  # fmt: skip
        self.store = store or Store()
        self._sock = socket.socket()
        # accepted connections inherit it; without it, Nagle + delayed ACK add ~40 ms to every exchange
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(self.store, timing=timing or Timing(step_seconds=0.0, correction_days=1.0),
                              faults=faults, public_url=self.url, passphrase=passphrase, suite=suite,
                              county=county, centre_name=f"{county.name}不动产登记中心")  # fmt: skip
        self.centre: Centre = self.app.state.centre
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", lifespan="on", date_header=False, access_log=False)
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> LocalCentre:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the sandbox centre did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

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
