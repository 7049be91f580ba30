"""``regbridge demo --dialect province``: one head-office agent, two branches, two county centres behind one platform.

1. the sandbox's provincial platform starts before 长丰县 (340121) and 肥西县 (340123) centres;
2. the head office's agent is enrolled (``regbridge enroll``: its secret, key store, ``agent.toml``) with
   one inbox per branch (长丰支行, 肥西支行; ``[[inbox]] branch``), each with its own receipts folder;
   then registered at the platform's desk as ``regbridge platform enroll --desk`` does it: SM2 keys made
   in its key store, exchanged there (never read from a message), the platform's keys and each county
   centre's trust anchors written as ``[platform]``; the desk registers it as acting for both branches,
   each an institution of its own (its own 统一社会信用代码) at each county centre with its own 经办人
   (长丰支行 cf-001/cf-002, 肥西支行 fx-001/fx-002: ``[branches]``); the agent is built from ``agent.toml`` alone and
   talks to the platform through :class:`agent.centre.province.ProvinceCentre`, its notify receiver
   listening at the URL it registered;
4. each branch's loan system drops its export (GB18030 CSV, units in its county) with materials and
   each applicant's e-signed 申请书 (signed by the e-signature CA its county centre trusts);
5. the agent runs until idle: each application goes to its county's centre by its 不动产单元号,
   each certificate is verified against *its* centre's anchors and stored under its branch's folder,
   each branch's receipts go to its own folder;
6. the platform pushes a 查封 on one mortgaged unit of each branch: it reaches that branch's loan
   system as a receipt line (``notice_seizure``, 查封通知);
7. a late export of 长丰支行 (its second folder, ``inbox/changfeng-late``) names 肥西支行's 经办人 fx-001: the
   agent holds it before sending ("经办人 fx-001 不是本行在登记中心的有效账号（长丰支行）", 长丰支行's own list
   of accounts); sent anyway through the port, the county centre refuses it (``operator_not_authorised``:
   filed by 长丰支行's institution, whose operator it is not) before 受理, and an application naming a branch
   the head office was not registered for is refused by the platform (``4030``);
8. 肥西支行 asks for a 登记资料查询 on its unit: answered through the platform by 肥西县's centre, its
   signed answer and sealed 查询结果 verified against that centre's anchors and stored.
"""

from __future__ import annotations

import csv
import io
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from agent.config import load_config
from agent.daemon import Agent
from agent.demo import samples
from agent.demo.run import drop, prepare_demo_folder
from agent.logs import setup_logging
from agent.pipeline.queries import run_query
from agent.state.status import snapshot
from installer.doctor import diagnose_platform
from installer.enrol import enrol
from installer.platform import enrol_at_desk
from sdk.models import PropertyQuery

__all__ = ["BRANCHES", "run_province_demo"]

#: (inbox name, branch, 行政区划代码 of its county, its loans: loan number → seeded unit)
BRANCHES: list[tuple[str, str, str, dict[str, int]]] = [
    ("changfeng", "长丰支行", "340121", {"CF-001": 45, "CF-002": 46}),
    ("feixi", "肥西支行", "340123", {"FX-001": 47, "FX-002": 48}),
]
#: each branch's institution at the centres: (its name there, the first 17 characters of its 统一社会信用代码,
#: its 经办人 accounts — the first is its default)
INSTITUTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "长丰支行": ("中国示例银行股份有限公司长丰支行", "91340121MA2NCF001", ("cf-001", "cf-002")),
    "肥西支行": ("中国示例银行股份有限公司肥西支行", "91340123MA2NFX001", ("fx-001", "fx-002")),
}


def branch_uscc(branch: str) -> str:
    """The 统一社会信用代码 of a demo branch's institution (check character computed)."""
    from sandbox import samples as sandbox_samples

    return sandbox_samples.uscc(INSTITUTIONS[branch][1])
#: 长丰支行's second export folder, and the loan in it that names another branch's 经办人 (seeded unit 44 of 长丰县)
LATE = ("changfeng-late", "长丰支行", "CF-X01", 44, "fx-001")
APP_ID = "BANK-AH-HEADOFFICE"


