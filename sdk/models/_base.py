"""Base classes of every wire model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Model", "Resource"]


class Model(BaseModel):
    """What a bank sends: unknown fields are refused, so a typo is an error, not a loss."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Resource(BaseModel):
    """What the centre returns: unknown fields are ignored, so additions do not break clients."""

    model_config = ConfigDict(extra="ignore", frozen=True)
