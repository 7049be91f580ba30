"""Sample data consistent with the sandbox's seeded register: parties, properties, and a valid
application of every business type about a seeded unit and its owners.

Tests, the sandbox's sample certificate and the demo's sample exports all draw on it, so what
they submit is what the register says (owners, titles, existing mortgages).
"""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sandbox import register
from sandbox.esign import EsignAuthority, document_pdf, memory_authority
from sdk.identifiers import resident_id_check_char, uscc_check_char
from sdk.models import (
    APPLICATION_TYPES,
    SIGNED_DOCUMENT_CODES,
    ApplicationBase,
    Declaration,
    ElectronicSignatureRef,
    FilingDocument,
    InquiryAnswer,
    InstitutionFiling,
    Material,
    NaturalPerson,
    Organisation,
    PropertyUnit,
)

BANK_USCC = "91340100781081199K"
SIGNED_AT = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


def resident_id(seq: int = 123, birth: str = "19800101", area: str = "340104") -> str:
    first17 = f"{area}{birth}{seq:03d}"
    return first17 + resident_id_check_char(first17)


def uscc(body17: str = "91340100MA2N00001") -> str:
    return body17 + uscc_check_char(body17)


def person(name: str = "张三", seq: int = 123) -> NaturalPerson:
    return NaturalPerson(name=name, id_number=resident_id(seq))


def bank() -> Organisation:
    return Organisation(name="中国示例银行股份有限公司合肥分行", id_number=BANK_USCC)


def unit(n: int = 1, county: register.County = register.CHANGFENG) -> PropertyUnit:
    """Seeded unit ``n`` of the register of ``county``'s sandbox centre (see sandbox.register)."""
    return PropertyUnit(
        unit_id=register.unit_id(n, county),
        location=register.location(n, county),
        title_certificate=register.title_certificate(n, county),
    )


def buyer(n: int) -> NaturalPerson:
    """A buyer of presale unit ``n`` (not in the register until a purchase notice is recorded)."""
    return NaturalPerson(name="钱多多", id_number=resident_id(n % 1000, birth="19900315"))


def material(
    content: bytes = b"%PDF-1.7 sample",
    mid: str = "m1",
    code: str = "application_form",
    media_type: str = "application/pdf",
) -> Material:
    return Material(
        id=mid,
        code=code,
        filename=f"{mid}.pdf",
        media_type=media_type,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
    )


#: the sample bank's 金融许可证 机构编码 (the licence number its sandbox account is opened with)
BANK_LICENCE_NO = "B0001H234010001"


def filing_content(code: str, number: str) -> bytes:
    """A stand-in scan of a filed document (营业执照 / 金融许可证)."""
    return f"%PDF-1.7 sample {code} {number}".encode()


def filing(
    uscc: str = BANK_USCC, licence_no: str = BANK_LICENCE_NO, *, valid_until: date | None = None
) -> tuple[InstitutionFiling, dict[str, bytes]]:
    """A 银行信息备案 (seed 001 §5.2) of an institution: its 营业执照 (长期) and 金融许可证 (valid until
    ``valid_until``, 长期 when none), and each document's content by id."""
    contents = {
        "yyzz": filing_content("business_licence", uscc),
        "jrxkz": filing_content("financial_licence", licence_no),
    }
    documents = [
        FilingDocument(id="yyzz", code="business_licence", number=uscc, filename="营业执照.pdf",
                       media_type="application/pdf", sha256=hashlib.sha256(contents["yyzz"]).hexdigest(),
                       size=len(contents["yyzz"])),
        FilingDocument(id="jrxkz", code="financial_licence", number=licence_no, filename="金融许可证.pdf",
                       media_type="application/pdf", sha256=hashlib.sha256(contents["jrxkz"]).hexdigest(),
                       size=len(contents["jrxkz"]), valid_until=valid_until),
    ]  # fmt: skip
    return InstitutionFiling(documents=documents), contents


def file_sample(centre: Any, institution_id: str, *, valid_until: date | None = None) -> None:
    """File the institution's sample 营业执照 and 金融许可证 at ``centre`` (a :class:`sandbox.centre.Centre`), as
    the bank does once with ``regbridge filing`` — for harnesses that open an account and go straight on."""
    row = centre.institution_row(institution_id)
    made, contents = filing(row["uscc"], row["licence_no"], valid_until=valid_until)
    centre.file_institution(institution_id, made)
    for doc in made.documents:
        centre.upload_filing_document(institution_id, doc.id, contents[doc.id])


def declaration(*pointers: str) -> Declaration:
    return Declaration(
        operator_id="op-001",
        inquiry=[InquiryAnswer(question_code="true_intent", question="是否为真实意思表示", answer="是")],
        commitment_accepted=True,
        signatures=[
            ElectronicSignatureRef(party=p, signature_id=f"sig-{i}", signed_at=SIGNED_AT)
            for i, p in enumerate(pointers or ("/mortgagors/0",))
        ],
    )


