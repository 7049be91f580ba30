"""The sandbox's register (不动产登记簿): units, owners, and the rights and restrictions on them.

A new centre is seeded with a deterministic register of :data:`SEED_UNITS` units in 长丰县, so
tests, the demo and the sample exports can name real units and owners (docs/sandbox.md lists them):

* units 1–240: homes with a 不动产权证书, owned by people (every 7th jointly by two);
* every 5th of them carries a rank-1 mortgage held by the sample bank (:data:`SAMPLE_BANK_USCC`),
  every 20th of those a 最高额抵押; every 10th also a rank-2 mortgage held by another bank;
* unit :data:`SEIZED_UNIT` is under 查封, unit :data:`OBJECTION_UNIT` under 异议;
* units 241–280: presale flats (no title yet) owned by the developer;
* units 281–300: delivered flats whose buyer now holds the title and whose purchase was
  financed under a 抵押权预告登记 held by the sample bank, ready for conversion.

Recording an application changes the register: mortgages are added with the next 顺位, changed
(the old entry cancelled and a new one written), or cancelled.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sdk.identifiers import resident_id_check_char, uscc_check_char
from sdk.models import NaturalPerson, Organisation

from .store import Store, new_id, now_utc

__all__ = [
    "CHANGFENG",
    "COUNTIES",
    "COUNTY",
    "DEVELOPER",
    "DISTRICT",
    "FEIXI",
    "OBJECTION_UNIT",
    "OTHER_BANK",
    "PRESALE_UNITS",
    "SAMPLE_BANK_USCC",
    "SEED_UNITS",
    "SEIZED_UNIT",
    "County",
    "Register",
    "Right",
    "Unit",
    "location",
    "notice_certificate",
    "owners_of",
    "seed_mortgage_certificate",
    "title_certificate",
    "unit_id",
]

DISTRICT = "340121"
PROVINCE = "皖"
COUNTY = "长丰县"


@dataclass(frozen=True)
class County:
    """The county a sandbox centre registers for: its 行政区划代码 (the first 6 digits of every 不动产单元号
    it holds), its name (in certificate numbers and addresses) and the road its seeded estate is on."""

    district: str
    name: str
    road: str = "双凤大道"
    city: str = "合肥市"

    @property
    def short(self) -> str:
        """The county's one-character short name that leads its documents' numbers (长丰县: 长不动产…〔年〕号)."""
        return self.name[0]


#: the sandbox's default centre, and the second county the provincial platform (docs/dialects.md) puts beside it
CHANGFENG = County(DISTRICT, COUNTY)
FEIXI = County("340123", "肥西县", road="金寨南路")
COUNTIES = {c.district: c for c in (CHANGFENG, FEIXI)}
SEED_UNITS = 300
HOMES = range(1, 241)
PRESALE_UNITS = range(241, 281)
DELIVERED_UNITS = range(281, 301)
SEIZED_UNIT = 13
OBJECTION_UNIT = 14
SAMPLE_BANK_USCC = "91340100781081199K"
SAMPLE_BANK_NAME = "中国示例银行股份有限公司合肥分行"


def _organisation(name: str, first17: str) -> Organisation:
    return Organisation(name=name, id_number=first17 + uscc_check_char(first17))


OTHER_BANK = _organisation("示例农村商业银行股份有限公司", "91340100MA2N00002")
DEVELOPER = _organisation("合肥示例置业有限公司", "91340100MA2N00001")

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超"]


def unit_id(n: int, county: County = CHANGFENG) -> str:
    """The 不动产单元号 of seeded unit ``n``: 宗地 00014 in 地籍子区 261006, 幢 and 户 from ``n``."""
    building, room = divmod(n - 1, 20)
    return f"{county.district}261006GB00014F{building + 1:04d}{room + 1:04d}"


def title_certificate(n: int, county: County = CHANGFENG) -> str | None:
    if n in PRESALE_UNITS:
        return None
    return f"{PROVINCE}(2024){county.name}不动产权第{n:07d}号"


def seed_mortgage_certificate(n: int, rank: int = 1, county: County = CHANGFENG) -> str:
    """The 不动产登记证明号 of a seeded mortgage (exists when ``n`` is a multiple of 5, or 10 for rank 2)."""
    return f"{PROVINCE}(202{3 + rank}){county.name}不动产证明第{n:07d}号"


def notice_certificate(n: int, county: County = CHANGFENG) -> str:
    """The 抵押权预告登记 证明号 of delivered unit ``n`` (281–300)."""
    return f"{PROVINCE}(2023){county.name}不动产证明第{n:07d}号"


def _person(n: int, second: bool = False) -> NaturalPerson:
    k = n * 2 + (1 if second else 0)
    name = _SURNAMES[k % len(_SURNAMES)] + _GIVEN[(k // len(_SURNAMES)) % len(_GIVEN)]
    birth = f"19{60 + k % 35:02d}{1 + k % 12:02d}{1 + k % 28:02d}"
    first17 = f"340121{birth}{k % 1000:03d}"
    return NaturalPerson(name=name, id_number=first17 + resident_id_check_char(first17))


def owners_of(n: int) -> list[NaturalPerson | Organisation]:
    """The owners of seeded unit ``n`` as the register records them."""
    if n in PRESALE_UNITS:
        return [DEVELOPER]
    owners: list[NaturalPerson | Organisation] = [_person(n)]
    if n % 7 == 0:
        owners.append(_person(n, second=True))
    return owners


def location(n: int, county: County = CHANGFENG) -> str:
    """The seeded unit ``n``'s 坐落 (its address), as the register and the sample exports write it."""
    building, room = divmod(n - 1, 20)
    room_number = f"{(room // 4) + 1}{room % 4 + 1:02d}"
    return f"{county.city}{county.name}{county.road}{88 + building}号示例花园{building + 1}幢{room_number}室"


