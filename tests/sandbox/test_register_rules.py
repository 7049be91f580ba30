"""The register's rules as a real centre applies them (issue 18 item 5), over loopback HTTP with the SDK.

注销 by the mortgagor alone stands only on an effective court or arbitration document (seed 004).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from sandbox import register
from sandbox.review import china_today
from sdk.models import Application, ApplicationStatus
from tests import factories as f

from .conftest import Bank, Running, settle
from .test_lifecycle import lodge

S = ApplicationStatus


def _unilateral(ref: str, document: dict[str, Any] | None) -> dict[str, Any]:
    """A discharge of seeded unit 15's mortgage applied for by its owner alone, the bank as agent."""
    data = f.application_dict("mortgage_discharge", ref, complete=True)
    data["applicant_side"] = "mortgagor"
    data["declaration"]["signatures"] = [
        {"party": f"/mortgagors/{i}", "signature_id": f"sig-{i}", "signed_at": "2026-11-22T09:00:00+08:00"}
        for i in range(len(data["mortgagors"]))
    ]
    data["materials"] = f.complete_materials("mortgage_discharge", data)
    if document is not None:
        court = next(m for m in data["materials"] if m["code"] == "court_document")
        data["court_document"] = {**document, "material_id": court["id"]}
    return data


JUDGMENT = {"kind": "judgment", "issuing_body": "长丰县人民法院", "document_number": "(2026)皖0121民初1234号"}


def test_a_mortgagor_alone_discharges_only_with_an_effective_court_document(sandbox: Running, bank: Bank) -> None:
    bare = settle(bank.client, lodge(bank, _unilateral("LN-ZX-1", None)).application_id)
    assert bare.status is S.NOT_ACCEPTED and bare.decision is not None
    assert bare.decision.code == "court_document_required"
    assert "生效法律文书" in bare.decision.reason and bare.decision.notice_number

    tomorrow = (china_today() + timedelta(days=1)).isoformat()
    early = settle(bank.client, lodge(bank, _unilateral("LN-ZX-2", {**JUDGMENT, "effective_date": tomorrow}))
                   .application_id)  # fmt: skip
    assert early.status is S.NOT_ACCEPTED and early.decision is not None
    assert early.decision.code == "court_document_not_effective"
    assert "尚未生效" in early.decision.reason and tomorrow in early.decision.reason

    today = china_today().isoformat()
    award = {"kind": "arbitration_award", "issuing_body": "合肥仲裁委员会", "document_number": "(2026)合仲字第88号"}
    done = settle(bank.client, lodge(bank, _unilateral("LN-ZX-3", {**award, "effective_date": today})).application_id)
    assert done.status is S.COMPLETED, done.decision
    assert done.application.court_document is not None  # type: ignore[union-attr]
    assert done.application.court_document.document_number == "(2026)合仲字第88号"  # type: ignore[union-attr]


def test_the_joint_and_the_mortgagees_discharge_need_no_court_document(sandbox: Running, bank: Bank) -> None:
    own = settle(bank.client, lodge(bank, f.application_dict("mortgage_discharge", "LN-ZX-B", complete=True))
                 .application_id)  # fmt: skip
    assert own.status is S.COMPLETED
    joint = f.application_dict("mortgage_discharge", "LN-ZX-J", n=25, complete=True)
    joint["mortgage_certificate"] = register.seed_mortgage_certificate(25)
    joint["applicant_side"] = "joint"
    joint["declaration"]["signatures"] = [
        *({"party": f"/mortgagors/{i}", "signature_id": f"sig-{i}", "signed_at": "2026-11-22T09:00:00+08:00"}
          for i in range(len(joint["mortgagors"]))),
        {"party": "/mortgagee/0", "signature_id": "seal", "signed_at": "2026-11-22T09:00:00+08:00"},
    ]  # fmt: skip
    joint["materials"] = f.complete_materials("mortgage_discharge", joint)
    assert settle(bank.client, lodge(bank, joint).application_id).status is S.COMPLETED


def test_the_court_document_is_checked_as_data() -> None:
    adapter = TypeAdapter(Application)
    good = _unilateral("LN-ZX-M", {**JUDGMENT, "effective_date": "2026-10-01"})
    assert adapter.validate_python(good).court_document is not None  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="names no material of code court_document"):
        adapter.validate_python({**good, "court_document": {**good["court_document"], "material_id": "m1"}})
    with pytest.raises(ValidationError, match="仲裁委员会"):
        adapter.validate_python({**good, "court_document": {**good["court_document"], "kind": "arbitration_award"}})
    with pytest.raises(ValidationError, match="人民法院"):
        adapter.validate_python(
            {**good, "court_document": {**good["court_document"], "issuing_body": "合肥仲裁委员会"}}
        )
