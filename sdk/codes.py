"""Code tables of the national data exchange (TD/T 1066) used on the wire.

Each enum's value is the code a registration platform uses; ``.label`` gives the Chinese
name for screens and reports. 权利类型 (QLLX) differs between platforms and is therefore not
here: it belongs to a platform profile.
"""

from __future__ import annotations

from enum import Enum, StrEnum

__all__ = [
    "ApplicantSide",
    "DischargeReason",
    "IdType",
    "LicenceHolderCodeType",
    "LicenceStatus",
    "MortgageMethod",
    "NoticeKind",
    "PropertyType",
    "RegistrationType",
]


class _Labelled(StrEnum):
    """A code with a Chinese label: ``Member = ("code", "标签")``."""

    label: str

    def __new__(cls, code: str, label: str = "") -> _Labelled:
        obj = str.__new__(cls, code)
        obj._value_ = code
        obj.label = label
        return obj


class RegistrationType(_Labelled):
    """登记类型 DJLX."""

    FIRST = ("100", "首次登记")
    TRANSFER = ("200", "转移登记")
    CHANGE = ("300", "变更登记")
    DISCHARGE = ("400", "注销登记")
    CORRECTION = ("500", "更正登记")
    OBJECTION = ("600", "异议登记")
    NOTICE = ("700", "预告登记")
    SEIZURE = ("800", "查封登记")
    OTHER = ("900", "其他登记")


class MortgageMethod(_Labelled):
    """抵押方式 DYFS."""

    GENERAL = ("1", "一般抵押")
    MAXIMUM = ("2", "最高额抵押")


class NoticeKind(_Labelled):
    """预告种类 YGDJZL."""

    PRESALE_PURCHASE = ("1", "预售商品房买卖预告登记")
    OTHER_PURCHASE = ("2", "其它不动产买卖预告登记")
    PRESALE_MORTGAGE = ("3", "预售商品房抵押权预告登记")
    OTHER_MORTGAGE = ("4", "其它不动产抵押权预告登记")


class IdType(_Labelled):
    """证件种类 ZJZL."""

    RESIDENT_ID = ("1", "居民身份证")
    HK_MO_TW_ID = ("2", "港澳台身份证")
    PASSPORT = ("3", "护照")
    HOUSEHOLD_REGISTER = ("4", "户口簿")
    MILITARY_ID = ("5", "军官证/士兵证")
    ORGANISATION_CODE = ("6", "组织机构代码")
    BUSINESS_LICENCE = ("7", "营业执照")
    USCC = ("8", "统一社会信用代码")
    OTHER = ("99", "其它")


class PropertyType(_Labelled):
    """不动产类型 BDCLX."""

    LAND = ("1", "土地")
    LAND_AND_BUILDING = ("2", "土地和房屋")
    FOREST = ("3", "林地和林木")
    LAND_AND_BUILDING_UNDER_CONSTRUCTION = ("4", "土地和在建建筑物")
    SEA_AREA = ("5", "海域")
    SEA_AREA_AND_STRUCTURE = ("6", "海域和构筑物")
    OTHER = ("7", "其它")


class ApplicantSide(_Labelled):
    """Who applies for a discharge (seed 004), which decides the materials."""

    JOINT = ("joint", "抵押人和抵押权人共同申请")
    MORTGAGEE = ("mortgagee", "抵押权人单方申请")
    MORTGAGOR = ("mortgagor", "抵押人单方申请(凭生效法律文书)")


class DischargeReason(_Labelled):
    """抵押权消灭的原因."""

    DEBT_REPAID = ("debt_repaid", "主债权消灭")
    MORTGAGE_REALISED = ("realised", "抵押权已经实现")
    WAIVED = ("waived", "抵押权人放弃抵押权")
    COURT_ORDER = ("court_order", "法律文书确认抵押权消灭")
    OTHER = ("other", "法律、行政法规规定抵押权消灭的其他情形")


class LicenceHolderCodeType(_Labelled):
    """持证主体代码类型 of electronic licences."""

    USCC = ("001", "统一社会信用代码")
    RESIDENT_ID = ("111", "公民身份号码")
    PASSPORT = ("414", "护照")
    TAIWAN_PERMIT = ("511", "台胞证")
    HK_MO_PERMIT = ("516", "港澳通行证")
    OTHER = ("999", "其他")


class LicenceStatus(_Labelled):
    """证照状态."""

    CURRENT = ("1", "现势")
    CANCELLED = ("2", "注销")


def labels(enum: type[Enum]) -> dict[str, str]:
    """Code → Chinese label, for documentation and screens."""
    return {m.value: getattr(m, "label", m.name) for m in enum}