@dataclass
class Unit:
    unit_id: str
    location: str
    property_type: str
    title_certificate: str | None
    owners: list[dict[str, Any]]

    def owner_ids(self) -> set[str]:
        return {o["id_number"] for o in self.owners}


@dataclass
class Right:
    id: str
    unit_id: str
    kind: str  # ownership, mortgage, seizure, objection, notice
    status: str  # current, cancelled
    certificate_number: str | None = None
    holder_name: str | None = None
    holder_code: str | None = None
    rank: int | None = None
    method: str | None = None
    amount: Decimal | None = None
    maximum_amount: Decimal | None = None
    subkind: str | None = None  # for notices: purchase / mortgage; for mortgages: determined
    terms: dict[str, Any] = field(default_factory=dict)
    registered_at: str | None = None
    application_id: str | None = None
    certificate_id: str | None = None
    note: str | None = None
    parties: list[dict[str, Any]] = field(default_factory=list)  # buyers of a purchase notice, mortgagors

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Right:
        data = dict(row)
        for name in ("amount", "maximum_amount"):
            data[name] = Decimal(data[name]) if data[name] is not None else None
        data["terms"] = json.loads(data["terms"])
        data["parties"] = json.loads(data["parties"])
        return cls(**data)


_COLUMNS = (
    "id, unit_id, kind, status, certificate_number, holder_name, holder_code, rank, method, amount, "
    "maximum_amount, subkind, terms, registered_at, application_id, certificate_id, note, parties"
)


