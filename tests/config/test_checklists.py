"""The checklists of seed 004, applied to applications."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from config import load_checklists
from sdk.checklists import missing_materials, required_materials
from sdk.models import Application
from tests import factories as f

APP = TypeAdapter(Application)


def _app(kind: str, codes: list[str], **changes: Any) -> Any:
    """An application of ``kind`` carrying the materials ``codes`` and, where one of them is the 申请书, each
    applicant's e-signature over it (the centre requires signed documents, seed 003 细则 (四))."""
    data = f.application_dict(kind)
    ref = data["client_reference"]
    data["materials"] = [
        f.material(f.material_content(c, ref), mid=f"m{i}", code=c).model_dump(mode="json") for i, c in enumerate(codes)
    ]
    data.update(changes)
    form = next((m["id"] for m in data["materials"] if m["code"] in f.SIGNED_DOCUMENTS), None)
    if form is not None:
        f.esign_materials(data, document_id=form)
    return APP.validate_python(data)


def test_every_business_type_has_a_valid_checklist() -> None:
    lists = load_checklists()
    assert set(lists) == set(f.ALL_TYPES)
    for checklist in lists.values():
        codes = [i.code for i in checklist.items]
        assert "application_form" in codes and len(codes) == len(set(codes))


def test_first_registration_general_mortgage() -> None:
    checklist = load_checklists()["mortgage_first"]
    app = _app("mortgage_first", ["application_form"])
    assert [i.code for i in missing_materials(app, checklist)] == [
        "applicant_identity",
        "title_certificate",
        "main_contract",
    ]
    complete = _app("mortgage_first", ["application_form", "applicant_identity", "title_certificate", "main_contract"])
    assert missing_materials(complete, checklist) == []


def test_maximum_mortgage_with_existing_debts_needs_more() -> None:
    checklist = load_checklists()["mortgage_first"]
    base = ["application_form", "applicant_identity", "title_certificate", "main_contract"]
    app = _app(
        "mortgage_first",
        base,
        terms={**f.MAXIMUM_TERMS, "includes_existing_debts": True},
        mortgage_contract_number="DY-1",
    )
    assert [i.code for i in missing_materials(app, checklist)] == [
        "mortgage_contract",
        "maximum_mortgage_contract",
        "existing_debt_consent",
    ]


def test_discharge_materials_depend_on_who_applies() -> None:
    checklist = load_checklists()["mortgage_discharge"]
    mortgagee = _app("mortgage_discharge", [])
    assert {i.code for i in required_materials(mortgagee, checklist)} == {
        "application_form",
        "applicant_identity",
        "extinction_proof",
        "mortgage_proof",
    }
    data = f.application_dict("mortgage_discharge")
    data["applicant_side"] = "mortgagor"
    data["declaration"] = f.declaration("/mortgagors/0").model_dump(mode="json")
    mortgagor = APP.validate_python(data)
    assert "court_document" in {i.code for i in required_materials(mortgagor, checklist)}
    assert "mortgage_proof" not in {i.code for i in required_materials(mortgagor, checklist)}


def test_checklist_must_match_the_type() -> None:
    with pytest.raises(ValueError, match="not for"):
        missing_materials(_app("mortgage_first", ["application_form"]), load_checklists()["mortgage_discharge"])
