"""国密 against intl in one run (issue 19): the cost of signing a request, and end-to-end throughput.

- **signing**: ``sdk.signing.sign_request`` of the same 4 KiB JSON request (Content-Digest, RFC 9421
  signature base, the signature) with an SM2 key (``sm2-sm3``, SM3 digest) and with an Ed25519 key
  (``ed25519``, SHA-256), blocks of each alternating, medians compared; and the centre's side,
  ``verify_request``, the same way. Figures, no target: SM2 is dearer than Ed25519 per operation.
- **throughput**: the same export of N first mortgages taken from drop to stored certificate by the
  agent daemon against a sandbox centre of each suite (intl first, then gm, each fresh), with
  everything the suite changes: SM2 request signatures and sm3 digests, the centre verifying them,
  SM2-signed metadata and webhooks verified by the agent, its state and blobs under SM4-GCM.
  Target: gm ≥ 0.9× intl.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.common import Result
from sandbox.local import LocalCentre
from sdk.signing import Algorithm, KeySigner, generate_private_key, sign_request, verify_request
from sdk.suites import suite_named
from tests.reliability.harness import export_loans, make_branch_for, running_agent, stop_agent, wait_done

__all__ = ["run"]

FEES = {"auto_pay": True, "daily_cap": "100000000"}


def _request(body: bytes) -> httpx.Request:
    return httpx.Request(
        "POST", "http://127.0.0.1:8600/v1/applications", content=body,
        headers={"Content-Type": "application/json", "Idempotency-Key": "BENCH-1:create"},
    )  # fmt: skip


def _per_op(fn: Callable[[], object], ops: int) -> float:
    started = time.perf_counter()
    for _ in range(ops):
        fn()
    return (time.perf_counter() - started) / ops


def signing(ops: int, blocks: int = 9) -> list[Result]:
    body = json.dumps({"client_reference": "BENCH-1", "notes": "x" * 4000}, ensure_ascii=False).encode()
    algorithms: tuple[Algorithm, ...] = ("ed25519", "sm2-sm3")
    keys = {alg: generate_private_key(alg) for alg in algorithms}
    signers = {alg: KeySigner("key_bench", key) for alg, key in keys.items()}
    url = str(_request(body).url)
    signed_headers = {}
    for alg, signer in signers.items():
        request = _request(body)
        sign_request(request, signer)
        signed_headers[alg] = list(request.headers.items())
    sign_times: dict[str, list[float]] = {alg: [] for alg in keys}
    verify_times: dict[str, list[float]] = {alg: [] for alg in keys}

    def sign(signer: KeySigner) -> Callable[[], object]:
        return lambda: sign_request(_request(body), signer)

    def verify(alg: Algorithm) -> Callable[[], object]:
        headers, public = signed_headers[alg], keys[alg].public_key()
        suite = suite_named("gm" if alg == "sm2-sm3" else "intl")
        return lambda: verify_request(
            method="POST", url=url, headers=headers, body=body, keys={"key_bench": public}, suite=suite
        )

    for _ in range(blocks):
        for alg, signer in signers.items():
            sign_times[alg].append(_per_op(sign(signer), ops))
            verify_times[alg].append(_per_op(verify(alg), ops))
    results = []
    for what, times in (("signing a request (SDK)", sign_times), ("verifying a request (centre)", verify_times)):
        gm, intl = statistics.median(times["sm2-sm3"]), statistics.median(times["ed25519"])
        results.append(
            Result(
                f"国密: {what}, gm vs intl",
                f"sm2-sm3 + sm3: {gm * 1e6:.0f} µs",
                f"ed25519 + sha-256: {intl * 1e6:.0f} µs",
                gm / intl,
                "a figure (cost ratio gm/intl), no target",
                None,
                [f"Median of {blocks} alternating blocks of {ops} operations on a 4 KiB JSON body, one process: "
                 "Content-Digest, the RFC 9421 signature base and the signature (or its check)."],
            )
        )  # fmt: skip
    return results


def _throughput(suite: str, apps: int, work: Path) -> float:
    """Seconds for the agent daemon to take ``apps`` first mortgages from drop to stored certificate."""
    with LocalCentre(suite=suite_named(suite)) as centre:
        branch = make_branch_for(centre, work / "branch", concurrency=8, max_poll_seconds=2.0,
                                 straggler_seconds=3600, fees=FEES)  # fmt: skip
        log = work / "agent.stderr"
        loans = export_loans(branch, "BENCH", apps)
        with running_agent(branch, log=log) as proc:
            took = wait_done(branch, len(loans), proc, log=log, timeout=apps * 2.0 + 120, stalled=120)
            stop_agent(proc)
    return took


def throughput(apps: int, work: Path, rounds: int = 2) -> Result:
    """Alternating rounds (intl, gm, intl, gm…) of ``apps / rounds`` each, so a machine's changing load
    falls on both suites alike; the rates are total applications over total time."""
    per_round = max(1, apps // rounds)
    seconds = {"intl": 0.0, "gm": 0.0}
    for i in range(rounds):
        for suite in ("intl", "gm"):
            seconds[suite] += _throughput(suite, per_round, work / f"{suite}-{i}")
    intl, gm = per_round * rounds / seconds["intl"], per_round * rounds / seconds["gm"]
    return Result(
        f"国密: end-to-end throughput, {per_round * rounds} applications a suite, gm vs intl",
        f"gm {gm:.1f} applications/s",
        f"intl {intl:.1f} applications/s",
        gm / intl,
        "gm ≥ 0.9× intl",
        gm / intl >= 0.9,
        [f"Drop → verified, stored certificate, the agent daemon against a fresh sandbox of each suite, in "
         f"{rounds} alternating rounds of {per_round} (intl, gm, …) in the same run; concurrency 8. gm: SM2 "
         "signatures and sm3 digests both ways, SM2-signed metadata and webhooks, SM4-GCM at rest."],
    )  # fmt: skip


def run(apps: int, work: Path, *, ops: int = 200) -> list[Result]:
    work.mkdir(parents=True, exist_ok=True)
    return [*signing(ops), throughput(apps, work)]
