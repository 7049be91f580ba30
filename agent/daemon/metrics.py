"""Prometheus metrics and a health check, served on loopback while ``regbridge run`` runs.

``GET /metrics`` (Prometheus text format):

* ``regbridge_applications{stage}``, ``regbridge_certificates{stage}``, ``regbridge_quarantine_open``,
  ``regbridge_alerts_open``, ``regbridge_receipt_batches_pending``, ``regbridge_paused``,
  ``regbridge_applications_overdue`` (past their 承诺办结时限), ``regbridge_working_calendar_fallback``,
  ``regbridge_applications_decided``, ``regbridge_applications_registered_first_time`` and
  ``regbridge_first_time_acceptance_ratio`` (registered without 补正 or refusal),
  ``regbridge_applications_held_by_preflight`` (refusals avoided by the register pre-flight) — read from
  the state store at each scrape, so they are right after a restart;
* ``regbridge_requests_total{method,route,code}`` and ``regbridge_request_seconds{method,route}`` —
  every request to the centre (ids in paths folded into ``{id}``);
* ``regbridge_submissions_total{outcome}`` (accepted, refused), ``regbridge_errors_total{kind}``
  (centre_5xx, rate_limited, network, job_failed);
* ``regbridge_certificate_deliveries_total{outcome}`` (stored, quarantined) and
  ``regbridge_certificate_delivery_seconds`` (from the certificate's appearance to it stored);
* ``regbridge_last_work_seconds`` — since the work loop last ran.

``GET /``: a small index page naming the two endpoints (and the console's address when it is served).

``GET /healthz``: 200 with a small JSON body while the work loop runs (``"paused"`` included: a
centre that suspended the channel is not the process's fault), 503 when the loop is stuck or the
state store cannot be read.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.state.status import first_time_acceptance, held_by_preflight
from agent.state.store import StateStore

__all__ = ["Metrics", "MetricsServer", "Observed", "TimedTransport"]

log = logging.getLogger("regbridge.agent")

_ID = re.compile(r"/(?:[a-z]+_[0-9a-f]{8,}|[0-9a-f]{16,}|[A-Za-z0-9_-]{32,})(?=/|$)")


def route_of(path: str) -> str:
    """``/v1/applications/app_3f2a…/submit`` → ``/v1/applications/{id}/submit`` (bounded label values)."""
    return _ID.sub("/{id}", path)


class Observed(Protocol):
    """What the metrics read of a running agent (:class:`agent.daemon.Agent`): its metrics, state and pause."""

    @property
    def metrics(self) -> Metrics: ...
    @property
    def store(self) -> StateStore: ...
    @property
    def paused(self) -> str | None: ...


class Metrics:
    """The agent's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("regbridge_requests", "Requests to the centre", ["method", "route", "code"], registry=r)
        self.request_seconds = Histogram(
            "regbridge_request_seconds",
            "Time for a request to the centre",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.submissions = Counter("regbridge_submissions", "Applications sent to the centre", ["outcome"], registry=r)
        self.errors = Counter("regbridge_errors", "Errors by kind", ["kind"], registry=r)
        self.deliveries = Counter(
            "regbridge_certificate_deliveries", "Certificates verified and stored, or quarantined", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.delivery_seconds = Histogram(
            "regbridge_certificate_delivery_seconds",
            "From the certificate's appearance to it verified and stored",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        self.last_work = time.monotonic()

    def watch(self, agent: Observed) -> None:
        """Read the queue gauges from ``agent``'s state at each scrape."""
        self.registry.register(_StateCollector(agent, self))

    def audited(self, record: dict[str, Any]) -> None:
        """Count what the audit log records (one place sees every submission and delivery)."""
        action = record["action"]
        if action in ("application.submitted", "application.resubmitted", "correction.supplement_sent"):
            self.submissions.labels("accepted").inc()
        elif action == "application.refused_invalid":
            self.submissions.labels("refused").inc()
        elif action == "certificate.stored":
            self.deliveries.labels("stored").inc()
        elif action == "certificate.quarantined":
            self.deliveries.labels("quarantined").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, agent: Observed, metrics: Metrics) -> None:
        self.agent = agent
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = self.agent.store.gauges()
        apps = GaugeMetricFamily("regbridge_applications", "Applications by stage", labels=["stage"])
        for stage, n in sorted(g["applications"].items()):
            apps.add_metric([stage], n)
        yield apps
        certs = GaugeMetricFamily("regbridge_certificates", "Certificates by stage", labels=["stage"])
        for stage, n in sorted(g["certificates"].items()):
            certs.add_metric([stage], n)
        yield certs
        yield GaugeMetricFamily("regbridge_quarantine_open", "Open quarantine items", value=g["quarantine_open"])
        yield GaugeMetricFamily("regbridge_alerts_open", "Open alerts", value=g["alerts_open"])
        instances = self.agent.store.instances()  # several instances on one state (docs/state.md)
        leader = GaugeMetricFamily(
            "regbridge_instance_leader", "1 for the instance holding the leader lease", labels=["instance", "host"]
        )
        claims = GaugeMetricFamily(
            "regbridge_instance_claims", "Applications and certificates claimed by each instance now",
            labels=["instance", "host"],
        )  # fmt: skip
        held = GaugeMetricFamily(
            "regbridge_instance_leases", "Named leases each instance holds now (the leader lease among them)",
            labels=["instance", "host"],
        )  # fmt: skip
        beat = GaugeMetricFamily(
            "regbridge_instance_heartbeat_age_seconds", "Seconds since each instance's heartbeat",
            labels=["instance", "host"],
        )  # fmt: skip
        for i in instances:
            leader.add_metric([i["id"], i["host"]], 1 if i["leader"] else 0)
            claims.add_metric([i["id"], i["host"]], i["claims"])
            held.add_metric([i["id"], i["host"]], len(i["leases"]))
            beat.add_metric([i["id"], i["host"]], i["heartbeat_age"])
        yield leader
        yield claims
        yield held
        yield beat
        figure = first_time_acceptance(self.agent.store)
        yield GaugeMetricFamily(
            "regbridge_applications_decided", "Applications the centre decided", value=figure["decided"]
        )
        yield GaugeMetricFamily(
            "regbridge_applications_registered_first_time",
            "Decided applications registered without any 补正 or refusal on the way",
            value=figure["first_time"],
        )
        yield GaugeMetricFamily(
            "regbridge_applications_held_by_preflight",
            "Applications the register pre-flight held before sending (a refusal or 补正 avoided)",
            value=held_by_preflight(self.agent.store),
        )
        if figure["share"] is not None:
            yield GaugeMetricFamily(
                "regbridge_first_time_acceptance_ratio",
                "Share of decided applications registered first time (no 补正, no refusal)",
                value=figure["share"],
            )
        alerts = [str(a["kind"]) for a in self.agent.store.alerts()]
        yield GaugeMetricFamily(
            "regbridge_applications_overdue",
            "Accepted applications past their committed time limit (承诺办结时限), as of the last limits check",
            value=sum(k.startswith("overdue:") for k in alerts),
        )
        yield GaugeMetricFamily(
            "regbridge_working_calendar_fallback",
            "1 while a running time limit counts days of a year without the calendar library's data",
            value=int("calendar" in alerts),
        )
        yield GaugeMetricFamily(
            "regbridge_receipt_batches_pending", "Receipt files not written yet", value=g["receipt_batches_pending"]
        )
        yield GaugeMetricFamily(
            "regbridge_paused", "1 while submissions are paused", value=int(bool(self.agent.paused))
        )
        yield GaugeMetricFamily(
            "regbridge_last_work_seconds",
            "Seconds since the work loop last ran",
            value=time.monotonic() - self.metrics.last_work,
        )


def _origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` of a request: which centre it went to."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


class TimedTransport(httpx.BaseTransport):
    """An httpx transport that times and counts every request to the centre."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        metrics: Metrics,
        on_contact: Callable[[bool, str, str], None] | None = None,
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.on_contact = on_contact  # told whether the centre (its origin: scheme://host:port) could be reached

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        route = route_of(request.url.path)
        started = time.perf_counter()
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError as exc:
            self.metrics.requests.labels(request.method, route, "error").inc()
            self.metrics.errors.labels("network").inc()
            if self.on_contact is not None and isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                self.on_contact(False, f"{type(exc).__name__}: {exc}", _origin(request.url))
            raise
        finally:
            self.metrics.request_seconds.labels(request.method, route).observe(time.perf_counter() - started)
        self.metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        if self.on_contact is not None:
            self.on_contact(True, "", _origin(request.url))
        if response.status_code >= 500:
            self.metrics.errors.labels("centre_5xx").inc()
        elif response.status_code == 429:
            self.metrics.errors.labels("rate_limited").inc()
        return response

    def close(self) -> None:
        self.inner.close()


class MetricsServer:
    """``/metrics`` and ``/healthz`` on a small threaded HTTP server (loopback by default)."""

    def __init__(self, agent: Observed, host: str, port: int, stale_seconds: float) -> None:
        self.agent = agent
        self.stale_seconds = stale_seconds
        self.console_url: str | None = None  # set by the daemon when it serves the console too
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    body, kind, code = agent.metrics.exposition(), CONTENT_TYPE_LATEST, 200
                elif path in ("/", "/index.html"):
                    body, kind, code = server.index().encode(), "text/html; charset=utf-8", 200
                elif path == "/healthz":
                    code, health = server.health()
                    body, kind = json.dumps(health).encode(), "application/json"
                else:
                    body, kind, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def index(self) -> str:
        """The page at ``/``: what this port serves, the health in one line (no personal data)."""
        code, health = self.health()
        console = f'<li><a href="{self.console_url}">{self.console_url}</a> — 本地管理控制台 (web console)</li>' if (
            self.console_url) else ""  # fmt: skip
        return (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>RegBridge agent</title></head>'
            "<body><h1>RegBridge agent</h1>"
            f"<p>health: <b>{health['status']}</b> (HTTP {code})</p><ul>"
            '<li><a href="/metrics">/metrics</a> — Prometheus metrics</li>'
            '<li><a href="/healthz">/healthz</a> — health check (JSON; 200 ok, 503 failing)</li>'
            f"{console}</ul></body></html>\n"
        )

    def health(self) -> tuple[int, dict[str, Any]]:
        late = time.monotonic() - self.agent.metrics.last_work
        try:
            gauges = self.agent.store.gauges()
        except Exception as exc:
            return 503, {"status": "failing", "reason": f"state store: {type(exc).__name__}"}
        body = {
            "status": "paused" if self.agent.paused else "ok",
            "last_work_seconds": round(late, 1),
            "open": sum(n for s, n in gauges["applications"].items() if s not in ("done", "rejected", "quarantined")),
            "alerts": gauges["alerts_open"],
        }
        if late > self.stale_seconds:
            return 503, {**body, "status": "failing", "reason": f"the work loop has not run for {late:.0f} s"}
        return 200, body

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
