"""A profile checked the way an integrator needs it: every problem with the line of the TOML it is on.

:func:`profile_problems` finds what the schema alone does not: targets no application type has,
map values the target cannot take, routes to unknown targets, and (given an export's header)
columns the export does not have. :func:`locate` turns a schema error's location
(``("fields", 3, "target")``) into the line of the profile that holds it.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from sdk.models import APPLICATION_TYPES

__all__ = ["ProfileProblem", "header_problems", "key_lines", "locate", "target_problems"]

_TABLE = re.compile(r"^\s*\[\[\s*([^\]]+?)\s*\]\]\s*(?:#.*)?$|^\s*\[\s*([^\]]+?)\s*\]\s*(?:#.*)?$")
_KEY = re.compile(r'^\s*("[^"]*"|[A-Za-z0-9_.-]+)\s*=')


@dataclass(frozen=True)
class ProfileProblem:
    """One problem with a profile: the line it is on (1-based; 0 when it is about the whole file) and what."""

    line: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message}


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Where each table and key of a TOML text is: ``("fields", 3, "target") → 57``, ``("source",) → 5``."""
    lines: dict[tuple[str | int, ...], int] = {}
    counts: dict[tuple[str, ...], int] = {}
    current: tuple[str | int, ...] = ()
    for n, line in enumerate(text.splitlines(), 1):
        m = _TABLE.match(line)
        if m:
            if m.group(1):  # [[array.of.tables]]
                name = tuple(p.strip() for p in m.group(1).split("."))
                index = counts.get(name, -1) + 1
                counts[name] = index
                current = (*name, index)
            else:
                current = tuple(p.strip() for p in m.group(2).split("."))
            lines.setdefault(current, n)
            continue
        k = _KEY.match(line)
        if k:
            key = k.group(1).strip('"')
            lines.setdefault((*current, *key.split(".")), n)
    return lines


def locate(lines: dict[tuple[str | int, ...], int], loc: Iterable[str | int]) -> int:
    """The line of the longest prefix of ``loc`` that the profile spells out (0 when none)."""
    path = tuple(loc)
    for cut in range(len(path), 0, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return 0


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out += _models(arg)
    return out


def _leaves(kind_models: list[type[BaseModel]], names: list[str]) -> list[Any] | None:
    """The annotations a dotted path of field names reaches in any of ``kind_models``; None when it reaches none."""
    current: list[Any] = list(kind_models)
    for i, name in enumerate(names):
        found = []
        for ann in current:
            for model in _models(ann):
                if name in model.model_fields:
                    found.append(model.model_fields[name].annotation)
        if not found:
            return None
        current = found
        if i < len(names) - 1 and not any(_models(a) for a in current):
            return None
    return current


_STEP = re.compile(r"([^.\[\]]+)|\[(\d*)\]")


def _names(target: str) -> list[str]:
    return [m.group(1) for m in _STEP.finditer(target) if m.group(1) is not None]


def target_problems(target: str, types_: list[str], values: Iterable[str] = ()) -> list[str]:
    """What is wrong with a field's ``target`` (no application type it applies to has it) or with the values a
    ``map`` gives it (none of those types accepts them). Empty when all is well."""
    kinds = [t for t in (types_ or list(APPLICATION_TYPES)) if t in APPLICATION_TYPES]
    names = _names(target)
    reached = [leaf for k in kinds for leaf in (_leaves([APPLICATION_TYPES[k]], names) or [])]
    if not reached:
        where = ", ".join(types_) if types_ else "any application type"
        return [f"unknown target {target!r}: {where} has no such field (目标字段不存在)"]
    problems = []
    for value in values:
        ok = False
        for leaf in reached:
            if _models(leaf):
                ok = True  # a whole party or unit: the map does not give it
                break
            try:
                TypeAdapter(leaf).validate_python(value)
            except (ValidationError, TypeError, ValueError):
                continue
            ok = True
            break
        if not ok:
            problems.append(f"map value {value!r} is not a valid {target} (映射值无效)")
    return problems


def _is_optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation) or isinstance(annotation, types.NoneType)


def header_problems(profile: Any, header: list[str], lines: dict[tuple[str | int, ...], int]) -> list[ProfileProblem]:
    """The columns the profile reads that the export's header does not have, each at its profile line."""
    have = set(header)
    problems: list[ProfileProblem] = []

    def missing(column: str | None, loc: tuple[str | int, ...]) -> None:
        if not column or "[]" in column or column in have:
            return
        if any(key.startswith(column + ".") or key.startswith(column + "/") for key in have):
            return  # a nested or repeated key (JSON, XML)
        problems.append(
            ProfileProblem(
                locate(lines, loc),
                f"column {column!r} is not in the export's header (导出文件的表头没有列 {column!r}); "
                f"the header has: {', '.join(header[:40])}",
            )
        )

    missing(profile.identity.loan_no, ("identity", "loan_no"))
    for col in profile.identity.group_by:
        missing(col, ("identity", "group_by"))
    missing(profile.type.column, ("type", "column"))
    for i, spec in enumerate(profile.fields):
        missing(spec.column, ("fields", i, "column"))
        missing(spec.unit_column, ("fields", i, "unit_column"))
        missing(getattr(spec, "route_by", None), ("fields", i, "route_by"))
    decl = profile.declaration
    for key in ("operator", "branch", "signatures", "signed_at"):
        missing(getattr(decl, key), ("declaration", key))
    missing(profile.materials.manifest, ("materials", "manifest"))
    return problems
