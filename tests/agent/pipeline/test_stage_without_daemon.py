"""The architecture's promise, tested: a stage is a function of a hand-built ``StageContext`` and needs no daemon.

A fresh interpreter (``python -c``) builds the context itself — a real SQLite state store in the test's folder,
a small in-memory ``CentrePort`` written here, a stub ``Supervisor`` — runs ``ingest_file`` on the shipped core
banking sample and then ``submit_due``, and reports what happened and whether ``agent.daemon`` was ever imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.demo import samples

from ..conftest import SECRET, Branch, drop

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r'''
import json, sys
from datetime import UTC, datetime
from pathlib import Path

from agent.config import load_config
from agent.mapping import load_profile
from agent.pipeline.build import BuildContext
from agent.pipeline.context import StageContext
from agent.pipeline.ingest import ingest_file
from agent.pipeline.operators import operator_of
from agent.pipeline.submit import submit_due
from agent.state.audit import AuditLog
from agent.state.blobs import BlobStore
from agent.state.secrets import DataCipher
from agent.state.sqlite import SQLiteStore
from config import load_checklists
from connectors.documents import FilesystemStore
import sdk
from sdk.certificates import TrustAnchors
from sdk.models import ApplicationRecord, ApplicationStatus, Operator


class FakeCentre:
    """A CentrePort in memory: it records what the stages asked and answers like a centre that accepts."""

    def __init__(self):
        self.records, self.calls, self.operator_ids = {}, [], set()

    def _now(self):
        return datetime.now(UTC)

    def create(self, application, *, idempotency_key):
        self.calls.append(("create", application.client_reference, idempotency_key))
        aid = f"APP-{len(self.records) + 1:04d}"
        self.records[aid] = ApplicationRecord(
            application_id=aid, client_reference=application.client_reference, type=application.type,
            status=ApplicationStatus("draft"), created_at=self._now(), updated_at=self._now(), application=application,
        )
        return self.records[aid]

    def upload_material(self, application_id, material, content):
        self.calls.append(("upload", application_id, material.id, len(content)))
        record = self.records[application_id]
        record = record.model_copy(update={"materials_received": [*record.materials_received, material.id]})
        self.records[application_id] = record
        return record

    def submit(self, application_id, *, idempotency_key):
        self.calls.append(("submit", application_id, idempotency_key))
        update = {"status": ApplicationStatus("submitted"), "updated_at": self._now()}
        record = self.records[application_id].model_copy(update=update)
        self.records[application_id] = record
        return record

    def operators(self):
        self.calls.append(("operators",))
        return [Operator(operator_id=o, display_name=o, active=True) for o in sorted(self.operator_ids)]

    def query_property(self, query, *, idempotency_key, institution_uscc=None):
        """The register pre-flight's 登记资料查询: this centre does not offer it to the bank (403), so the
        pre-flight is skipped with its reason and the application is sent as before."""
        self.calls.append(("query", query.unit_id, idempotency_key))
        raise sdk.PermissionDenied("查询服务未向本机构开放", status=403, code="query_not_offered")

    def __getattr__(self, name):  # any other act of the port: not expected of ingest and submit
        raise AssertionError(f"the stages asked the centre for {name}")


class Supervisor:
    paused = None
    unreachable = False
    holding = False

    def __init__(self):
        self.woken = 0

    def pause(self, kind, message):
        raise AssertionError(f"paused: {kind} {message}")

    def resume(self, why):
        pass

    def wake(self):
        self.woken += 1

    def inbox_available(self, inbox):
        return True


config_path, secret, sample = Path(sys.argv[1]), sys.argv[2].encode(), Path(sys.argv[3])
config = load_config(config_path)
data = config.resolve(config.data_dir)
data.mkdir(parents=True, exist_ok=True)
cipher = DataCipher.for_directory(secret, data)
store = SQLiteStore(data / "state.db", encrypt=cipher.encrypt, decrypt=cipher.decrypt)
blobs = BlobStore(data / "blobs", cipher.encrypt, cipher.decrypt)
checklists = load_checklists()
centre, supervisor = FakeCentre(), Supervisor()
c = config.centre
ctx = StageContext(
    config=config, store=store, centre=centre, audit=AuditLog(data / "audit.log"), blobs=blobs,
    documents=FilesystemStore(config.resolve(config.documents.root)),
    trust=TrustAnchors(seal_ca_pem=config.resolve(c.seal_ca_file).read_text(encoding="ascii"),
                       centre_key_id=c.centre_key_id, centre_key=c.centre_key,
                       sm2_user_id=c.crypto_suite.sm2_user_id, centre_name=c.centre_name),
    profiles={i.name: load_profile(i.profile, base=config.base) for i in config.inbox},
    checklists=checklists,
    build=BuildContext(bank_name=c.institution_name, bank_uscc=c.institution_uscc,
                       default_operator=config.default_operator, checklists=checklists, blobs=blobs),
    supervisor=supervisor,
)
report = ingest_file(ctx, ctx.inbox("corebank"), sample)
centre.operator_ids = {operator_of(a.payload) for a in store.applications("queued")}
sent = submit_due(ctx)
print(json.dumps({
    "records": report.records, "rows": report.rows, "queued": sorted(report.queued),
    "quarantined": len(report.quarantined), "sample_left": sample.exists(),
    "stages": {a.reference: a.stage for a in store.applications()},
    "open_quarantine": len(store.quarantined()),
    "calls": centre.calls, "woken": supervisor.woken, "sent": sent,
    "daemon_imported": any(m == "agent.daemon" or m.startswith("agent.daemon.") for m in sys.modules),
}))
'''


def test_ingest_and_submit_run_on_a_hand_built_context_without_the_daemon(branch: Branch) -> None:
    inbox = branch.inbox("corebank")
    for loan, kind in samples.loans_by_type().items():
        if loan.startswith("DEMO"):
            samples.write_materials(inbox / "materials", loan, kind)
    sample = drop(inbox, "corebank_gb18030.csv", (ROOT / "config" / "samples" / "corebank_gb18030.csv").read_bytes())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(branch.config), SECRET.decode(), str(sample)],
        capture_output=True, text=True, timeout=120, env=env, cwd=branch.root,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert out["daemon_imported"] is False  # the stages ran, and agent.daemon was never imported
    # every row accounted for: queued or quarantined, none dropped
    assert out["records"] == sum(out["rows"].values()) > 0
    assert out["queued"] and out["quarantined"] > 0, out
    assert out["rows"]["queue"] >= len(out["queued"]) and out["rows"]["quarantine"] >= 1  # rows of one loan: 1 app
    assert set(out["stages"]) == set(out["queued"])  # the store holds exactly the applications queued
    assert out["open_quarantine"] == out["quarantined"]
    assert not out["sample_left"]  # the export is retired once its content is safe in the store
    # the port received one create (with its stored idempotency key), the uploads and one submit per queued row
    creates = [c for c in out["calls"] if c[0] == "create"]
    assert sorted(c[1] for c in creates) == out["queued"]
    assert len({c[2] for c in creates}) == len(creates)
    assert len([c for c in out["calls"] if c[0] == "submit"]) == len(out["queued"])
    assert [c for c in out["calls"] if c[0] == "upload"]
    # the register pre-flight asked its 登记资料查询 before the create, and its refusal held nothing back
    queries = [c for c in out["calls"] if c[0] == "query"]
    assert queries and out["calls"].index(queries[0]) < out["calls"].index(creates[0])
    assert all(out["stages"][ref] == "tracking" for ref in out["queued"]), out["stages"]
    assert out["woken"] >= len(out["queued"])
