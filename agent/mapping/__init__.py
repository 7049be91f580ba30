"""Mapping profiles: a loan system's export layout → canonical applications, as data (TOML).

A new loan system is a new profile in ``config/mappings/`` (or any path), never new code. A
profile says how to read the file (``[source]``, see connectors/readers/), which rows make one
application (``[identity]``), which business type each is (``[type]``), where each canonical
field comes from (``[[fields]]``), how the declaration is formed (``[declaration]``), where the
materials are (``[materials]``) and how receipts go back (``[receipts]``). docs/agent.md has the
whole schema; config/mappings/*.toml are worked examples.

Mapping never raises on bad data: every problem becomes a :class:`FieldError` naming the row,
the source column, the value (masked when it is personal data) and what was expected.
"""

from agent.mapping.profile import (
    FieldSpec,
    Profile,
    ProfileInvalid,
    load_profile,
    parse_profile,
    profile_gaps,
    profile_source,
)
from agent.mapping.records import TYPE_CODES, MappedApplication, Provenance, map_records
from agent.mapping.values import FieldError, convert, normalise_name, parse_amount, parse_date

__all__ = [
    "TYPE_CODES",
    "FieldError",
    "FieldSpec",
    "MappedApplication",
    "Profile",
    "ProfileInvalid",
    "Provenance",
    "convert",
    "load_profile",
    "map_records",
    "normalise_name",
    "parse_amount",
    "parse_date",
    "parse_profile",
    "profile_gaps",
    "profile_source",
]
