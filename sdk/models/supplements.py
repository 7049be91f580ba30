"""Answers the bank gives: a 补正 supplement and a withdrawal."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from ._base import Model
from .applications import Application
from .materials import Material

__all__ = ["Supplement", "Withdrawal"]


class Supplement(Model):
    """Answer a 补正: new or replaced materials (uploaded after), and/or a corrected application."""

    multiline_fields: ClassVar[frozenset[str]] = frozenset({"note"})

    materials: list[Material] = Field(default_factory=list)
    corrected: Application | None = Field(default=None, description="the whole corrected application")
    note: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _something(self) -> Supplement:
        if not self.materials and self.corrected is None:
            raise ValueError("a supplement needs materials, a corrected application, or both")
        return self


class Withdrawal(Model):
    multiline_fields: ClassVar[frozenset[str]] = frozenset({"reason"})
    reason: str = Field(min_length=1, max_length=300, description="撤回原因")
