"""Applications: the business types a bank may apply for (seed 001), as a discriminated union.

Every application names the loan operation it belongs to (``client_reference``), the property
units, the parties, its materials and the declaration that makes it the applicants' own. The
``type`` field selects the business type:

================================== ======================================== ===========
type                               business                                  DJLX
================================== ======================================== ===========
mortgage_first                     抵押权首次登记                             100
mortgage_change                    抵押权变更登记                             300
mortgage_discharge                 抵押权注销登记                             400
purchase_notice                    预告登记 (商品房预售)                      700
mortgage_notice                    抵押权预告登记                             700
purchase_and_mortgage_notice       预告登记 + 抵押权预告登记 (combined)        700
mortgage_notice_conversion         抵押权预告登记转抵押权首次登记              100
maximum_determination              最高额抵押权确定登记                        300
mortgage_first_with_determination  抵押权首次登记 + 最高额抵押权确定登记       100
================================== ======================================== ===========
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..codes import ApplicantSide, DischargeReason, MortgageMethod, NoticeKind, RegistrationType
from ..identifiers import CertificateNumber
from ..money import Yuan
from ._base import Model
from .agency import POWER_OF_ATTORNEY_MATERIALS, Representation
from .court import COURT_DOCUMENT_MATERIAL, CourtDocument
from .delivery import CertificateDelivery
from .legal import SIGNED_DOCUMENT_CODES, Declaration
from .materials import Material
from .mortgage import MortgageChangeItem, MortgageTerms
from .parties import NaturalPerson, Organisation, Party
from .property import PropertyUnit

__all__ = [
    "APPLICATION_TYPES",
    "Application",
    "ApplicationBase",
    "MaximumDetermination",
    "MortgageChange",
    "MortgageDischarge",
    "MortgageFirstRegistration",
    "MortgageFirstWithDetermination",
    "MortgageNotice",
    "MortgageNoticeConversion",
    "PurchaseAndMortgageNotice",
    "PurchaseNotice",
]


class ApplicationBase(Model):
    """What every business type carries."""

    multiline_fields: ClassVar[frozenset[str]] = frozenset({"remarks", "reason", "determination_fact"})

    business_name: ClassVar[str]
    registration_type: ClassVar[RegistrationType]
    #: the party lists whose members are applicants and must each have signed
    applicant_fields: ClassVar[tuple[str, ...]] = ()

    client_reference: str = Field(
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="the bank's reference of this loan operation (贷款编号 + operation), unique per institution",
    )
    properties: list[PropertyUnit] = Field(min_length=1, max_length=50)
    materials: list[Material] = Field(default_factory=list, max_length=100)
    declaration: Declaration
    remarks: str | None = Field(default=None, max_length=1000, description="备注")
    delivery: CertificateDelivery | None = Field(
        default=None,
        description="the applicant's choice of certificate delivery (electronic, post, collection); absent: electronic",
    )
    representation: Representation | None = Field(
        default=None,
        description="the bank as 代理人 of the applicants: who acts, for whom, under which 委托书 (sdk.models.agency)",
    )

    @model_validator(mode="after")
    def _check_common(self) -> ApplicationBase:
        ids = [m.id for m in self.materials]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"material ids must be unique; repeated: {', '.join(dupes)}")
        units = [p.unit_id for p in self.properties]
        if len(set(units)) != len(units):
            raise ValueError("a property unit is listed twice")
        signed = {s.party for s in self.declaration.signatures}
        # the applying bank (the mortgagee) signs the request itself (RFC 9421, its enrolled key)
        missing = [p for p in self.applicant_pointers() if p not in signed and not p.startswith("/mortgagee/")]
        if missing:
            raise ValueError(f"applicants without an electronic signature: {', '.join(missing)}")
        by_id = {m.id: m for m in self.materials}
        for i, sig in enumerate(self.declaration.signatures):
            for name in ("material_id", "document_id"):
                mid = getattr(sig, name)
                if mid is not None and mid not in by_id:
                    raise ValueError(f"declaration.signatures[{i}].{name}: no material {mid} in this application")
            if sig.material_id is not None and by_id[sig.material_id].media_type != "application/pdf":
                raise ValueError(f"declaration.signatures[{i}]: the signed document must be a PDF (PAdES)")
            signs = by_id[sig.document_id].code if sig.document_id is not None else None
            if signs is not None and signs not in SIGNED_DOCUMENT_CODES:
                raise ValueError(
                    f"declaration.signatures[{i}].document_id: material {sig.document_id} is a {signs}; an applicant "
                    f"e-signs the 申请书 or the 询问笔录 ({' or '.join(SIGNED_DOCUMENT_CODES)})"
                )
        return self

    @model_validator(mode="after")
    def _check_representation(self) -> ApplicationBase:
        """The 代理 as the application shows it: the 委托书 is one of its materials (same digest), the agent's
        operator is the declaration's, and each principal is an applicant other than the bank."""
        rep = self.representation
        if rep is None:
            return self
        poa = rep.power_of_attorney
        if not any(
            m.id == poa.material_id and m.code in POWER_OF_ATTORNEY_MATERIALS and m.sha256 == poa.sha256
            for m in self.materials
        ):
            raise ValueError(
                f"representation.power_of_attorney: no material {poa.material_id!r} of code "
                f"{' or '.join(sorted(POWER_OF_ATTORNEY_MATERIALS))} with that sha256 (the 委托书 must be sent)"
            )
        if rep.agent.operator_id != self.declaration.operator_id:
            raise ValueError(
                f"representation.agent.operator_id {rep.agent.operator_id!r} is not the declaration's operator_id"
            )
        applicants = [p for p in self.applicant_pointers() if not p.startswith("/mortgagee/")]
        strangers = [p for p in rep.principals if p not in applicants]
        if strangers:
            raise ValueError(f"representation.principals {', '.join(strangers)} are not applicants the bank represents")
        return self

    def applicant_pointers(self) -> list[str]:
        """JSON pointers of every applicant, e.g. ``/mortgagors/0``."""
        pointers: list[str] = []
        for name in self.applicant_fields:
            value = getattr(self, name)
            if isinstance(value, list):
                pointers += [f"/{name}/{i}" for i in range(len(value))]
            elif value is not None:
                pointers.append(f"/{name}/0")
        return pointers

    def parties(self) -> list[NaturalPerson | Organisation]:
        """Every party named in the application."""
        found: list[NaturalPerson | Organisation] = []
        for name in type(self).model_fields:
            value: Any = getattr(self, name)
            items = value if isinstance(value, list) else [value]
            found += [v for v in items if isinstance(v, NaturalPerson | Organisation)]
        return found


