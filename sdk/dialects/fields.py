"""A dialect's field dictionary and code tables: TD/T 1066 names to and from the SDK's JSON (``sdk.models``).

A dialect is mostly data (``config/dialects/<name>.toml``, docs/dialects.md): ``[fields]`` names, for
each SDK JSON member, the dialect's member (``unit_id = "BDCDYH"``), at any depth of a message; a
field may convert its value: ``unit = "万元"`` (the SDK's 元 — exact, two decimals — to 万元, exact
to six decimals, as a decimal string; never a float) or ``codes = "<table>"`` (a ``[codes.<table>]``
of dialect code = SDK code). A name may be scoped to its parent member, ``"terms.method"`` (the
``method`` of ``terms`` only), where the SDK uses one name in two places, or to a business type,
``"mortgage_change.reason"`` (the ``reason`` at the top of a 抵押权变更 application, wherever that application
is: sent alone, inside a record, inside a supplement — any object whose ``type`` is that business type; its
``terms`` and other members keep their own scopes). Members not in the
dictionary keep their SDK names, so
:meth:`FieldDictionary.from_dialect` undoes :meth:`FieldDictionary.to_dialect` exactly.

Pure Python (``tomllib``); no extra needed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import TypeAdapter

from sdk.models import APPLICATION_TYPES, Application, ApplicationRecord
from sdk.money import wan_to_yuan, yuan_to_wan

__all__ = ["DialectField", "FieldDictionary"]

_UNITS = ("万元",)
_APPLICATION: TypeAdapter[Application] = TypeAdapter(Application)


@dataclass(frozen=True)
class DialectField:
    """One entry of ``[fields]``: the SDK member ``sdk`` (inside ``scope``, if given: the parent member's SDK
    name, or a business type — the top of an application of that type), the dialect's ``name``, its conversion."""

    sdk: str
    name: str
    unit: str | None = None
    codes: str | None = None
    scope: str | None = None

    @property
    def key(self) -> str:
        return f"{self.scope}.{self.sdk}" if self.scope else self.sdk


