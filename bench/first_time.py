"""First-time acceptance with and without the register pre-flight, in one run (issue 24 item 3).

One sandbox centre, two banks sending the same mix of first mortgages and discharges: most are good; some fail
a register check (a seized unit, a mortgagor who is not an owner, another unit's title number, the discharge of a
mortgage that does not exist); a few fail what no register check foresees (the centre's reviewer refuses a
material: scripted at 受理). The baseline bank has no authorisation on file (no pre-flight, as before); the other
carries the applicants' 查询授权书, so its agent checks each application against the register first. The figure:
the share of decided applications registered without 补正 or refusal (``first_time_acceptance``), and the
refusals avoided (``held_by_preflight``).
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

from bench.common import Result

__all__ = ["run"]

FORESEEABLE = ("seized", "not_owner", "title", "gone")


def _export(inbox: Path, prefix: str, units: dict[str, list[int]], authorised: bool, operator: str) -> bytes:
    from agent.demo import samples
    from sandbox import register

    stranger = register.owners_of(299)[0]
    rows: list[dict[str, str]] = []
    for kind, numbers in units.items():
        for n in numbers:
            loan = f"{prefix}-{kind}-{n}"
            if kind == "gone":
                rows += samples.existing_rows(loan, "抵押注销", n, "皖(2024)长丰县不动产证明第0009998号")
                samples.write_materials(inbox / "materials", loan, "mortgage_discharge")
                continue
            title = register.title_certificate(n + 1) if kind == "title" else None
            made = samples.mortgage_rows(loan, n, amount="100", title=title)
            if kind == "not_owner":
                made = [{**r, "抵押人": stranger.name, "证件号码": stranger.id_number} for r in made]
            rows += made
            samples.write_materials(inbox / "materials", loan, "mortgage_first")
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, samples.COREBANK_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for r in rows:
        auth = {"查询授权书编号": f"SQ-{r['贷款编号']}", "授权有效期止": "2099-12-31"} if authorised else {}
        writer.writerow({**r, **auth, "经办人": operator})
    return buf.getvalue().encode("gb18030")


def _bank(centre: Any, root: Path, profile: Path, prefix: str, units: dict[str, list[int]], authorised: bool,
          timeout: float) -> dict[str, Any]:  # fmt: skip
    from agent.config import load_config
    from agent.daemon import Agent
    from agent.state.status import first_time_acceptance, held_by_preflight
    from installer.enrol import enrol
    from sdk.identifiers import uscc_check_char

    first17 = "91340100MA2N0" + ("0101" if authorised else "0102")
    operator = f"op-{prefix.lower()}"
    _, bundle = centre.bank(name=f"基准测试银行{prefix}分行", uscc=first17 + uscc_check_char(first17),
                            operators=(operator,))  # fmt: skip
    inbox = {"name": "corebank", "path": "inbox/corebank", "profile": str(profile), "completion": "rename"}
    settings = {"default_operator": operator, "fees": {"auto_pay": True, "daily_cap": "1000000"},
                "metrics": {"port": 0}, "concurrency": 8}  # fmt: skip
    secret = b"bench-first-time"
    done = enrol(bundle, root, secret=secret, inboxes=[inbox], settings=settings)
    folder = root / "inbox" / "corebank"
    folder.mkdir(parents=True, exist_ok=True)
    data = _export(folder, prefix, units, authorised, operator)
    (folder / ".export.csv.part").write_bytes(data)
    (folder / ".export.csv.part").rename(folder / "export.csv")
    agent = Agent(load_config(done.path), secret=secret)
    started = time.monotonic()
    try:
        agent.run_until_idle(timeout=timeout)
        return {**first_time_acceptance(agent.store), "held": held_by_preflight(agent.store),
                "seconds": time.monotonic() - started}  # fmt: skip
    finally:
        agent.close()


def run(good: int, work: Path, *, each: int = 1, unforeseeable: int = 1, timeout: float = 600) -> Result:
    """``good`` clean applications, ``each`` of every foreseeable failure and ``unforeseeable`` scripted refusals
    per bank; both banks in the same run against one centre."""
    from sandbox import register
    from sandbox.local import LocalCentre

    profile = work / "corebank.toml"  # the shipped core-banking profile: it maps the 查询授权书 columns
    profile.write_text((Path(__file__).resolve().parents[1] / "config" / "mappings" / "corebank_csv.toml").read_text(
        "utf-8"), "utf-8")  # fmt: skip
    figures = {}
    with LocalCentre() as centre:
        spare = (register.SEIZED_UNIT, register.OBJECTION_UNIT)
        homes = [n for n in range(1, 241) if n % 5 and n % 7 and n not in spare]  # one owner, no mortgage yet
        for prefix, offset in (("BASE", 0), ("PF", 1)):
            pick = homes[offset::2]  # the two banks take different units: one bank's mortgage is not in the other's way
            units: dict[str, list[int]] = {"good": pick[:good]}
            rest = pick[good:]
            for kind in FORESEEABLE:
                units[kind], rest = rest[:each], rest[each:]
            units["scripted"] = rest[:unforeseeable]
            for n in units["seized"]:
                centre.centre.restrict_unit(register.unit_id(n), "seizure", authority="长丰县人民法院",
                                            document=f"(2026)皖0121执{n:04d}号")  # fmt: skip
            for n in units["scripted"]:
                centre.centre.workflow.set_script(
                    f"{prefix}-scripted-{n}-DYSC", "acceptance",
                    {"outcome": "not_accepted", "reason": "主债权合同扫描件无法辨认（审查人员认定）"},
                )  # fmt: skip
            # the scripted rows are good rows: only the reviewer refuses them
            figures[prefix] = _bank(centre, work / prefix, profile, prefix, units, prefix == "PF", timeout)
    base_f, pf = figures["BASE"], figures["PF"]
    ratio = (pf["share"] or 0) / base_f["share"] if base_f["share"] else None
    return Result(
        f"First-time acceptance, {good} good + {each * len(FORESEEABLE)} register-foreseeable "
        f"+ {unforeseeable} reviewer-refused applications a bank",
        f"with pre-flight {pf['share']:.0%} ({pf['first_time']} of {pf['decided']} decided; "
        f"{pf['held']} held before sending)",
        f"without {base_f['share']:.0%} ({base_f['first_time']} of {base_f['decided']} decided)",
        ratio,
        "every register-foreseeable refusal avoided (held = foreseeable)",
        pf["held"] == each * len(FORESEEABLE),
        [f"Two banks against one sandbox centre in the same run, the same mix of rows on different units: the "
         f"baseline bank sends without an authorisation on file (no pre-flight); the other's export carries the "
         f"applicants' 查询授权书, so its agent queries each unit first and holds what the register checks of "
         f"config/register_checks.toml say would fail. Baseline {base_f['seconds']:.0f} s, pre-flight "
         f"{pf['seconds']:.0f} s (one 登记资料查询 more per application)."],
    )  # fmt: skip