def run_province_demo(
    workdir: Path, *, say: Any = print, timeout: float = 60.0, per_branch: int = 2
) -> dict[str, Any]:
    """Run the two-branch platform demo in ``workdir`` (emptied first), ``per_branch`` loans each (1 or 2);
    returns what the summary shows.

    Raises :class:`agent.demo.run.DemoFolderRefused` when ``workdir`` holds files the demo did not make.
    """
    from sandbox import samples as sandbox_samples
    from sandbox.platform import ProvincePlatform
    from sandbox.register import COUNTIES

    started = time.monotonic()
    branches = [(n, b, d, dict(list(loans.items())[:per_branch])) for n, b, d, loans in BRANCHES]
    prepare_demo_folder(workdir)
    setup_logging(workdir / "var" / "agent.log", stderr=False)
    with ProvincePlatform() as platform:
        say(f"① provincial platform {platform.app_id} on {platform.url}, before "
            + ", ".join(f"{c.centre.name} ({d})" for d, c in platform.centres.items()))  # fmt: skip
        # the head office's own account at its home county (`regbridge enroll`: key store, secret, agent.toml)
        first = next(iter(platform.centres))
        local = platform.centres[first].centre
        iid = local.create_institution(
            name=sandbox_samples.bank().name, uscc=sandbox_samples.BANK_USCC,
            licence_no=sandbox_samples.BANK_LICENCE_NO, district=first,
        )  # fmt: skip
        local.create_operator(iid, "经办人1", operator_id="op-001")
        sandbox_samples.file_sample(local, iid)
        bundle = local.enrolment_bundle(iid, platform.centres[first].url, valid_for=timedelta(days=1))
        config_path = enrol(
            bundle,
            workdir,
            inboxes=[{"name": name, "path": f"inbox/{name}", "profile": "corebank_csv", "completion": "rename",
                      "branch": branch} for name, branch in [(n, b) for n, b, _, _ in BRANCHES] + [LATE[:2]]],
            # the platform has no event feed: the tracker reads each application on this schedule instead
            # each branch an institution the agent acts for (its own 统一社会信用代码, the mortgagee of its loans),
            # with its own 经办人 at each county centre
            settings={"data_dir": "var", "default_operator": "op-001", "metrics": {"port": 0},
                      "fees": {"auto_pay": True, "daily_cap": "5000.00"}, "straggler_seconds": 0.3,
                      "branches": {branch: {"institution_name": INSTITUTIONS[branch][0],
                                            "institution_uscc": branch_uscc(branch),
                                            "default_operator": INSTITUTIONS[branch][2][0]}
                                   for _, branch, _, _ in BRANCHES}},
        ).path  # fmt: skip
        # `regbridge platform enroll --desk`: SM2 keys made in the key store, registered at the platform's desk
        # with the notify URL; its answer (its keys, each county centre's anchors) written as [platform]
        notify_port = free_port()
        # the desk registers it as acting for both branches, each with its own 经办人 accounts at each county
        enrol_at_desk(
            config_path, APP_ID, desk_url=platform.url, desk_token=platform.admin_token,
            notify={"listen": "127.0.0.1", "port": notify_port, "public_url": f"http://127.0.0.1:{notify_port}/notify"},
            branches=[{"name": n, "uscc": branch_uscc(b), "operators": list(ops)}
                      for b, (n, _, ops) in INSTITUTIONS.items()],
        )  # fmt: skip
        config = load_config(config_path)
        assert config.platform is not None
        checked = {f.check: f.status for f in diagnose_platform(config_path) if f.check.startswith("platform")}
        say(f"② head office registered as {APP_ID}: SM2 keys exchanged at the desk; trust anchors of "
            f"{len(config.platform.centres)} county centres written to [platform.centres]")  # fmt: skip
        agent = Agent(config)  # the platform's port, its anchors and its notify receiver, all from agent.toml
        receiver = agent.notice_receiver()
        assert receiver is not None
        receiver.start()
        try:
            say("③ the agent acts for two branches, one inbox and receipts folder each, each branch its own "
                "institution with its own 经办人 at the centres: "
                + ", ".join(f"{branch} → inbox/{name} (经办人 {'/'.join(INSTITUTIONS[branch][2])})"
                            for name, branch, _, _ in BRANCHES))  # fmt: skip
            for name, branch, district, loans in branches:
                folder = workdir / "inbox" / name
                rows: list[dict[str, str]] = []
                for loan, n in loans.items():
                    samples.write_materials(folder / "materials", loan, "mortgage_first")
                    rows += samples.mortgage_rows(loan, n, amount="150", county=COUNTIES[district])
                for row in rows:  # the branch's own 经办人 prepared them
                    row["经办人"] = INSTITUTIONS[branch][2][-1]
                # each applicant's signed 申请书, by the signing platform its county centre trusts (issue 18)
                authority = platform.centres[district].centre.esign
                samples.write_esignatures(folder, samples.corebank_signers(rows), authority=authority)
                drop(folder, f"{name}_loans.csv", samples.corebank_csv(rows))
            say("④ each branch's loan system dropped its export (GB18030 CSV, units in its own county), with "
                "materials and the applicants' e-signed 申请书")
            idle = agent.run_until_idle(timeout=timeout)
            # the platform pushes a 查封 on the first mortgaged unit of each branch: a receipt line to that branch
            for _, _, _, loans in branches:
                app = next(a for a in agent.store.applications() if a.loan_no == next(iter(loans)))
                platform.push_notice(APP_ID, kind="seizure", unit_id=app.payload["properties"][0]["unit_id"])
            idle = agent.run_until_idle(timeout=timeout) and idle
            # a late export of 长丰支行 naming 肥西支行's 经办人: held by the agent, refused by the centre if sent
            late = workdir / "inbox" / LATE[0]
            rows = samples.mortgage_rows(LATE[2], LATE[3], amount="150", county=COUNTIES["340121"])
            for row in rows:
                row["经办人"] = LATE[4]
            samples.write_materials(late / "materials", LATE[2], "mortgage_first")
            samples.write_esignatures(late, samples.corebank_signers(rows),
                                      authority=platform.centres["340121"].centre.esign)  # fmt: skip
            drop(late, f"{LATE[0]}_loans.csv", samples.corebank_csv(rows))
            idle = agent.run_until_idle(timeout=timeout) and idle
            crossed = cross_branch(agent, platform)
            say(f"⑤ 长丰支行 row naming 肥西支行 经办人 {LATE[4]}: held by the agent ({'; '.join(crossed['held'])});"
                f" sent anyway, refused at the centre ({', '.join(crossed['refused'] or ['accepted!'])}), nothing"
                f" filed; a branch the head office was not registered for: refused by the platform"
                f" ({crossed['unregistered']})")  # fmt: skip
            # 肥西支行 asks the register (登记资料查询) about its first unit: answered by 肥西县's centre through the
            # platform, its signed answer and sealed 查询结果 verified against that centre's anchors
            feixi_unit = next(iter(branches[-1][3].values()))
            operator = INSTITUTIONS[branches[-1][1]][2][0]  # asked as the branch: by its own 经办人
            asked = run_query(agent.context, _query(feixi_unit, branches[-1][2], operator), document=True,
                              loan_no=next(iter(branches[-1][3])), branch=branches[-1][1])  # fmt: skip
            summary = summarise(agent, workdir, branches)
            for b in summary["branches"]:  # each branch's own 经办人 accounts, as the platform lists them
                listed = agent.context.centre.operators(institution_uscc=branch_uscc(b["branch"]))
                b["operators"] = sorted(o.operator_id for o in listed if o.active)
            summary["query"] = {"outcome": asked.outcome, "reasons": asked.reasons,
                                "document": str(Path(asked.document).relative_to(workdir)) if asked.document else None}
            summary.update(idle=idle, seconds=round(time.monotonic() - started, 1), doctor=checked,
                           cross_branch=crossed)  # fmt: skip
            summary["problems"] = check(summary)
            say(f"⑥ done in {summary['seconds']} s: "
                + "; ".join(f"{b['branch']}: {b['stored']}/{b['loans']} certificates verified and stored under"
                            f" documents/{b['branch']}/, 查封 pushed by the platform on {', '.join(b['seizures'])}"
                            " written to its receipts" for b in summary["branches"]))  # fmt: skip
            return summary
        finally:
            receiver.stop()
            agent.close()


