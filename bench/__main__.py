"""``python -m bench`` (``make bench``): every benchmark, its results and the machine, into docs/benchmarks.md.

python -m bench                     # full size (5,000 applications, 100,000 rows, 100,000 tracked)
python -m bench --quick             # small sizes: checks the benchmarks themselves work (tests use it)
python -m bench --only sdk,cold     # some of them
python -m bench --out -             # print the report instead of writing docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import cold_start, e2e, first_time, footprint, gm, ingest, instances, ofd, sdk_overhead
from bench.common import Result, machine, render

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "bench" / "profile.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not figures)")
    parser.add_argument(
        "--only", default="", help="comma-separated: sdk, cold, e2e, ingest, footprint, gm, ofd, first_time, instances"
    )
    parser.add_argument("--apps", type=int, default=None, help="applications end to end (default 5000)")
    parser.add_argument("--gm-apps", type=int, default=None, help="applications per suite in gm (default 1000)")
    parser.add_argument("--instances-apps", type=int, default=None, help="applications a round, instances (300)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    quick = args.quick
    sizes = {
        "apps": args.apps or (20 if quick else 5000),
        "rows": 500 if quick else 100_000,
        "tracked": 2000 if quick else 100_000,
        "requests": 300 if quick else 5000,
        "gm_apps": args.gm_apps or (10 if quick else 1000),
        "instances_apps": args.instances_apps or (8 if quick else 300),
    }
    results: list[Result] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="regbridge-bench-") as tmp:
        work = Path(tmp)

        def want(name: str) -> bool:
            return not only or name in only

        def step(name: str) -> None:
            print(f"[bench] {name} … ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)

        if want("sdk"):
            step("sdk overhead")
            results.append(sdk_overhead.run(sizes["requests"], block=100 if quick else 250))
        if want("cold"):
            step("cold start")
            results.append(cold_start.run(5 if quick else 15))
        if want("ingest"):
            step(f"ingest {sizes['rows']} rows")
            (work / "ingest").mkdir()
            results.append(ingest.run(sizes["rows"], work / "ingest"))
        if want("e2e"):
            step(f"end to end {sizes['apps']} applications")
            (work / "e2e").mkdir()
            results += e2e.run(sizes["apps"], work / "e2e", latency_apps=8 if quick else 60)
        if want("gm"):
            step(f"国密 vs intl: signing, and {sizes['gm_apps']} applications end to end in each suite")
            results += gm.run(sizes["gm_apps"], work / "gm", ops=50 if quick else 200)
        if want("ofd"):
            step("certificate verification: OFD vs PDF")
            results.append(ofd.run(5 if quick else 30))
        if want("first_time"):
            step("first-time acceptance with and without the register pre-flight")
            (work / "first_time").mkdir()
            results.append(first_time.run(2 if quick else 40, work / "first_time", each=1 if quick else 2,
                                          unforeseeable=1 if quick else 2))  # fmt: skip
        if want("instances"):
            step(f"several instances on PostgreSQL: {sizes['instances_apps']} applications by one, then two; failover")
            results += instances.run(sizes["instances_apps"], work / "instances")
        if want("footprint"):
            step(f"footprint {sizes['tracked']} tracked")
            (work / "footprint").mkdir()
            results += footprint.run(sizes["tracked"], work / "footprint", settle=3 if quick else 20,
                                     idle=5 if quick else 60)  # fmt: skip
    sections = [PROFILE.read_text(encoding="utf-8")] if PROFILE.exists() else []
    command = "python -m bench --quick" if quick else "make bench"
    report = render(results, sections, machine(), command)
    report += f"\nThe whole run took {time.monotonic() - started:.0f} s.\n"
    if args.out == "-":
        print(report)
    else:
        Path(args.out).write_text(report, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    for r in results:
        print(r.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())