@dataclass(frozen=True)
class FieldDictionary:
    """A dialect's ``[fields]`` and ``[codes.*]`` (build it with :meth:`from_toml`)."""

    name: str
    fields: dict[str, DialectField]
    codes: dict[str, dict[str, str]]
    registration_type_field: str | None = None
    business_type_field: str | None = None
    _by_name: dict[str, DialectField] = field(default_factory=dict, repr=False)
    _parent_names: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({f"{f.scope}.{f.name}" if f.scope else f.name: f for f in self.fields.values()})
        # a scope is named by its SDK member; the dialect document names it by the dialect's name
        self._parent_names.update({f.name: f.sdk for f in self.fields.values() if not f.scope})

    def _entry_out(self, parent: str | None, key: str) -> DialectField | None:
        return (self.fields.get(f"{parent}.{key}") if parent else None) or self.fields.get(key)

    def _entry_in(self, parent: str | None, key: str) -> DialectField | None:
        sdk_parent = self._parent_names.get(parent, parent) if parent else None
        return (self._by_name.get(f"{sdk_parent}.{key}") if sdk_parent else None) or self._by_name.get(key)

    # --- loading -------------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<dialect>") -> FieldDictionary:
        """Read and check a dialect file.

        Raises:
            ValueError: naming ``source`` and the entry: TOML syntax; a field without a name, with an
                unknown unit or code table; two SDK members on one dialect name; a dialect name that
                is also an SDK member left unmapped would be ambiguous; a code table that maps two
                dialect codes onto one SDK code.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{source}: not TOML: {exc}") from None
        head = data.get("dialect", {})
        if not isinstance(head.get("name"), str):
            raise ValueError(f"{source}: [dialect] needs a name")
        codes: dict[str, dict[str, str]] = {}
        for table, entries in data.get("codes", {}).items():
            if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
                raise ValueError(f"{source}: [codes.{table}] maps dialect codes (text) to SDK codes (text)")
            if len(set(entries.values())) != len(entries):
                raise ValueError(f"{source}: [codes.{table}] maps two dialect codes onto one SDK code")
            codes[table] = dict(entries)
        fields: dict[str, DialectField] = {}
        for sdk_name, spec in data.get("fields", {}).items():
            where = f"{source}: [fields] {sdk_name}"
            scope, _, member = sdk_name.rpartition(".")
            if isinstance(spec, str):
                entry = DialectField(member, spec, scope=scope or None)
            elif isinstance(spec, dict) and isinstance(spec.get("name"), str):
                entry = DialectField(member, spec["name"], spec.get("unit"), spec.get("codes"), scope or None)
                unknown = set(spec) - {"name", "unit", "codes"}
                if unknown:
                    raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
            else:
                raise ValueError(f"{where}: give the dialect's name, or a table with name (and unit or codes)")
            if entry.unit is not None and entry.unit not in _UNITS:
                raise ValueError(f"{where}: unit {entry.unit!r} is not one of {', '.join(_UNITS)}")
            if entry.codes is not None and entry.codes not in codes:
                raise ValueError(f"{where}: code table {entry.codes!r} is not defined ([codes.{entry.codes}])")
            fields[sdk_name] = entry
        names = [f.name for f in fields.values()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{source}: [fields] gives {', '.join(twice)} to two SDK members")
        clash = sorted(set(names) & (_sdk_member_names() - {f.sdk for f in fields.values()}))
        if clash:
            raise ValueError(f"{source}: [fields] dialect names {', '.join(clash)} are SDK members left unmapped")
        for key in ("registration_type_field", "business_type_field"):
            value = head.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{source}: [dialect] {key} is a member name")
        if head.get("business_type_field") and "YWLX" not in codes:
            raise ValueError(f"{source}: business_type_field needs the code table [codes.YWLX]")
        return cls(head["name"], fields, codes, head.get("registration_type_field"), head.get("business_type_field"))

    # --- codes ---------------------------------------------------------------------------------

    def to_sdk_code(self, table: str, code: str) -> str:
        """The SDK code for the dialect's ``code`` in ``table``.

        Raises:
            ValueError: the table has no such code (naming table and code).
        """
        entries = self.codes[table]
        if code not in entries:
            raise ValueError(f"{self.name}: {table} code {code!r} is not in the code table ({', '.join(entries)})")
        return entries[code]

    def to_dialect_code(self, table: str, value: str) -> str:
        """The dialect's code for the SDK code ``value`` in ``table`` (ValueError when it has none)."""
        for code, sdk_value in self.codes[table].items():
            if sdk_value == value:
                return code
        raise ValueError(f"{self.name}: {table} has no code for {value!r}")

    # --- values --------------------------------------------------------------------------------

    def _out(self, entry: DialectField, value: Any) -> Any:
        if value is None:
            return None
        if entry.unit == "万元":
            return format(yuan_to_wan(Decimal(str(value))), "f")
        if entry.codes is not None:
            return self.to_dialect_code(entry.codes, str(value))
        return value

    def _in(self, entry: DialectField, value: Any) -> Any:
        if value is None:
            return None
        if entry.unit == "万元":
            if isinstance(value, bool | float):
                raise ValueError(f"{self.name}: {entry.name} is a decimal string in 万元, not {type(value).__name__}")
            try:
                return f"{wan_to_yuan(Decimal(str(value))):.2f}"
            except (InvalidOperation, ValueError) as exc:
                raise ValueError(f"{self.name}: {entry.name} = {value!r} 万元: {exc}") from None
        if entry.codes is not None:
            return self.to_sdk_code(entry.codes, str(value))
        return value

    # --- documents -----------------------------------------------------------------------------

    def to_dialect(self, document: Any, parent: str | None = None) -> Any:
        """The SDK JSON ``document`` with every dictionary member renamed and converted (recursively)."""
        if isinstance(document, list):
            return [self.to_dialect(v, parent) for v in document]
        if not isinstance(document, Mapping):
            return document
        parent = _kind_of(document) or parent  # an application's members: scoped by its business type
        out: dict[str, Any] = {}
        for key, value in document.items():
            entry = self._entry_out(parent, key)
            if entry is None:
                out[key] = self.to_dialect(value, key)
            elif entry.unit or entry.codes:
                out[entry.name] = self._out(entry, value)
            else:
                out[entry.name] = self.to_dialect(value, key)
        return out

    def from_dialect(self, document: Any, parent: str | None = None) -> Any:
        """The SDK JSON of a dialect ``document`` (the inverse of :meth:`to_dialect`).

        Raises:
            ValueError: a code not in its table, or a 万元 amount that does not land on a fen.
        """
        if isinstance(document, list):
            return [self.from_dialect(v, parent) for v in document]
        if not isinstance(document, Mapping):
            return document
        parent = _kind_of(document) or parent
        out: dict[str, Any] = {}
        for key, value in document.items():
            entry = self._entry_in(parent, key)
            if entry is None:
                out[key] = self.from_dialect(value, key)
            elif entry.unit or entry.codes:
                out[entry.sdk] = self._in(entry, value)
            else:
                out[entry.sdk] = self.from_dialect(value, key)
        return out

    def application_to_dialect(self, application: Application) -> dict[str, Any]:
        """An application as the dialect sends it: its business type as ``YWLX`` (code table) and its
        registration type (``DJLX``, TD/T 1066) beside the renamed members."""
        document = application.model_dump(mode="json", exclude_none=True)
        kind = document.pop("type")
        out: dict[str, Any] = self.to_dialect(document, kind)
        if self.business_type_field:
            out[self.business_type_field] = self.to_dialect_code("YWLX", kind)
        else:
            out["type"] = kind
        if self.registration_type_field:
            out[self.registration_type_field] = type(application).registration_type.value
        return out

    def application_from_dialect(self, document: Mapping[str, Any]) -> Application:
        """The SDK application a dialect message carries.

        Raises:
            ValueError: an unknown business type, a ``DJLX`` that is not the business type's, a bad
                code or amount; ``pydantic.ValidationError`` (a ValueError) for an invalid application.
        """
        body = dict(document)
        registration = body.pop(self.registration_type_field, None) if self.registration_type_field else None
        if self.business_type_field:
            code = body.pop(self.business_type_field, None)
            if not isinstance(code, str):
                raise ValueError(f"{self.name}: {self.business_type_field} (业务类型) is missing")
            kind = self.to_sdk_code("YWLX", code)
        else:
            kind = str(body.pop("type", ""))
        sdk_doc = self.from_dialect(body, kind if kind in APPLICATION_TYPES else None)
        sdk_doc["type"] = kind
        application = _APPLICATION.validate_python(sdk_doc)
        expected = type(application).registration_type.value
        if registration is not None and registration != expected:
            raise ValueError(f"{self.name}: DJLX {registration!r} is not the registration type of {kind} ({expected})")
        return application


    def record_to_dialect(self, record: ApplicationRecord) -> dict[str, Any]:
        """An application record as the platform answers it: renamed, its status as ``YWZT`` (code table)."""
        document = record.model_dump(mode="json", exclude_none=True)
        status = document.pop("status")
        out: dict[str, Any] = self.to_dialect(document)
        out["YWZT"] = self.to_dialect_code("YWZT", status)
        return out

    def record_from_dialect(self, document: Mapping[str, Any]) -> ApplicationRecord:
        """The SDK record of a platform's answer (the inverse of :meth:`record_to_dialect`).

        Raises:
            ValueError: a status code not in ``YWZT``, or a record the SDK model refuses.
        """
        body = dict(document)
        code = body.pop("YWZT", None)
        if not isinstance(code, str):
            raise ValueError(f"{self.name}: YWZT (业务状态) is missing from the record")
        sdk_doc = self.from_dialect(body)
        sdk_doc["status"] = self.to_sdk_code("YWZT", code)
        return ApplicationRecord.model_validate(sdk_doc)


def _kind_of(document: Mapping[str, Any]) -> str | None:
    """The business type of an application (or record) object — its ``type`` — else None."""
    kind = document.get("type")
    return kind if isinstance(kind, str) and kind in APPLICATION_TYPES else None


def _sdk_member_names() -> set[str]:
    """Every member name of the SDK's application models (to catch a dialect name that collides)."""
    from pydantic import BaseModel

    from sdk.models import APPLICATION_TYPES

    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    todo: list[type[BaseModel]] = list(APPLICATION_TYPES.values())
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
            for arg in _models_in(info.annotation):
                todo.append(arg)
    return names


def _models_in(annotation: Any) -> list[type[Any]]:
    from typing import get_args

    from pydantic import BaseModel

    found: list[type[Any]] = []
    stack = [annotation]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            found.append(item)
        stack.extend(get_args(item))
    return found