class Register:
    """Queries and changes over the register tables of a :class:`Store`."""

    def __init__(self, store: Store, county: County = CHANGFENG) -> None:
        self.store = store
        self.county = county

    # --- seeding ------------------------------------------------------------------------

    def seed(self) -> None:
        """Write the seeded register once (a centre that already has units is left alone)."""
        if self.store.one("SELECT 1 FROM units LIMIT 1") is not None:
            return
        at = datetime(2024, 6, 1, 9, 0, tzinfo=UTC).isoformat()
        sample_bank = {"name": SAMPLE_BANK_NAME, "id_number": SAMPLE_BANK_USCC}
        with self.store.transaction():
            for n in range(1, SEED_UNITS + 1):
                uid = unit_id(n, self.county)
                owners = [o.model_dump(mode="json", exclude_none=True) for o in owners_of(n)]
                self.store.execute(
                    "INSERT INTO units VALUES (?, ?, ?, ?, ?, ?)",
                    uid,
                    n,
                    location(n, self.county),
                    "2",
                    title_certificate(n, self.county),
                    json.dumps(owners, ensure_ascii=False),
                )
                holder = owners[0]
                if n not in PRESALE_UNITS:
                    self.add(
                        Right(
                            new_id("rt"),
                            uid,
                            "ownership",
                            "current",
                            title_certificate(n, self.county),
                            holder["name"],
                            holder["id_number"],
                            registered_at=at,
                            parties=owners,
                        )
                    )
                if n in HOMES and n % 5 == 0:
                    maximum = n % 20 == 0
                    self.add(
                        Right(
                            new_id("rt"),
                            uid,
                            "mortgage",
                            "current",
                            seed_mortgage_certificate(n, county=self.county),
                            sample_bank["name"],
                            sample_bank["id_number"],
                            rank=1,
                            method="2" if maximum else "1",
                            amount=None if maximum else Decimal(600000 + n * 1000),
                            maximum_amount=Decimal(1000000 + n * 1000) if maximum else None,
                            terms={"debt_start": "2024-06-01", "debt_end": "2044-05-31"},
                            registered_at=at,
                            parties=owners,
                        )
                    )
                if n in HOMES and n % 10 == 0:
                    self.add(
                        Right(
                            new_id("rt"),
                            uid,
                            "mortgage",
                            "current",
                            seed_mortgage_certificate(n, rank=2, county=self.county),
                            OTHER_BANK.name,
                            OTHER_BANK.id_number,
                            rank=2,
                            method="1",
                            amount=Decimal(200000),
                            terms={"debt_start": "2025-01-01", "debt_end": "2030-12-31"},
                            registered_at=at,
                            parties=owners,
                        )
                    )
                if n == SEIZED_UNIT:
                    self.add(
                        Right(
                            new_id("rt"),
                            uid,
                            "seizure",
                            "current",
                            holder_name="长丰县人民法院",
                            registered_at=at,
                            note="(2025)皖0121执1234号 查封",
                        )
                    )
                if n == OBJECTION_UNIT:
                    self.add(
                        Right(
                            new_id("rt"),
                            uid,
                            "objection",
                            "current",
                            holder_name=_person(999).name,
                            registered_at=at,
                            note="异议登记: 权属争议",
                        )
                    )
                if n in DELIVERED_UNITS:
                    self.add(
                        Right(
                            new_id("rt"),
                            uid,
                            "notice",
                            "current",
                            notice_certificate(n, self.county),
                            sample_bank["name"],
                            sample_bank["id_number"],
                            method="1",
                            amount=Decimal(800000),
                            subkind="mortgage",
                            terms={"debt_start": "2023-03-01", "debt_end": "2053-02-28"},
                            registered_at=at,
                            parties=owners,
                        )
                    )

    # --- reading ------------------------------------------------------------------------

    def unit(self, uid: str) -> Unit | None:
        row = self.store.one("SELECT * FROM units WHERE unit_id = ?", uid)
        if row is None:
            return None
        return Unit(
            row["unit_id"], row["location"], row["property_type"], row["title_certificate"], json.loads(row["owners"])
        )

    def rights(self, uid: str, *, current_only: bool = False) -> list[Right]:
        sql = f"SELECT {_COLUMNS} FROM rights WHERE unit_id = ?"
        if current_only:
            sql += " AND status = 'current'"
        return [Right.from_row(r) for r in self.store.all(sql + " ORDER BY registered_at, id", uid)]

    def by_certificate(self, certificate_number: str) -> list[Right]:
        rows = self.store.all(f"SELECT {_COLUMNS} FROM rights WHERE certificate_number = ?", certificate_number)
        return [Right.from_row(r) for r in rows]

    def next_rank(self, uid: str) -> int:
        ranks = [r.rank or 0 for r in self.rights(uid, current_only=True) if r.kind == "mortgage"]
        return max(ranks, default=0) + 1

    # --- writing ------------------------------------------------------------------------

    def add(self, right: Right) -> Right:
        self.store.execute(
            f"INSERT INTO rights ({_COLUMNS}) VALUES ({', '.join('?' * 18)})",
            right.id, right.unit_id, right.kind, right.status, right.certificate_number, right.holder_name,
            right.holder_code, right.rank, right.method,
            str(right.amount) if right.amount is not None else None,
            str(right.maximum_amount) if right.maximum_amount is not None else None,
            right.subkind, json.dumps(right.terms, ensure_ascii=False, default=str), right.registered_at or
            now_utc().isoformat(), right.application_id, right.certificate_id, right.note,
            json.dumps(right.parties, ensure_ascii=False),
        )  # fmt: skip
        return right

    def restrict(self, uid: str, kind: str, *, authority: str, note: str) -> Right:
        """Record a 查封 (``seizure``) or an 异议 (``objection``) on a unit, as a court or a claimant has it
        recorded (the sandbox's admin scripts it: ``POST /admin/v1/units/{unit_id}/restrictions``)."""
        if kind not in ("seizure", "objection"):
            raise ValueError(f"a restriction is a seizure or an objection, not {kind!r}")
        return self.add(Right(new_id("rt"), uid, kind, "current", holder_name=authority, note=note))

    def cancel(self, right_id: str, note: str) -> None:
        self.store.execute("UPDATE rights SET status = 'cancelled', note = ? WHERE id = ?", note, right_id)

    def set_owners(self, uid: str, owners: list[dict[str, Any]]) -> None:
        self.store.execute("UPDATE units SET owners = ? WHERE unit_id = ?", json.dumps(owners, ensure_ascii=False), uid)
