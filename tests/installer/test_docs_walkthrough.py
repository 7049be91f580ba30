"""The documentation followed by hand, command by command (issue 18, must show).

docs/sandbox.md: ``create-institution``, ``create-operator --operator-id op-001``, ``bundle``;
docs/install.md, the walkthrough: ``enroll`` (which says auto-pay is off), ``filing`` (银行信息备案 of the
shipped sample 营业执照 and 金融许可证, once), the shipped all-valid
sample export (config/samples/valid/) dropped into the inbox, each applicant's 申请书 signed (``sandbox esign``,
the signing platform's stand-in), ``run --until-idle``, ``fees`` and
``fees pay`` for each fee due, ``run --until-idle`` again. Every row ends registered with its
certificate stored, and no application is refused or held for its operator.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

from agent.demo import samples
from sandbox import register
from tests.stored import stored_certificates

from .test_enrolment_e2e import _clean_env, _cli, centre_process  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_by_hand_register_every_row_of_the_valid_sample(
    tmp_path: Path,
    centre_process: tuple[str, Path, dict[str, str]],  # noqa: F811
) -> None:
    url, _, centre_env = centre_process
    # docs/sandbox.md, "Accounts: the centre's admin side"
    iid = _cli("sandbox", "admin", "create-institution", "--name", register.SAMPLE_BANK_NAME,
               "--uscc", register.SAMPLE_BANK_USCC, "--licence-no", "B0001H234010001",
               env=centre_env, cwd=tmp_path).stdout.strip()  # fmt: skip
    op = _cli("sandbox", "admin", "create-operator", iid, "--name", "李经办", "--operator-id", "op-001",
              env=centre_env, cwd=tmp_path)  # fmt: skip
    assert op.stdout.strip() == "op-001"
    _cli("sandbox", "admin", "bundle", iid, "--url", url, "--out", str(tmp_path / "bank.json"),
         env=centre_env, cwd=tmp_path)  # fmt: skip

    # docs/install.md, the walkthrough
    work = tmp_path / "branch"
    env = _clean_env(REGBRIDGE_METRICS__PORT="0")  # any free port: other agents may run on this machine
    enrolled = _cli("enroll", str(tmp_path / "bank.json"), "--dir", str(work), "--key-store", "file",
                    "--inbox", "corebank=inbox/corebank:corebank_csv", env=env, cwd=tmp_path)  # fmt: skip
    assert "auto-pay is off" in enrolled.stdout and "regbridge fees pay" in enrolled.stdout
    config = str(work / "agent.toml")
    before = _cli("filing", "-c", config, env=env, cwd=tmp_path, check=False)  # nothing filed yet
    assert before.returncode == 1 and "未办理银行信息备案" in before.stdout
    filing = ROOT / "config" / "samples" / "filing"
    filed = _cli("filing", "-c", config, "--business-licence", str(filing / "business_licence.pdf"),
                 "--financial-licence", str(filing / "financial_licence.pdf"),
                 "--financial-licence-number", "B0001H234010001", env=env, cwd=tmp_path)  # fmt: skip
    assert "营业执照 91340100781081199K" in filed.stdout and "备案齐全有效" in filed.stdout
    doctor = json.loads(_cli("doctor", "--json", "-c", config, env=env, cwd=tmp_path, check=False).stdout)
    operators = next(f for f in doctor if f["check"] == "operators")
    assert operators["status"] == "ok" and "op-001" in operators["detail"]
    filing_check = next(f for f in doctor if f["check"] == "filing")
    assert filing_check["status"] == "ok" and "金融许可证 B0001H234010001" in filing_check["detail"]
    inbox = work / "inbox" / "corebank"
    shutil.copytree(ROOT / "config" / "samples" / "valid", inbox, dirs_exist_ok=True)
    # each applicant signs the 申请书 on the signing platform (here the sandbox's e-signature CA, docs/sandbox.md):
    # the signed PDF goes where the export's 电子签名文件 column says
    for signed, loan, name, number in samples.corebank_signers(samples.valid_rows()):
        _cli("sandbox", "esign", str(inbox / "materials" / f"{loan}_application_form.pdf"), "--name", name,
             "--id-number", number, "--out", str(inbox / signed), env=centre_env, cwd=tmp_path)  # fmt: skip

    _cli("run", "--until-idle", "--timeout", "90", "-c", config, env=env, cwd=tmp_path)
    listing = json.loads(_cli("fees", "--json", "-c", config, env=env, cwd=tmp_path).stdout)
    status = _cli("status", "--json", "-c", config, env=env, cwd=tmp_path).stdout
    due = listing["due"]
    assert due, (listing, status)
    references = sorted(f"{loan}-DYSC" for loan in samples.VALID_LOANS)
    assert sorted(d["reference"] for d in due) == references and all(d["amount"] == "80.00" for d in due)
    for ref in references:
        paid = _cli("fees", "pay", ref, "-c", config, env=env, cwd=tmp_path)
        assert "paid 80.00 元" in paid.stdout
    _cli("run", "--until-idle", "--timeout", "90", "-c", config, env=env, cwd=tmp_path)

    con = sqlite3.connect(f"file:{work / 'var' / 'state.db'}?mode=ro", uri=True)
    try:
        stages = dict(con.execute("SELECT reference, stage FROM applications").fetchall())
        quarantined = con.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
    finally:
        con.close()
    assert stages == {ref: "done" for ref in references}
    assert quarantined == 0  # no row held, for its operator or anything else
    pdfs = sorted(p.parent.name for p in stored_certificates(work / "documents"))
    assert pdfs == sorted(samples.VALID_LOANS)
    lines = []
    for path in sorted((inbox / "receipts").glob("receipts-*.csv")):
        lines += list(csv.DictReader(io.StringIO(path.read_bytes().decode("gb18030"))))
    assert Counter(r["贷款编号"] for r in lines if r["事件"] == "registered") == Counter(list(samples.VALID_LOANS))
    assert not [r for r in lines if r["事件"] in ("rejected", "quarantined")]


def _walkthrough() -> list[str]:
    """The walkthrough's shell block in docs/install.md, one command per line (continuations joined)."""
    text = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    block = text.split("## Walkthrough", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_walkthrough_gives_the_centre_its_passphrase_as_the_test_does() -> None:
    """On a branch server there is no OS keyring: ``sandbox serve --data`` as the walkthrough wrote it refused to start
    ("the centre's keys are encrypted at rest: set REGBRIDGE_SANDBOX_SECRET…"); the test gives its centre the
    passphrase in the environment (centre_process), so the walkthrough says to, before the first centre command."""
    commands = _walkthrough()
    serve = next(i for i, c in enumerate(commands) if c.startswith("regbridge sandbox serve"))
    secret = [i for i, c in enumerate(commands) if c.startswith("export REGBRIDGE_SANDBOX_SECRET=")]
    assert secret and secret[0] < serve, commands[: serve + 1]
