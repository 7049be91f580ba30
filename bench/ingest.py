"""Ingest: a large GB18030 core-banking export parsed, mapped, validated and queued by the agent,
against bare ``csv`` reading plus ``sdk`` model validation of the same rows in the same run.

The export is the sample core-banking layout with a material manifest column (``code:file`` pairs,
the same scanned files for every loan, as a batch from one branch shares its forms), so the agent
does everything it does for a real export: decode, map through the profile, build and validate the
application, check its materials against the checklist, seal and queue it in the state store with
its idempotency keys, and write nothing twice. The baseline decodes the same file with ``csv``,
fills the same application for each row and validates it with the SDK's model — the least any
reader of the file must do.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from agent.demo import samples
from agent.pipeline.ingest import ingest_file
from bench.common import Result
from config import load_checklists
from sandbox import register
from sandbox.esign import document_pdf
from sandbox.local import LocalCentre
from sandbox.samples import esigned
from sdk.models import Application
from tests.agent.conftest import make_branch

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "材料清单"


def _profile(folder: Path) -> Path:
    text = (ROOT / "config" / "mappings" / "corebank_csv.toml").read_text(encoding="utf-8")
    text = text.replace(
        '[materials]\nfolder = "materials"\n', f'[materials]\nfolder = "materials"\nmanifest = "{MANIFEST}"\n'
    )
    path = folder / "bench_corebank.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _export(rows: int, materials: Path) -> tuple[bytes, list[dict[str, str]]]:
    # eight units, so eight owners sign the shared 申请书 once each (a PAdES signature costs ~0.3 s)
    units = [n for n in register.HOMES if len(register.owners_of(n)) == 1
             and n not in (register.SEIZED_UNIT, register.OBJECTION_UNIT)][:8]  # fmt: skip
    codes = [item.code for item in load_checklists()["mortgage_first"].items]
    materials.mkdir(parents=True, exist_ok=True)
    for code in codes:
        (materials / f"shared_{code}.pdf").write_bytes(b"%PDF-1.4 scanned form " + code.encode() + b"\n%%EOF\n")
    # the shared 申请书 is a real PDF each owner signed once (esign/unit-<n>.pdf), as the declaration requires
    form = document_pdf("application_form", ["shared form"])
    (materials / "shared_application_form.pdf").write_bytes(form)
    manifest = ";".join(f"{code}:shared_{code}.pdf" for code in codes)
    records = []
    for i in range(rows):
        n = units[i % len(units)]
        [row] = samples.mortgage_rows(f"IN-{i:06d}", n, amount="100")
        signed = materials.parent / "esign" / f"unit-{n}.pdf"
        if not signed.exists():
            signed.parent.mkdir(parents=True, exist_ok=True)
            signed.write_bytes(esigned(form, register.owners_of(n)[0]))
        records.append({**row, MANIFEST: manifest, "电子签名文件": f"esign/{signed.name}"})
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, [*samples.COREBANK_COLUMNS, MANIFEST], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue().encode("gb18030"), records


def _bare(data: bytes, template: dict[str, Any]) -> int:
    """csv + the SDK's model, nothing else: the same application filled from each row and validated."""
    adapter = TypeAdapter(Application)
    count = 0
    for row in csv.DictReader(io.StringIO(data.decode("gb18030"), newline="")):
        doc = {**template, "client_reference": f"{row['贷款编号']}-DYSC"}
        doc["mortgagors"] = [{**template["mortgagors"][0], "name": row["抵押人"], "id_number": row["证件号码"]}]
        doc["properties"] = [{**template["properties"][0], "unit_id": row["不动产单元号"], "location": row["坐落"]}]
        adapter.validate_python(doc)
        count += 1
    return count


def run(rows: int, work: Path) -> Result:
    with LocalCentre() as centre:
        inbox = {"name": "corebank", "path": "inbox/corebank", "profile": str(_profile(work)), "completion": "rename"}
        branch = make_branch(centre, work / "branch", inboxes=[inbox])
        agent = branch.agent()
        try:
            data, _ = _export(rows, branch.inbox() / "materials")
            path = branch.inbox() / "big.csv"
            path.write_bytes(data)
            started = time.perf_counter()
            report = ingest_file(agent.context, agent.context.inbox("corebank"), path)
            took = time.perf_counter() - started
            assert len(report.queued) == rows, (len(report.queued), report.quarantined[:2])
            template = agent.store.application(report.queued[0]).payload  # type: ignore[union-attr]
        finally:
            agent.close()
    started = time.perf_counter()
    assert _bare(data, template) == rows
    bare = time.perf_counter() - started
    ratio = bare / took
    return Result(
        f"Ingest, {rows:,}-row GB18030 CSV → queued",
        f"{rows / took:,.0f} rows/s ({took:.1f} s)",
        f"bare csv + sdk validation {rows / bare:,.0f} rows/s ({bare:.1f} s)",
        ratio,
        "≥ 0.5× the bare parse",
        ratio >= 0.5,
        [
            f"{len(data) / 2**20:.1f} MiB; the agent seals each application (AES-GCM) and queues it with its "
            "materials and idempotency keys in one transaction per export."
        ],
    )