class _MortgageParties(ApplicationBase):
    mortgagors: list[Party] = Field(min_length=1, description="抵押人")
    mortgagee: Organisation = Field(description="抵押权人 (the bank)")
    obligors: list[Party] = Field(default_factory=list, description="债务人, when not the mortgagors")
    applicant_fields: ClassVar[tuple[str, ...]] = ("mortgagors",)


class MortgageFirstRegistration(_MortgageParties):
    """抵押权首次登记: 一般抵押 or 最高额抵押."""

    business_name: ClassVar[str] = "抵押权首次登记"
    registration_type: ClassVar[RegistrationType] = RegistrationType.FIRST
    type: Literal["mortgage_first"] = "mortgage_first"
    terms: MortgageTerms
    main_contract_number: str = Field(min_length=1, max_length=64, description="主债权合同编号")
    mortgage_contract_number: str | None = Field(
        default=None, max_length=64, description="抵押合同编号; omitted when the main contract has the clause"
    )

    @model_validator(mode="after")
    def _titles(self) -> MortgageFirstRegistration:
        if any(p.title_certificate is None for p in self.properties):
            raise ValueError("every property needs its title_certificate (不动产权证书号)")
        return self


class MortgageChange(_MortgageParties):
    """抵押权变更登记 with typed change items."""

    business_name: ClassVar[str] = "抵押权变更登记"
    registration_type: ClassVar[RegistrationType] = RegistrationType.CHANGE
    type: Literal["mortgage_change"] = "mortgage_change"
    mortgage_certificate: CertificateNumber = Field(description="原不动产登记证明号")
    changes: list[MortgageChangeItem] = Field(min_length=1)
    reason: str = Field(min_length=1, max_length=300, description="变更原因")

    @model_validator(mode="after")
    def _distinct(self) -> MortgageChange:
        kinds = [c.kind for c in self.changes]
        if len(set(kinds)) != len(kinds):
            raise ValueError("each kind of change may appear once")
        return self


