"""The console's local users: names, roles and argon2id password hashes, in one file of the data folder.

``console-users.json`` (mode 0600) holds ``{name: {role, hash, created_at, disabled}}``; the hash is
argon2id (argon2-cffi, its default parameters: RFC 9106's second recommended option), so the file
holds no password. Roles, each including the one before it:

- ``viewer``: every page (personal data masked as everywhere);
- ``operator``: requeue and dismiss quarantine items, pay fees when allowed, confirm transmittals;
- ``admin``: the audit export (users are managed with ``regbridge users`` on the machine itself).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from agent.state.store import now_iso

__all__ = ["ROLES", "User", "UserError", "UserStore"]

ROLES = ("viewer", "operator", "admin")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
_hasher = PasswordHasher()
# a hash to verify against when the name is unknown, so a wrong name costs as long as a wrong password
_DUMMY = _hasher.hash("regbridge-no-such-user")


class UserError(ValueError):
    """A user that cannot be added or changed (the message says why)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def can(self, role: str) -> bool:
        """Has this user ``role`` or a higher one?"""
        return ROLES.index(self.role) >= ROLES.index(role)


class UserStore:
    """The users of one agent's console (``<data_dir>/console-users.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data: dict[str, dict[str, Any]] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data

    def _save(self, users: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(users, fh, ensure_ascii=False, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def add(self, name: str, password: str, role: str) -> User:
        """Add a user, or set an existing one's password and role.

        Raises:
            UserError: a bad name, an unknown role, or a password shorter than 10 characters.
        """
        if not _NAME.match(name):
            raise UserError(f"user name {name!r}: 2-64 letters, digits, . _ @ - (starting with a letter or digit)")
        if role not in ROLES:
            raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
        if len(password) < 10:
            raise UserError("the password must have at least 10 characters")
        with self._lock:
            users = self._load()
            users[name] = {"role": role, "hash": _hasher.hash(password), "created_at": now_iso(), "disabled": False}
            self._save(users)
        return User(name, role)

    def remove(self, name: str) -> bool:
        with self._lock:
            users = self._load()
            if users.pop(name, None) is None:
                return False
            self._save(users)
            return True

    def list(self) -> list[dict[str, Any]]:
        """Every user without its hash: ``{name, role, created_at, disabled}``."""
        return [
            {"name": n, "role": u["role"], "created_at": u.get("created_at"), "disabled": u.get("disabled", False)}
            for n, u in sorted(self._load().items())
        ]

    def get(self, name: str) -> User | None:
        u = self._load().get(name)
        return None if u is None or u.get("disabled") else User(name, u["role"])

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs (the hash is upgraded when argon2's parameters changed)."""
        users = self._load()
        u = users.get(name)
        if u is None or u.get("disabled"):
            with contextlib.suppress(VerificationError):
                _hasher.verify(_DUMMY, password)
            return None
        try:
            _hasher.verify(u["hash"], password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if _hasher.check_needs_rehash(u["hash"]):
            with self._lock:
                users = self._load()
                users[name]["hash"] = _hasher.hash(password)
                self._save(users)
        return User(name, u["role"])
