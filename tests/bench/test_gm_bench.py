"""bench/gm.py works (its figures come from ``make bench``): the signing comparison, at a tiny size."""

from __future__ import annotations

from bench import gm


def test_the_gm_signing_benchmark_gives_a_ratio_for_signing_and_verifying() -> None:
    results = gm.signing(ops=5, blocks=1)
    assert [r.benchmark for r in results] == [
        "国密: signing a request (SDK), gm vs intl",
        "国密: verifying a request (centre), gm vs intl",
    ]
    assert all(r.ratio is not None and r.ratio > 0 and "sm2-sm3" in r.measured for r in results)


def test_the_ofd_benchmark_gives_a_ratio_of_ofd_to_pades_verification() -> None:
    from bench import ofd

    result = ofd.run(rounds=2)
    assert result.ratio is not None and result.ratio > 0
    assert result.measured.startswith("OFD ") and result.baseline.startswith("PDF ")
