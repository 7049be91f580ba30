"""Base classes of every wire model."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from ..text import check_text

__all__ = ["Model", "Resource"]


class Model(BaseModel):
    """What a bank sends: unknown fields are refused, so a typo is an error, not a loss.

    Every text field (and every text in a list) holds no invisible character (sdk/text.py: control,
    format, private-use characters; line breaks too unless the field is in ``multiline_fields``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    #: the text fields that may span lines (remarks, reasons, scopes); every other one is one line
    multiline_fields: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _no_invisible_characters(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            return check_text(value, one_line=info.field_name not in cls.multiline_fields)
        if isinstance(value, list | tuple):
            one_line = info.field_name not in cls.multiline_fields
            for item in value:
                if isinstance(item, str):
                    check_text(item, one_line=one_line)
        return value


class Resource(BaseModel):
    """What the centre returns: unknown fields are ignored, so additions do not break clients."""

    model_config = ConfigDict(extra="ignore", frozen=True)
