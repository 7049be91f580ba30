"""``regbridge demo --dialect province``: one head-office agent, two branches, two county centres behind one platform.

1. the sandbox's provincial platform starts before 长丰县 (340121) and 肥西县 (340123) centres;
2. the head office registers its appId and SM2 keys at the platform's desk (keys exchanged there,
   never read from a message) and gets the platform's keys and each county centre's trust anchors;
3. the agent is enrolled with one inbox per branch (长丰支行, 肥西支行), each with its own receipts
   folder; it talks to the platform through :class:`agent.centre.province.ProvinceCentre`;
4. each branch's loan system drops its export (GB18030 CSV, units in its county) with materials and
   each applicant's e-signed 申请书 (signed by the e-signature CA its county centre trusts);
5. the agent runs until idle: each application goes to its county's centre by its 不动产单元号,
   each certificate is verified against *its* centre's anchors and stored, each branch's receipts
   go to its own folder.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from agent.centre.province import ProvinceCentre
from agent.config import load_config
from agent.daemon import Agent
from agent.demo import samples
from agent.demo.run import drop, prepare_demo_folder
from agent.logs import setup_logging
from config import load_dialect, load_districts
from installer.enrol import enrol
from sdk.certificates import TrustAnchors
from sdk.dialects.province import PlatformClient
from sdk.gm.sm2 import Sm2PrivateKey

__all__ = ["BRANCHES", "run_province_demo"]

#: (inbox name, branch, 行政区划代码 of its county, its loans: loan number → seeded unit)
BRANCHES: list[tuple[str, str, str, dict[str, int]]] = [
    ("changfeng", "长丰支行", "340121", {"CF-001": 45, "CF-002": 46}),
    ("feixi", "肥西支行", "340123", {"FX-001": 47, "FX-002": 48}),
]
APP_ID = "BANK-AH-HEADOFFICE"


def run_province_demo(
    workdir: Path, *, say: Any = print, timeout: float = 60.0, per_branch: int = 2
) -> dict[str, Any]:
    """Run the two-branch platform demo in ``workdir`` (emptied first), ``per_branch`` loans each (1 or 2);
    returns what the summary shows.

    Raises :class:`agent.demo.run.DemoFolderRefused` when ``workdir`` holds files the demo did not make.
    """
    from sandbox.platform import ProvincePlatform
    from sandbox.register import COUNTIES

    started = time.monotonic()
    branches = [(n, b, d, dict(list(loans.items())[:per_branch])) for n, b, d, loans in BRANCHES]
    prepare_demo_folder(workdir)
    setup_logging(workdir / "var" / "agent.log", stderr=False)
    signer, decryption = Sm2PrivateKey.generate(), Sm2PrivateKey.generate()
    with ProvincePlatform() as platform:
        say(f"① provincial platform {platform.app_id} on {platform.url}, before "
            + ", ".join(f"{c.centre.name} ({d})" for d, c in platform.centres.items()))  # fmt: skip
        enrolment = platform.enrol(APP_ID, signing_key=signer.public, encryption_key=decryption.public)
        say(f"② head office registered as {APP_ID}: SM2 keys exchanged at the desk; trust anchors of "
            f"{len(enrolment.centre_keys)} county centres received")  # fmt: skip
        # the agent's own enrolment (its key store, its state) at the first county; the platform is its centre
        first = next(iter(platform.centres))
        local = platform.centres[first]
        iid = platform.banks[APP_ID].institutions[first]
        bundle = local.centre.enrolment_bundle(iid, local.url, valid_for=timedelta(days=1))
        config_path = enrol(
            bundle,
            workdir,
            inboxes=[{"name": name, "path": f"inbox/{name}", "profile": "corebank_csv", "completion": "rename"}
                     for name, _, _, _ in BRANCHES],
            # the platform has no event feed: the tracker reads each application on this schedule instead
            settings={"data_dir": "var", "default_operator": "op-001", "metrics": {"port": 0},
                      "fees": {"auto_pay": True, "daily_cap": "5000.00"}, "straggler_seconds": 0.3},
        ).path  # fmt: skip
        client = PlatformClient(
            enrolment.url, app_id=APP_ID, signer=signer, decryption_key=decryption,
            platform_app_id=enrolment.platform_app_id, platform_key=enrolment.platform_signing_key,
            platform_encryption_key=enrolment.platform_encryption_key,
        )  # fmt: skip
        port = ProvinceCentre(client, load_dialect("province"), tuple(load_districts("province")))
        config = load_config(config_path)
        trust = {
            district: TrustAnchors(
                seal_ca_pem=anchors["ca_pem"], centre_key_id=anchors["key_id"], centre_key=anchors["jwk"],
                centre_name=anchors["name"], sm2_user_id=config.centre.crypto_suite.sm2_user_id,
            )
            for district, anchors in enrolment.centre_keys.items()
        }  # fmt: skip
        agent = Agent(config, centre_port=port, trust_by_district=trust)
        try:
            say("③ the agent acts for two branches, one inbox and receipts folder each: "
                + ", ".join(f"{branch} → inbox/{name}" for name, branch, _, _ in BRANCHES))  # fmt: skip
            for name, _, district, loans in branches:
                folder = workdir / "inbox" / name
                rows: list[dict[str, str]] = []
                for loan, n in loans.items():
                    samples.write_materials(folder / "materials", loan, "mortgage_first")
                    rows += samples.mortgage_rows(loan, n, amount="150", county=COUNTIES[district])
                # each applicant's signed 申请书, by the signing platform its county centre trusts (issue 18)
                authority = platform.centres[district].centre.esign
                samples.write_esignatures(folder, samples.corebank_signers(rows), authority=authority)
                drop(folder, f"{name}_loans.csv", samples.corebank_csv(rows))
            say("④ each branch's loan system dropped its export (GB18030 CSV, units in its own county), with "
                "materials and the applicants' e-signed 申请书")
            idle = agent.run_until_idle(timeout=timeout)
            summary = summarise(agent, workdir, branches)
            summary.update(idle=idle, seconds=round(time.monotonic() - started, 1))
            summary["problems"] = check(summary)
            say(f"⑤ done in {summary['seconds']} s: "
                + "; ".join(f"{b['branch']}: {b['stored']}/{b['loans']} certificates verified and stored"
                            for b in summary["branches"]))  # fmt: skip
            return summary
        finally:
            agent.close()


def _receipts(folder: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(folder.glob("*.csv")):  # the corebank profile writes GB18030
        rows += list(csv.DictReader(io.StringIO(path.read_text(encoding="gb18030"))))
    return rows


def summarise(
    agent: Agent, workdir: Path, branches_run: list[tuple[str, str, str, dict[str, int]]]
) -> dict[str, Any]:
    """Per branch: its loans, the county centre each went to, certificates stored, its receipt lines."""
    apps = {a.loan_no: a for a in agent.store.applications()}
    branches = []
    for name, branch, district, loans in branches_run:
        receipts = _receipts(workdir / "inbox" / name / "receipts")
        rows = []
        for loan in loans:
            app = apps.get(loan)
            units = [p.get("unit_id", "") for p in app.payload.get("properties", [])] if app else []
            certs = agent.store.certificates(reference=app.reference) if app else []
            rows.append({
                "loan_no": loan, "stage": app.stage if app else None, "district": units[0][:6] if units else None,
                "certificates": [c.get("certificate_number") for c in certs if c.get("stage") == "stored"],
                "documents": [str(Path(c["location"]).relative_to(workdir)) for c in certs if c.get("location")],
            })  # fmt: skip
        branches.append({
            "inbox": name, "branch": branch, "district": district, "loans": len(loans), "applications": rows,
            "stored": sum(1 for r in rows if r["certificates"]),
            "receipt_loans": sorted({r["贷款编号"] for r in receipts if not r["贷款编号"].startswith("(文件)")}),
        })  # fmt: skip
    return {"branches": branches}


def check(summary: dict[str, Any]) -> list[str]:
    """What the demo promises, each broken promise in words."""
    problems = []
    for b in summary["branches"]:
        for row in b["applications"]:
            if row["stage"] != "done" or not row["certificates"]:
                problems.append(f"{b['branch']} {row['loan_no']}: {row['stage']}, no certificate stored")
            if row["district"] != b["district"]:
                problems.append(f"{b['branch']} {row['loan_no']}: went to {row['district']}, not {b['district']}")
        if b["receipt_loans"] != sorted(r["loan_no"] for r in b["applications"]):
            problems.append(f"{b['branch']}: receipts name {b['receipt_loans']}")
    return problems
