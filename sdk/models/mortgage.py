"""Mortgage terms (抵押权) and the typed changes a 变更登记 may make (seed 001)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..codes import MortgageMethod
from ..money import Yuan
from ._base import Model

__all__ = [
    "DebtPeriodChange",
    "DeterminationPeriodChange",
    "GuaranteeScopeChange",
    "MaximumAmountChange",
    "MortgageChangeItem",
    "MortgageTerms",
    "RankChange",
    "SecuredDebtChange",
]


def _period(start: date | None, end: date | None, what: str) -> None:
    if start is not None and end is not None and end < start:
        raise ValueError(f"{what}: end {end} is before start {start}")


class MortgageTerms(Model):
    """The terms recorded with a mortgage (QLF_QL_DYAQ).

    一般抵押 states the secured amount (被担保主债权数额); 最高额抵押 states the maximum amount
    (最高债权额) and may state the period in which the debts are determined.
    """

    multiline_fields: ClassVar[frozenset[str]] = frozenset({"guarantee_scope", "under_construction_scope"})

    method: MortgageMethod = Field(description="抵押方式")
    secured_amount: Yuan | None = Field(default=None, description="被担保主债权数额(元)")
    maximum_amount: Yuan | None = Field(default=None, description="最高债权额(元)")
    debt_start: date = Field(description="债务履行期限(起)")
    debt_end: date = Field(description="债务履行期限(止)")
    guarantee_scope: str | None = Field(default=None, max_length=500, description="担保范围")
    rank: int | None = Field(default=None, ge=1, le=99, description="抵押顺位")
    determination_start: date | None = Field(default=None, description="最高额债权确定期间(起)")
    determination_end: date | None = Field(default=None, description="最高额债权确定期间(止)")
    includes_existing_debts: bool = Field(
        default=False, description="最高额抵押 brings pre-existing debts in (needs their consent)"
    )
    under_construction_scope: str | None = Field(default=None, max_length=500, description="在建建筑物抵押范围")
    transfer_restricted: bool | None = Field(default=None, description="禁止或限制转让的约定")

    @model_validator(mode="after")
    def _consistent(self) -> MortgageTerms:
        _period(self.debt_start, self.debt_end, "debt period")
        _period(self.determination_start, self.determination_end, "determination period")
        if self.method is MortgageMethod.GENERAL:
            if self.secured_amount is None:
                raise ValueError("一般抵押 needs secured_amount (被担保主债权数额)")
            if self.maximum_amount is not None or self.determination_start or self.includes_existing_debts:
                raise ValueError("maximum_amount, determination period and existing debts are for 最高额抵押")
        else:
            if self.maximum_amount is None:
                raise ValueError("最高额抵押 needs maximum_amount (最高债权额)")
        for amount in (self.secured_amount, self.maximum_amount):
            if amount is not None and amount <= 0:
                raise ValueError("amounts must be greater than zero")
        return self


class GuaranteeScopeChange(Model):
    multiline_fields: ClassVar[frozenset[str]] = frozenset({"new_scope"})
    kind: Literal["guarantee_scope"] = "guarantee_scope"
    new_scope: str = Field(min_length=1, max_length=500, description="变更后担保范围")


class RankChange(Model):
    kind: Literal["rank"] = "rank"
    new_rank: int = Field(ge=1, le=99, description="变更后抵押顺位")


class SecuredDebtChange(Model):
    """被担保债权种类或数额."""

    kind: Literal["secured_debt"] = "secured_debt"
    new_debt_kind: str | None = Field(default=None, max_length=100, description="被担保债权种类")
    new_amount: Yuan | None = Field(default=None, description="被担保主债权数额(元)")

    @model_validator(mode="after")
    def _something(self) -> SecuredDebtChange:
        if self.new_debt_kind is None and self.new_amount is None:
            raise ValueError("give new_debt_kind, new_amount or both")
        return self


class _PeriodChange(Model):
    """A new period, start ≤ end."""

    new_start: date
    new_end: date

    @model_validator(mode="after")
    def _ordered(self) -> _PeriodChange:
        _period(self.new_start, self.new_end, type(self).__doc__ or "period")
        return self


class DebtPeriodChange(_PeriodChange):
    """债务履行期限"""

    kind: Literal["debt_period"] = "debt_period"


class MaximumAmountChange(Model):
    kind: Literal["maximum_amount"] = "maximum_amount"
    new_amount: Yuan = Field(description="变更后最高债权额(元)")


class DeterminationPeriodChange(_PeriodChange):
    """最高额抵押权债权确定期间"""

    kind: Literal["determination_period"] = "determination_period"


MortgageChangeItem = Annotated[
    GuaranteeScopeChange
    | RankChange
    | SecuredDebtChange
    | DebtPeriodChange
    | MaximumAmountChange
    | DeterminationPeriodChange,
    Field(discriminator="kind"),
]
