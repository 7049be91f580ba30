"""OFD verification (GB/T 38540 seal, SM2/SM3) per certificate, as a ratio to PAdES verification, in one run.

One sandbox certificate of each format is issued (the ``gm`` centre's OFD, the ``intl`` centre's PDF),
then each is verified the way the agent does before storing it — every check, the visible text
included, with the seal CA's CRL given — in alternating rounds (OFD, PDF, OFD, PDF …) so the
machine's changing load falls on both alike. The figure is the median time per verification.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from typing import Any

from bench.common import Result
from sdk.certificates import TrustAnchors, certificate_expectations, verify_seal
from sdk.ofd.verify import verify_ofd

__all__ = ["run"]


def _issue(suite: str) -> tuple[bytes, Any, TrustAnchors, list[bytes]]:
    from sandbox.cli import issue_sample

    content, meta, centre = issue_sample(suite)
    iid = centre.store.one("SELECT id FROM institutions")["id"]
    bundle = centre.enrolment_bundle(iid, "http://127.0.0.1:8600", valid_for=dt.timedelta(days=1))["bundle"]
    trust = TrustAnchors(
        seal_ca_pem=bundle["trust"]["seal_ca_pem"],
        centre_key_id=bundle["trust"]["centre_key_id"],
        centre_key=bundle["trust"]["centre_key"],
        centre_name=centre.name,
    )
    crl = centre.seals.crl(centre.store) if suite == "gm" else centre.keys.crl(centre.store)
    return content, meta, trust, [crl]


def run(rounds: int = 30) -> Result:
    """Median seconds per verification of one OFD and one PDF certificate, ``rounds`` each, alternating."""
    ofd, ofd_meta, ofd_trust, ofd_crls = _issue("gm")
    pdf, pdf_meta, pdf_trust, pdf_crls = _issue("intl")
    ofd_times: list[float] = []
    pdf_times: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        verify_ofd(ofd, ofd_trust, expected_sha256=ofd_meta.sha256, expected_text=certificate_expectations(ofd_meta),
                   crls=ofd_crls)  # fmt: skip
        ofd_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        verify_seal(pdf, pdf_meta, pdf_trust, crls=pdf_crls)
        pdf_times.append(time.perf_counter() - started)
    ofd_s, pdf_s = statistics.median(ofd_times), statistics.median(pdf_times)
    return Result(
        benchmark="certificate verification per file: OFD (GB/T 38540, SM2) vs PDF (PAdES)",
        measured=f"OFD {ofd_s * 1000:.1f} ms ({len(ofd) // 1024} KB)",
        baseline=f"PDF {pdf_s * 1000:.1f} ms ({len(pdf) // 1024} KB)",
        ratio=ofd_s / pdf_s,
        target="reported (no target: both must run every check)",
        met=None,
        notes=[
            f"median of {rounds} alternating rounds each; every check of the agent (OFD: digests, coverage, seal,"
            " SM2, chain with the CRL, visible text; PDF: PAdES integrity, chain with the CRL, coverage, visible text)",
        ],
    )