class MortgageDischarge(ApplicationBase):
    """抵押权注销登记; who applies decides the materials (seed 004)."""

    business_name: ClassVar[str] = "抵押权注销登记"
    registration_type: ClassVar[RegistrationType] = RegistrationType.DISCHARGE
    type: Literal["mortgage_discharge"] = "mortgage_discharge"
    mortgage_certificate: CertificateNumber = Field(description="不动产登记证明号 of the mortgage")
    applicant_side: ApplicantSide
    reason: DischargeReason = DischargeReason.DEBT_REPAID
    mortgagee: Organisation
    mortgagors: list[Party] = Field(min_length=1)
    court_document: CourtDocument | None = Field(
        default=None,
        description="生效法律文书: required when the mortgagor applies alone (seed 004); the centre refuses "
        "(court_document_required / court_document_not_effective) a unilateral discharge without an effective one",
    )

    @model_validator(mode="after")
    def _court_document_material(self) -> MortgageDischarge:
        doc = self.court_document
        if doc is not None and not any(
            m.id == doc.material_id and m.code == COURT_DOCUMENT_MATERIAL for m in self.materials
        ):
            raise ValueError(
                f"court_document.material_id {doc.material_id!r} names no material of code {COURT_DOCUMENT_MATERIAL}"
            )
        return self

    def applicant_pointers(self) -> list[str]:
        if self.applicant_side is ApplicantSide.MORTGAGEE:
            return ["/mortgagee/0"]
        pointers = [f"/mortgagors/{i}" for i in range(len(self.mortgagors))]
        if self.applicant_side is ApplicantSide.JOINT:
            pointers.append("/mortgagee/0")
        return pointers


class PurchaseNotice(ApplicationBase):
    """预告登记 (商品房预售 or other purchase)."""

    business_name: ClassVar[str] = "预告登记"
    registration_type: ClassVar[RegistrationType] = RegistrationType.NOTICE
    applicant_fields: ClassVar[tuple[str, ...]] = ("buyers", "sellers")
    type: Literal["purchase_notice"] = "purchase_notice"
    notice_kind: Literal[NoticeKind.PRESALE_PURCHASE, NoticeKind.OTHER_PURCHASE] = NoticeKind.PRESALE_PURCHASE
    buyers: list[Party] = Field(min_length=1, description="预告登记权利人 (买受人)")
    sellers: list[Party] = Field(min_length=1, description="义务人 (出卖人)")
    sale_contract_number: str = Field(min_length=1, max_length=64, description="买卖合同(备案)编号")
    price: Yuan | None = Field(default=None, description="成交价(元)")


class MortgageNotice(_MortgageParties):
    """抵押权预告登记."""

    business_name: ClassVar[str] = "抵押权预告登记"
    registration_type: ClassVar[RegistrationType] = RegistrationType.NOTICE
    type: Literal["mortgage_notice"] = "mortgage_notice"
    notice_kind: Literal[NoticeKind.PRESALE_MORTGAGE, NoticeKind.OTHER_MORTGAGE] = NoticeKind.PRESALE_MORTGAGE
    terms: MortgageTerms
    main_contract_number: str = Field(min_length=1, max_length=64)
    purchase_notice_certificate: CertificateNumber | None = Field(
        default=None, description="预告登记证明号, when the purchase notice was registered earlier"
    )