GENERAL_TERMS = {
    "method": "1",
    "secured_amount": "1500000.00",
    "debt_start": "2026-03-05",
    "debt_end": "2046-03-04",
    "guarantee_scope": "主债权及利息、违约金、损害赔偿金和实现债权的费用",
}
MAXIMUM_TERMS = {
    "method": "2",
    "maximum_amount": "3000000.00",
    "debt_start": "2026-03-05",
    "debt_end": "2031-03-04",
    "determination_start": "2026-03-05",
    "determination_end": "2031-03-04",
}


#: a seeded unit that suits each business type (see sandbox.register)
DEFAULT_UNIT = {
    "mortgage_first": 1,
    "mortgage_change": 5,
    "mortgage_discharge": 15,
    "purchase_notice": 241,
    "mortgage_notice": 242,
    "purchase_and_mortgage_notice": 243,
    "mortgage_notice_conversion": 281,
    "maximum_determination": 20,
    "mortgage_first_with_determination": 2,
}


#: the documents an applicant e-signs (the 申请书, the 询问笔录): real PDFs, so they can be signed
SIGNED_DOCUMENTS = SIGNED_DOCUMENT_CODES
#: the material code of an applicant's signed document (电子签名文件)
ESIGNATURE_CODE = "esignature"
_SIGNED: dict[tuple[str, str, str, str], bytes] = {}
_BY_DIGEST: dict[str, bytes] = {}


def material_content(code: str, ref: str = "") -> bytes:
    """The sample content of material ``code`` of application ``ref``: a real PDF for what applicants sign
    (:data:`SIGNED_DOCUMENTS`), a stand-in line of text otherwise."""
    if code in SIGNED_DOCUMENTS:
        return document_pdf(f"{code} {ref}", [f"client_reference {ref}", "RegBridge sample document"])
    return f"%PDF-1.7 sample {code} {ref}".encode()


def esigned(
    document: bytes, party: NaturalPerson | Organisation | dict[str, Any], *, authority: EsignAuthority | None = None
) -> bytes:
    """``document`` e-signed by ``party`` with the sandbox's e-signature CA (this process's in-memory one
    by default), the same bytes for the same arguments within a process; :func:`sample_content` finds
    them again by digest."""
    name, number = (party["name"], party["id_number"]) if isinstance(party, dict) else (party.name, party.id_number)
    ca = authority or memory_authority()
    key = (hashlib.sha256(document).hexdigest(), name, number, ca.ca_pem)
    signed = _SIGNED.get(key)
    if signed is None:
        signed = _SIGNED[key] = ca.sign(document, name=name, id_number=number)
        _BY_DIGEST[hashlib.sha256(signed).hexdigest()] = signed
    return signed


def sample_content(material: Material, ref: str) -> bytes:
    """The content of a sample application's material ``material`` (its declared SHA-256 says which).

    Raises:
        KeyError: no sample content has that digest.
    """
    if material.sha256 in _BY_DIGEST:
        return _BY_DIGEST[material.sha256]
    for content in (material_content(material.code, ref), b"%PDF-1.7 sample"):
        if hashlib.sha256(content).hexdigest() == material.sha256:
            return content
    raise KeyError(f"no sample content for material {material.id}")


def esign_materials(data: dict[str, Any], *, document_id: str, authority: EsignAuthority | None = None) -> None:
    """Sign the material ``document_id`` of application ``data`` (wire JSON) by each applicant but the
    bank: add the signed PDFs as materials and refer to them from the declaration (in place)."""
    ref = data["client_reference"]
    doc = next(m for m in data["materials"] if m["id"] == document_id)
    content = material_content(doc["code"], ref)
    signatures = []
    pointers = [p for p in _pointers(APPLICATION_TYPES[data["type"]], data) if not p.startswith("/mortgagee/")]
    for k, pointer in enumerate(pointers, 1):
        _, field, index = pointer.split("/")
        signed = esigned(content, data[field][int(index)], authority=authority)
        mid = f"esign{k}"
        data["materials"].append(
            material(signed, mid=mid, code=ESIGNATURE_CODE, media_type="application/pdf").model_dump(mode="json")
        )
        signatures.append(
            {"party": pointer, "material_id": mid, "document_id": document_id, "signed_at": SIGNED_AT.isoformat()}
        )
    data["declaration"]["signatures"] = signatures


