"""End to end against the local sandbox (instant review): throughput, request economy and latency.

One export of N first mortgages is dropped; the agent daemon (``regbridge run``, its own process)
takes each from the export to a verified certificate in the document store. The centre's request
tally (sandbox/faults.py) counts every request it received. Figures:

- **throughput**: applications per second, drop to the last certificate stored; and the agent's
  achieved request rate against the *raw ceiling*: a bare ``httpx.AsyncClient`` taking applications
  through the same sandbox endpoints with the minimum requests, 32 at a time, in the same run
  (:func:`raw_ceiling`);
- **request economy**: requests per application against the minimum its steps need (create, one
  upload per material, submit, pay, the certificate's metadata, its content and the redirect to
  it), and against naive per-application polling at the same freshness;
- **latency**: from the centre's 缮证 (the certificate's ``issued_at``) to the certificate verified
  and stored (the agent's state), p50 and p95 — with the event feed, and with webhooks. Latency is
  a property of a pipeline that keeps up: it is measured with exports arriving one application at a
  time at a steady pace well under the throughput (as a branch's exports arrive over a day). The
  same figure under the burst of the throughput run, which is queueing behind thousands of
  applications, is given beside the throughput.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import Result, percentile
from sandbox.local import LocalCentre
from sdk.gm.sm2 import Sm2PrivateKey
from sdk.signing import KeySigner, sign_request
from tests.reliability.harness import (
    export_loans,
    make_branch_for,
    read_state,
    running_agent,
    stop_agent,
    wait_done,
)

__all__ = ["raw_ceiling", "run"]

POLL_SECONDS = 2.0  # the freshness the agent is configured for (its feed interval)
# a daily fee cap the run fits under: the default (100,000 元) holds a 5,000-application day's fees, as it should
FEES = {"auto_pay": True, "daily_cap": "100000000"}


def _latencies(centre: LocalCentre, branch: Any) -> list[float]:
    issued = {
        r["id"]: datetime.fromisoformat(json.loads(r["metadata"])["issued_at"]).timestamp()
        for r in centre.store.all(
            "SELECT id, metadata FROM certificates WHERE institution_id = ?", branch.institution_id
        )
    }
    with read_state(branch) as con:
        assert con is not None
        stored = {
            cid: datetime.fromisoformat(at).timestamp()
            for cid, at in con.execute("SELECT certificate_id, updated_at FROM certificates WHERE stage = 'stored'")
        }
    return [stored[c] - issued[c] for c in stored if c in issued]


def _key_of(branch: Any) -> KeySigner:
    from agent.config import load_config
    from agent.credentials.custody import custody_for
    from tests.agent.conftest import SECRET

    config = load_config(branch.config)
    signer = custody_for(config, SECRET).signer(config.centre.key_id)
    assert isinstance(signer, KeySigner)  # the benchmark's branch keeps its key in software, not a token
    return KeySigner(signer.key_id, signer.private_key)


def raw_ceiling(work: Path, apps: int, concurrency: int = 32) -> dict[str, float]:
    """What a plain ``httpx.AsyncClient`` achieves against the same sandbox's endpoints doing the same work.

    ``apps`` applications (built by the agent's own ingest, nothing sent) are taken through the
    minimum requests — create, one upload per material, submit, pay, the certificate's metadata, its
    content and the redirect to it — ``concurrency`` at a time, by a bare client in its own process
    (as the agent is): requests signed, bodies prepared beforehand, no validation, no state, no
    verification; the waits on the centre served by one event-feed reader. A fresh centre of the
    same code on the same machine, so neither run inherits the other's database.
    """
    import base64

    from cryptography.hazmat.primitives import serialization

    from sdk._operations import encode_json

    with LocalCentre() as centre:
        branch = make_branch_for(centre, work / "branch")
        export_loans(branch, "RAW", apps)
        agent = branch.agent()
        try:
            agent.scan()
            jobs = []
            for app in agent.store.applications("queued", limit=apps):
                declared = {m["id"]: m for m in app.payload["materials"]}
                materials = [
                    (m["material_id"], declared[m["material_id"]]["media_type"],
                     base64.b64encode(agent.blobs.get(m["blob"])).decode())
                    for m in agent.store.materials(app.reference)
                ]  # fmt: skip
                jobs.append({"body": encode_json(app.payload).decode(), "idem_create": app.idem_create,
                             "idem_submit": app.idem_submit, "materials": materials})  # fmt: skip
        finally:
            agent.close()
        key = _key_of(branch)
        assert not isinstance(key.private_key, Sm2PrivateKey)  # the benchmark runs the intl suite
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        job = work / "raw-job.json"
        job.write_text(json.dumps({"url": centre.url, "key_id": key.key_id, "pem": pem, "apps": jobs,
                                   "concurrency": concurrency}))  # fmt: skip
        out = subprocess.run([sys.executable, "-m", "bench.e2e", str(job)], capture_output=True, text=True,
                             timeout=apps * 2.0 + 300)  # fmt: skip
        if out.returncode:
            raise RuntimeError(f"the raw client failed: {out.stderr[-3000:]}")
        result: dict[str, float] = json.loads(out.stdout)
        result["tallied"] = centre.app.state.requests.total()
        return result


def _raw_lifecycle(job: dict[str, Any]) -> dict[str, float]:
    """The bare client (its own process): every application through the minimum requests."""
    import base64

    from cryptography.hazmat.primitives import serialization

    key = KeySigner(job["key_id"], serialization.load_pem_private_key(job["pem"].encode(), None))  # type: ignore[arg-type]
    concurrency = job["concurrency"]
    sent = 0

    async def go() -> int:
        nonlocal sent
        waits: dict[tuple[str, str], asyncio.Future[str]] = {}
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()

        def wait_for(kind: str, application_id: str) -> asyncio.Future[str]:
            return waits.setdefault((kind, application_id), loop.create_future())

        limits = httpx.Limits(max_connections=concurrency + 1)
        async with httpx.AsyncClient(base_url=job["url"], limits=limits, timeout=60) as http:

            async def send(method: str, path: str, content: bytes | None = None, **headers: str) -> httpx.Response:
                nonlocal sent
                request = http.build_request(method, path, content=content, headers=headers)
                if not path.startswith("http"):
                    sign_request(request, key)
                response = await http.send(request)
                sent += 1
                if response.status_code >= 400:
                    raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
                return response

            async def feed() -> None:
                cursor = ""
                while not finished.is_set():
                    page = (await send("GET", f"/v1/events?limit=200&after={cursor}")).json()
                    for event in page["events"]:
                        if event["type"] == "fee.assessed":
                            wait_for("fee", event["application_id"]).set_result(event["data"]["total"])
                        elif event["type"] == "certificate.issued":
                            wait_for("cert", event["application_id"]).set_result(event["data"]["certificate_id"])
                    cursor = page.get("next_cursor") or cursor
                    if not page.get("has_more"):
                        await asyncio.sleep(0.2)

            queue = list(job["apps"])

            async def worker() -> int:
                done = 0
                while queue:
                    app = queue.pop()
                    json_type = {"Content-Type": "application/json"}
                    created = await send("POST", "/v1/applications", app["body"].encode(),
                                         **json_type, **{"Idempotency-Key": app["idem_create"]})  # fmt: skip
                    aid = created.json()["application_id"]
                    for mid, media_type, b64 in app["materials"]:
                        await send("PUT", f"/v1/applications/{aid}/materials/{mid}", base64.b64decode(b64),
                                   **{"Content-Type": media_type})  # fmt: skip
                    await send("POST", f"/v1/applications/{aid}/submit", b"", **{"Idempotency-Key": app["idem_submit"]})
                    total = await wait_for("fee", aid)
                    payment = json.dumps({"amount": total, "method": "bank_transfer"}).encode()
                    await send("POST", f"/v1/applications/{aid}/payments", payment,
                               **json_type, **{"Idempotency-Key": f"pay-{aid}"})  # fmt: skip
                    cid = await wait_for("cert", aid)
                    await send("GET", f"/v1/certificates/{cid}")
                    redirect = await send("GET", f"/v1/certificates/{cid}/content")
                    await send("GET", str(http.base_url.join(redirect.headers["Location"])))
                    done += 1
                return done

            reader = asyncio.create_task(feed())
            try:
                done = sum(await asyncio.gather(*(worker() for _ in range(concurrency))))
            finally:
                finished.set()
                await reader
            return done

    started = time.monotonic()
    done = asyncio.run(go())
    seconds = time.monotonic() - started
    return {"apps": done, "requests": sent, "seconds": seconds, "rate": sent / seconds}


def _minimum_per_app(branch: Any) -> float:
    """create + one upload per material + submit + pay + certificate metadata + its redirect + its content."""
    with read_state(branch) as con:
        assert con is not None
        apps = int(con.execute("SELECT COUNT(*) FROM applications").fetchone()[0])
        materials = int(con.execute("SELECT COUNT(*) FROM materials").fetchone()[0])
    return 6 + materials / apps


def run(apps: int, work: Path, *, latency_apps: int = 60, gap: float = 1.0) -> list[Result]:
    results: list[Result] = []
    with LocalCentre() as centre:
        tally = centre.app.state.requests
        branch = make_branch_for(centre, work / "branch", concurrency=8, max_poll_seconds=POLL_SECONDS,
                                 straggler_seconds=3600, fees=FEES)  # fmt: skip
        log = work / "agent.stderr"
        loans = export_loans(branch, "BENCH", apps)
        tally.reset()
        with running_agent(branch, log=log) as proc:
            took = wait_done(branch, len(loans), proc, log=log, timeout=apps * 2.0 + 120, stalled=120)
            requests = tally.total()
            by_route = tally.by_route()
            stop_agent(proc)
        burst = _latencies(centre, branch)
        minimum = _minimum_per_app(branch)
    raw_apps = min(max(20, apps // 5), 1000)
    raw = raw_ceiling(work / "raw", raw_apps)
    ceiling = raw["rate"]

    rate = requests / took
    per_app = requests / apps
    results.append(
        Result(
            f"Throughput, {apps} applications drop → stored certificate",
            f"{apps / took:.1f} applications/s; {rate:.0f} requests/s",
            f"raw ceiling {ceiling:.0f} requests/s ({raw['apps'] / raw['seconds']:.1f} applications/s)",
            rate / ceiling,
            "request rate ≥ 0.7× the raw ceiling",
            rate / ceiling >= 0.7,
            [f"The raw ceiling: a bare httpx.AsyncClient taking {raw_apps} applications through the same endpoints "
             f"with the minimum requests ({raw['requests'] / raw['apps']:.2f} per application), 32 at a time, "
             f"against a fresh centre in the same run ({raw['tallied']:.0f} requests tallied by the centre). "
             f"The agent: {took:.0f} s in all, concurrency 8. Requests by route: "
             + ", ".join(f"{k} {v}" for k, v in sorted(by_route.items(), key=lambda kv: -kv[1])[:8]) + ". "
             f"Latency 缮证 → stored under this burst (queueing behind the whole export): p50 "
             f"{percentile(burst, 0.5):.1f} s, p95 {percentile(burst, 0.95):.1f} s."],
        )
    )  # fmt: skip
    lifetime = 86400.0  # a real centre: a working day from submission to 缮证 at best
    naive = minimum + lifetime / POLL_SECONDS
    feed_share = (by_route.get("GET /v1/events", 0)) / apps
    results.append(
        Result(
            "Request economy (requests per application, whole life)",
            f"{per_app:.2f} (of which event feed {feed_share:.2f})",
            f"minimum {minimum:.2f}; naive polling {naive:.0f}",
            per_app / minimum,
            "≤ 1.2× the minimum, ≥ 100× fewer than naive polling",
            per_app / minimum <= 1.2 and naive / per_app >= 100,
            [f"Naive polling reads each application every {POLL_SECONDS:g} s (the agent's feed interval, the same "
             f"freshness) for a one-day review: {lifetime / POLL_SECONDS:.0f} reads on top of the minimum, "
             f"{naive / per_app:.0f}× the agent. The agent's feed is one request per interval for all applications "
             "together, so its cost per application falls as more are in flight."],
        )
    )  # fmt: skip
    feed = _steady_latencies(work / "feed", latency_apps, gap, webhooks=False)
    results.append(_latency_result(f"event feed every {POLL_SECONDS:g} s", feed, POLL_SECONDS + 1, gap))
    hooks = _steady_latencies(work / "webhooks", latency_apps, gap, webhooks=True)
    results.append(_latency_result("webhooks (feed only every 60 s)", hooks, 1.0, gap))
    return results


def _steady_latencies(work: Path, apps: int, gap: float, *, webhooks: bool) -> list[float]:
    """One application dropped every ``gap`` seconds; 缮证 → stored for each."""
    env: dict[str, str] = {}
    if webhooks:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {"REGBRIDGE_WEBHOOK__ENABLED": "true", "REGBRIDGE_WEBHOOK__PORT": str(port)}
    with LocalCentre() as centre:
        poll = 60.0 if webhooks else POLL_SECONDS
        branch = make_branch_for(centre, work / "branch", concurrency=8, max_poll_seconds=poll, straggler_seconds=3600,
                                 fees=FEES)  # fmt: skip
        log = work / "agent.stderr"
        with running_agent(branch, log=log, **env) as proc:
            time.sleep(2.0)  # started (and, with webhooks, its receiver registered with the centre)
            for k in range(apps):
                started = time.monotonic()
                export_loans(branch, f"L{k:04d}", 1, start=k)
                time.sleep(max(0.0, gap - (time.monotonic() - started)))
            wait_done(branch, apps, proc, log=log, timeout=apps * 2.0 + 120, stalled=120)
            stop_agent(proc)
        return _latencies(centre, branch)


def _latency_result(how: str, latencies: list[float], target: float, gap: float) -> Result:
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    return Result(
        f"Latency 缮证 → stored, {how}",
        f"p50 {p50:.2f} s, p95 {p95:.2f} s",
        f"{target:g} s",
        p50 / target,
        f"p50 ≤ {target:g} s",
        p50 <= target,
        [f"{len(latencies)} certificates; one application dropped every {gap:g} s, so the agent is never "
         "saturated (latency under the throughput run's burst is given with the throughput)."],
    )  # fmt: skip


if __name__ == "__main__":  # the raw-ceiling client, in its own process
    print(json.dumps(_raw_lifecycle(json.loads(Path(sys.argv[1]).read_text()))))
