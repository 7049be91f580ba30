"""End to end against the local sandbox (instant review): throughput, request economy and latency.

One export of N first mortgages is dropped; the agent daemon (``regbridge run``, its own process)
takes each from the export to a verified certificate in the document store. The centre's request
tally (sandbox/faults.py) counts every request it received. Figures:

- **throughput**: applications per second, drop to the last certificate stored; and the agent's
  achieved request rate against the *raw ceiling*: plain ``httpx.AsyncClient`` requests (signed,
  32 at a time) to the same sandbox's endpoints in the same run;
- **request economy**: requests per application against the minimum its steps need (create, one
  upload per material, submit, pay, the certificate's metadata, its content and the redirect to
  it), and against naive per-application polling at the same freshness;
- **latency**: from the centre's 缮证 (the certificate's ``issued_at``) to the certificate verified
  and stored (the agent's state), p50 and p95 — with the event feed, and with webhooks.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import Result, percentile
from sandbox.local import LocalCentre
from sdk.signing import KeySigner, sign_request
from tests.reliability.harness import agent_process, export_loans, local_counts, make_branch_for

__all__ = ["raw_ceiling", "run"]

POLL_SECONDS = 2.0  # the freshness the agent is configured for (its feed interval)


def _wait_done(branch: Any, expected: int, proc: Any, log: Path, timeout: float) -> float:
    started = time.monotonic()
    while True:
        counts = local_counts(branch)
        if counts["done"] >= expected and not counts["_pending_receipts"] and not counts["_unstored"]:
            return time.monotonic() - started
        if proc.poll() is not None:
            raise RuntimeError(f"the agent died: {log.read_text()[-2000:]}")
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not done in {timeout:g} s: {counts}")
        time.sleep(0.25)


def _latencies(centre: LocalCentre, branch: Any) -> list[float]:
    issued = {
        r["id"]: datetime.fromisoformat(json.loads(r["metadata"])["issued_at"]).timestamp()
        for r in centre.store.all(
            "SELECT id, metadata FROM certificates WHERE institution_id = ?", branch.institution_id
        )
    }
    con = sqlite3.connect(f"file:{branch.root / 'var' / 'state.db'}?mode=ro", uri=True)
    try:
        stored = {
            cid: datetime.fromisoformat(at).timestamp()
            for cid, at in con.execute("SELECT certificate_id, updated_at FROM certificates WHERE stage = 'stored'")
        }
    finally:
        con.close()
    return [stored[c] - issued[c] for c in stored if c in issued]


def _key_of(branch: Any) -> KeySigner:
    from agent.config import load_config
    from agent.keys import custody_for
    from tests.agent.conftest import SECRET

    config = load_config(branch.config)
    signer = custody_for(config, SECRET).signer(config.centre.key_id)
    return KeySigner(signer.key_id, signer.private_key)


def raw_ceiling(centre: LocalCentre, branch: Any, seconds: float = 5.0, concurrency: int = 32) -> float:
    """Requests per second the sandbox answers to plain, signed httpx.AsyncClient reads of its endpoints.

    The client runs in its own process, as the agent does, so that it does not share an interpreter
    with the centre.
    """
    key = _key_of(branch)
    ids = [r["id"] for r in centre.store.all("SELECT id FROM applications WHERE institution_id = ? LIMIT 50",
                                              branch.institution_id)]  # fmt: skip
    cert = centre.store.one("SELECT id FROM certificates WHERE institution_id = ? LIMIT 1", branch.institution_id)
    paths = [f"/v1/applications/{i}" for i in ids] + ["/v1/events?limit=50", "/v1/institution"]
    if cert:
        paths.append(f"/v1/certificates/{cert['id']}")
    from cryptography.hazmat.primitives import serialization

    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    job = {"url": centre.url, "key_id": key.key_id, "pem": pem, "paths": paths, "seconds": seconds,
           "concurrency": concurrency}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "bench.e2e"], input=json.dumps(job), capture_output=True, text=True,
                         check=True, timeout=seconds + 60)  # fmt: skip
    return float(json.loads(out.stdout)["rate"])


def _ceiling(job: dict[str, Any]) -> float:
    from cryptography.hazmat.primitives import serialization

    key = KeySigner(job["key_id"], serialization.load_pem_private_key(job["pem"].encode(), None))  # type: ignore[arg-type]
    paths, concurrency = job["paths"], job["concurrency"]

    async def go() -> int:
        done = 0
        deadline = time.monotonic() + job["seconds"]
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=job["url"], limits=limits) as http:

            async def worker(n: int) -> None:
                nonlocal done
                i = n
                while time.monotonic() < deadline:
                    request = http.build_request("GET", paths[i % len(paths)])
                    sign_request(request, key)
                    response = await http.send(request)
                    if response.status_code != 200:
                        raise RuntimeError(f"{request.url}: {response.status_code} {response.text}")
                    done += 1
                    i += concurrency

            await asyncio.gather(*(worker(n) for n in range(concurrency)))
        return done

    started = time.monotonic()
    count = asyncio.run(go())
    return count / (time.monotonic() - started)


def _minimum_per_app(branch: Any) -> float:
    """create + one upload per material + submit + pay + certificate metadata + its redirect + its content."""
    con = sqlite3.connect(f"file:{branch.root / 'var' / 'state.db'}?mode=ro", uri=True)
    try:
        apps = con.execute("SELECT COUNT(*) FROM applications").fetchone()[0]
        materials = con.execute("SELECT COUNT(*) FROM materials").fetchone()[0]
    finally:
        con.close()
    return 6 + materials / apps


def run(apps: int, work: Path, *, webhook_apps: int = 200) -> list[Result]:
    results: list[Result] = []
    with LocalCentre() as centre:
        tally = centre.app.state.requests
        branch = make_branch_for(centre, work / "branch", concurrency=8, max_poll_seconds=POLL_SECONDS,
                                 straggler_seconds=3600)  # fmt: skip
        log = work / "agent.stderr"
        loans = export_loans(branch, "BENCH", apps)
        tally.reset()
        proc = agent_process(branch, log=log)
        try:
            took = _wait_done(branch, len(loans), proc, log, timeout=apps * 2.0 + 120)
            requests = tally.total()
            by_route = tally.by_route()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        latencies = _latencies(centre, branch)
        ceiling = raw_ceiling(centre, branch)
        minimum = _minimum_per_app(branch)

    rate = requests / took
    per_app = requests / apps
    results.append(
        Result(
            f"Throughput, {apps} applications drop → stored certificate",
            f"{apps / took:.1f} applications/s; {rate:.0f} requests/s",
            f"raw ceiling {ceiling:.0f} requests/s (signed httpx.AsyncClient reads, 32 at a time)",
            rate / ceiling,
            "request rate ≥ 0.7× the raw ceiling",
            rate / ceiling >= 0.7,
            [f"{took:.0f} s in all, agent concurrency 8. Requests by route: "
             + ", ".join(f"{k} {v}" for k, v in sorted(by_route.items(), key=lambda kv: -kv[1])[:8]) + "."],
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
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    results.append(
        Result(
            f"Latency 缮证 → stored, event feed every {POLL_SECONDS:g} s",
            f"p50 {p50:.2f} s, p95 {p95:.2f} s",
            f"poll interval {POLL_SECONDS:g} s",
            p50 / POLL_SECONDS,
            f"p50 ≤ poll interval + 1 s ({POLL_SECONDS + 1:g} s)",
            p50 <= POLL_SECONDS + 1,
            [f"{len(latencies)} certificates; measured under the full load of the throughput run."],
        )
    )  # fmt: skip
    results.append(_webhook_latency(work / "webhooks", webhook_apps))
    return results


def _webhook_latency(work: Path, apps: int) -> Result:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with LocalCentre() as centre:
        branch = make_branch_for(centre, work / "branch", concurrency=8, max_poll_seconds=60.0, straggler_seconds=3600)
        log = work / "agent.stderr"
        proc = agent_process(branch, log=log, REGBRIDGE_WEBHOOK__ENABLED="true", REGBRIDGE_WEBHOOK__PORT=str(port))
        try:
            time.sleep(2.0)  # the receiver registered with the centre
            loans = export_loans(branch, "HOOK", apps)
            _wait_done(branch, len(loans), proc, log, timeout=apps * 2.0 + 120)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        latencies = _latencies(centre, branch)
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    return Result(
        "Latency 缮证 → stored, webhooks (feed only every 60 s)",
        f"p50 {p50:.2f} s, p95 {p95:.2f} s",
        "1 s",
        p50 / 1.0,
        "p50 ≤ 1 s",
        p50 <= 1.0,
        [f"{len(latencies)} certificates, {apps} applications dropped at once."],
    )


if __name__ == "__main__":  # the raw-ceiling client, in its own process
    print(json.dumps({"rate": _ceiling(json.loads(sys.stdin.read()))}))