def cross_branch(agent: Agent, platform: Any) -> dict[str, Any]:
    """The late 长丰支行 row naming 肥西支行's 经办人: what the agent held it with, the centre's refusal codes when its
    application is sent anyway through the agent's port, whether the centre filed anything, and the platform's
    refusal of the same application naming a branch the head office was not registered for."""
    import sdk
    from sandbox import samples as sandbox_samples
    from sdk.models import Application

    adapter: TypeAdapter[Application] = TypeAdapter(Application)
    app = next(a for a in agent.store.applications() if a.loan_no == LATE[2])
    held = [str(e["expected"]) for q in agent.store.quarantined() if q.get("kind") == "operator_check"
            for e in q["errors"]]  # fmt: skip
    refused: list[str] | None = None
    try:
        agent.context.centre.create(adapter.validate_python(app.payload), idempotency_key=f"{app.reference}:cross")
    except sdk.APIError as exc:
        refused = [e.code for e in exc.errors] or [exc.code]
        if not isinstance(exc, sdk.OperatorNotAuthorised):  # relayed as the operator error (4031), or the agent's
            refused.append(type(exc).__name__)  # operator path (refresh the list, hold the row alone) is missed
    filed = platform.centres["340121"].store.one(
        "SELECT count(*) AS n FROM applications WHERE client_reference = ?", app.reference
    )["n"]
    stranger = {**app.payload, "mortgagee": {**app.payload["mortgagee"],
                                             "id_number": sandbox_samples.uscc("91340100MA2NWY001")}}  # fmt: skip
    unregistered = None
    try:
        agent.context.centre.create(adapter.validate_python(stranger), idempotency_key=f"{app.reference}:stranger")
    except sdk.APIError as exc:
        unregistered = exc.code
    return {"loan_no": LATE[2], "held": held, "refused": refused, "filed": filed, "unregistered": unregistered}


