"""Materials (申请材料) and their checklists (清单式管理, seed 002 §2.1.3, seed 004).

A material is declared with its SHA-256 and size before it is uploaded; the centre refuses an
upload that does not match (as HM Land Registry does). The checklist for each business type
is data (``config/checklists/``); the agent checks against it before sending, and the sandbox
centre applies the same list when it reviews.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Model, Resource

__all__ = ["MAX_MATERIAL_BYTES", "MEDIA_TYPES", "Material", "MaterialChecklist", "MaterialRequirement"]

MEDIA_TYPES = ("application/pdf", "application/ofd", "image/jpeg", "image/png", "image/tiff")
MAX_MATERIAL_BYTES = 50 * 1024 * 1024


class Material(Model):
    """One file of an application, declared by digest and size."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="unique within the application")
    code: str = Field(pattern=r"^[a-z0-9_]{1,64}$", description="材料类型代码, from the checklist")
    name: str | None = Field(default=None, max_length=100, description="材料名称")
    filename: str = Field(min_length=1, max_length=255)
    media_type: Literal["application/pdf", "application/ofd", "image/jpeg", "image/png", "image/tiff"]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the content, lower-case hex")
    size: int = Field(gt=0, le=MAX_MATERIAL_BYTES, description="bytes")


class MaterialRequirement(Resource):
    """One line of a checklist: a material type, required or conditional."""

    code: str
    name: str
    requirement: Literal["required", "conditional"]
    condition: str | None = Field(
        default=None,
        description="for conditional items, the named condition under which it is required",
    )
    note: str | None = None


class MaterialChecklist(Resource):
    """The materials list of one business type."""

    application_type: str
    name: str
    items: list[MaterialRequirement]
    source: str | None = None