def application_dict(
    kind: str,
    ref: str = "LN2026-0001",
    n: int | None = None,
    *,
    complete: bool = False,
    county: register.County = register.CHANGFENG,
) -> dict[str, Any]:
    """A valid application of type ``kind`` as wire JSON, about seeded unit ``n`` of ``county``'s register
    and its owners (the earlier certificates it names are that county's).

    It carries its 申请书 (``m1``) and each applicant's e-signature over it (signed by this process's in-memory
    e-signature CA, :func:`esign_materials`); with ``complete`` every material its checklist requires (content from
    :func:`material_content`), so the sandbox accepts it without a 补正.
    """
    n = DEFAULT_UNIT[kind] if n is None else n
    prop = unit(n, county).model_dump(mode="json", exclude_none=True)
    base: dict[str, Any] = {
        "type": kind,
        "client_reference": ref,
        "properties": [prop],
        "materials": [material(material_content("application_form", ref)).model_dump(mode="json")],
    }
    owners = [o.model_dump(mode="json", exclude_none=True) for o in register.owners_of(n)]
    lender = bank().model_dump(mode="json", exclude_none=True)
    purchaser = [buyer(n).model_dump(mode="json", exclude_none=True)]
    developer = [register.DEVELOPER.model_dump(mode="json", exclude_none=True)]
    proof = register.seed_mortgage_certificate(n, county=county)
    parties = {"mortgagors": owners, "mortgagee": lender}
    specific: dict[str, dict[str, Any]] = {
        "mortgage_first": {**parties, "terms": GENERAL_TERMS, "main_contract_number": "HT-1"},
        "mortgage_change": {
            **parties,
            "mortgage_certificate": proof,
            "changes": [{"kind": "secured_debt", "new_amount": "1200000.00"}, {"kind": "rank", "new_rank": 1}],
            "reason": "借款人部分还款",
        },
        "mortgage_discharge": {**parties, "mortgage_certificate": proof, "applicant_side": "mortgagee"},
        "purchase_notice": {
            "buyers": purchaser,
            "sellers": developer,
            "sale_contract_number": "YS-2026-1",
            "price": "2000000.00",
        },
        "mortgage_notice": {
            "mortgagors": purchaser,
            "mortgagee": lender,
            "terms": GENERAL_TERMS,
            "main_contract_number": "HT-2",
        },
        "purchase_and_mortgage_notice": {
            "mortgagors": purchaser,
            "mortgagee": lender,
            "sellers": developer,
            "sale_contract_number": "YS-2026-2",
            "terms": GENERAL_TERMS,
            "main_contract_number": "HT-3",
        },
        "mortgage_notice_conversion": {
            **parties,
            "notice_certificate": register.notice_certificate(n, county),
            "terms": GENERAL_TERMS,
            "main_contract_number": "HT-4",
        },
        "maximum_determination": {
            **parties,
            "mortgage_certificate": proof,
            "determined_amount": "1000000.00",
            "determination_fact": "债权确定期间届满",
        },
        "mortgage_first_with_determination": {
            **parties,
            "terms": MAXIMUM_TERMS,
            "main_contract_number": "HT-5",
            "determined_amount": "2800000.00",
            "determination_fact": "抵押权人与抵押人约定确定",
        },
    }
    base.update(copy.deepcopy(specific[kind]))
    cls = APPLICATION_TYPES[kind]
    pointers = _pointers(cls, base)
    base["declaration"] = declaration(*pointers).model_dump(mode="json")
    if complete:
        base["materials"] = complete_materials(kind, base)
    form = next((m["id"] for m in base["materials"] if m["code"] in SIGNED_DOCUMENTS), None)
    if form is not None:  # the applicants' e-signatures over the 申请书, as the centre requires (seed 003 细则 (四))
        esign_materials(base, document_id=form)
    return base


def complete_materials(kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """One material per item the business type's checklist requires of this application."""
    from pydantic import TypeAdapter

    from config import load_checklists
    from sdk.checklists import required_materials
    from sdk.models import Application

    app = TypeAdapter(Application).validate_python({**data, "materials": []})
    items = required_materials(app, load_checklists()[kind])
    return [
        material(material_content(i.code, data["client_reference"]), mid=f"m{k}", code=i.code).model_dump(mode="json")
        for k, i in enumerate(items, 1)
    ]


def _pointers(cls: type[ApplicationBase], data: dict[str, Any]) -> list[str]:
    if data["type"] == "mortgage_discharge":  # who applies (seed 004): the mortgagee, the mortgagors, or both
        side = data.get("applicant_side", "mortgagee")
        owners = [f"/mortgagors/{i}" for i in range(len(data["mortgagors"]))]
        return ["/mortgagee/0"] if side == "mortgagee" else owners + (["/mortgagee/0"] if side == "joint" else [])
    pointers: list[str] = []
    for name in cls.applicant_fields:
        pointers += [f"/{name}/{i}" for i in range(len(data[name]))]
    return pointers


def application(kind: str = "mortgage_first", ref: str = "LN2026-0001", n: int | None = None) -> Any:
    from pydantic import TypeAdapter

    from sdk.models import Application

    return TypeAdapter(Application).validate_python(application_dict(kind, ref, n))


ALL_TYPES = sorted(APPLICATION_TYPES)
TODAY = date(2026, 11, 22)
AMOUNT = Decimal("1500000.00")