def _query(n: int, district: str, operator: str) -> PropertyQuery:
    """A 登记资料查询 of seeded unit ``n`` of ``district``'s register by ``operator``, authorised by its first owner."""
    from sandbox import register

    owner = register.owners_of(n)[0]
    now = datetime.now(UTC)
    authorisation = {"reference": f"SQ-{district}-{n}", "applicant": owner.model_dump(mode="json"),
                     "signed_at": (now - timedelta(days=1)).isoformat(), "signature_id": "esig-demo",
                     "valid_until": (now + timedelta(days=30)).date().isoformat()}  # fmt: skip
    unit = register.unit_id(n, register.COUNTIES[district])
    return PropertyQuery.model_validate({"unit_id": unit, "operator_id": operator, "authorisation": authorisation})


def free_port() -> int:
    """A loopback port free now (the notify URL is registered before its receiver listens)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
    alerts = snapshot(agent.store)["alerts"]  # as `regbridge status --json` shows them
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
            "seizures": sorted(r["贷款编号"] for r in receipts if r.get("事件") == "notice_seizure"),
            # the 查封 alerts naming this branch, by the loan they name
            "seizure_alerts": sorted(loan for a in alerts if a["kind"].endswith(":seized") and a["branch"] == branch
                                     for loan in loans if f"】{loan} (" in a["message"]),
        })  # fmt: skip
    return {"branches": branches}


def check(summary: dict[str, Any]) -> list[str]:
    """What the demo promises, each broken promise in words."""
    problems = [f"doctor: {check} {status}" for check, status in summary.get("doctor", {}).items()
                if status == "fail" or (status != "ok" and check != "platform notify")]  # fmt: skip
    if not {"platform", "platform trust", "platform notify"} <= set(summary.get("doctor", {})):
        problems.append(f"doctor did not check the platform: {summary.get('doctor')}")
    query = summary.get("query") or {}
    if query.get("outcome") != "answered" or not query.get("document"):
        problems.append(f"the 登记资料查询 through the platform: {query}")
    crossed = summary.get("cross_branch") or {}
    if crossed.get("held") != [f"经办人 {LATE[4]} 不是本行在登记中心的有效账号（{LATE[1]}）"]:
        problems.append(f"{LATE[1]}'s row naming {LATE[4]} was held as {crossed.get('held')}")
    if crossed.get("refused") != ["operator_not_authorised"] or crossed.get("filed") != 0:
        problems.append(f"{LATE[1]}'s row naming {LATE[4]}, sent anyway: {crossed}")
    if crossed.get("unregistered") != "platform_4030":
        problems.append(f"an application of a branch not registered at the platform: {crossed.get('unregistered')}")
    for b in summary["branches"]:
        if b.get("operators") != sorted(INSTITUTIONS[b["branch"]][2]):
            problems.append(f"{b['branch']}: its 经办人 accounts at the centres are {b.get('operators')}")
        for row in b["applications"]:
            if row["stage"] != "done" or not row["certificates"]:
                problems.append(f"{b['branch']} {row['loan_no']}: {row['stage']}, no certificate stored")
            if row["district"] != b["district"]:
                problems.append(f"{b['branch']} {row['loan_no']}: went to {row['district']}, not {b['district']}")
            if any(not d.startswith(f"documents/{b['branch']}/") for d in row["documents"]):
                problems.append(f"{b['branch']} {row['loan_no']}: stored outside its branch: {row['documents']}")
        if b["receipt_loans"] != sorted(r["loan_no"] for r in b["applications"]):
            problems.append(f"{b['branch']}: receipts name {b['receipt_loans']}")
        if b["seizures"] != [b["applications"][0]["loan_no"]]:
            problems.append(f"{b['branch']}: the platform's 查封 reached the receipts as {b['seizures']}")
        if b["seizure_alerts"] != b["seizures"]:
            problems.append(f"{b['branch']}: `regbridge status` names it in 查封 alerts of {b['seizure_alerts']}")
    return problems