class PurchaseAndMortgageNotice(_MortgageParties):
    """预告登记 and 抵押权预告登记 applied for together (seed 001)."""

    business_name: ClassVar[str] = "预告登记+抵押权预告登记"
    registration_type: ClassVar[RegistrationType] = RegistrationType.NOTICE
    applicant_fields: ClassVar[tuple[str, ...]] = ("mortgagors", "sellers")
    type: Literal["purchase_and_mortgage_notice"] = "purchase_and_mortgage_notice"
    sellers: list[Party] = Field(min_length=1, description="出卖人 (开发企业)")
    sale_contract_number: str = Field(min_length=1, max_length=64)
    price: Yuan | None = None
    terms: MortgageTerms
    main_contract_number: str = Field(min_length=1, max_length=64)


class MortgageNoticeConversion(_MortgageParties):
    """抵押权预告登记转抵押权首次登记, once the buyer holds the 不动产权证书."""

    business_name: ClassVar[str] = "抵押权预告登记转本登记"
    registration_type: ClassVar[RegistrationType] = RegistrationType.FIRST
    type: Literal["mortgage_notice_conversion"] = "mortgage_notice_conversion"
    notice_certificate: CertificateNumber = Field(description="抵押权预告登记证明号")
    terms: MortgageTerms
    main_contract_number: str = Field(min_length=1, max_length=64)


class MaximumDetermination(_MortgageParties):
    """最高额抵押权确定登记: the secured debts of a 最高额抵押 are determined."""

    business_name: ClassVar[str] = "最高额抵押权确定登记"
    registration_type: ClassVar[RegistrationType] = RegistrationType.CHANGE
    type: Literal["maximum_determination"] = "maximum_determination"
    mortgage_certificate: CertificateNumber
    determined_amount: Yuan = Field(description="确定的债权数额(元)")
    determination_fact: str = Field(min_length=1, max_length=300, description="最高债权确定事实")


class MortgageFirstWithDetermination(MortgageFirstRegistration):
    """抵押权首次登记 and 最高额抵押权确定登记, applied for, accepted and reviewed together (seed 001)."""

    business_name: ClassVar[str] = "抵押权首次登记+最高额抵押权确定登记"
    type: Literal["mortgage_first_with_determination"] = "mortgage_first_with_determination"  # type: ignore[assignment]
    determined_amount: Yuan
    determination_fact: str = Field(min_length=1, max_length=300)

    @model_validator(mode="after")
    def _maximum(self) -> MortgageFirstWithDetermination:
        if self.terms.method is not MortgageMethod.MAXIMUM:
            raise ValueError("a determination goes with a 最高额抵押")
        if self.terms.maximum_amount is not None and self.determined_amount > self.terms.maximum_amount:
            raise ValueError("determined_amount exceeds the maximum amount")
        return self


Application = Annotated[
    MortgageFirstRegistration
    | MortgageChange
    | MortgageDischarge
    | PurchaseNotice
    | MortgageNotice
    | PurchaseAndMortgageNotice
    | MortgageNoticeConversion
    | MaximumDetermination
    | MortgageFirstWithDetermination,
    Field(discriminator="type"),
]

APPLICATION_TYPES: dict[str, type[ApplicationBase]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        MortgageFirstRegistration,
        MortgageChange,
        MortgageDischarge,
        PurchaseNotice,
        MortgageNotice,
        PurchaseAndMortgageNotice,
        MortgageNoticeConversion,
        MaximumDetermination,
        MortgageFirstWithDetermination,
    )
}
