"""Document stores: where verified certificates go (the bank's document store).

One small protocol, :class:`DocumentStore`: ``put`` a certificate under a key with its
metadata sidecar, never overwriting (the same content again is a no-op, other content under
the same key is a :class:`DocumentConflict`), and ``mark_superseded`` when a change or a
discharge replaces it. Keys are ``<loan no>/<证明号>.pdf`` (``.ofd`` for OFD certificates), made
safe by :func:`safe_key`.

- :class:`FilesystemStore`: ``<root>/<loan no>/<证明号>.pdf`` + ``.json`` sidecar, written
  atomically (temporary file, fsync, rename); the PDF is created with O_EXCL semantics.
- :class:`S3Store`: any S3-compatible endpoint (boto3); objects are written with
  ``If-None-Match: *`` where the endpoint supports it, and checked by SHA-256 otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DocumentConflict", "DocumentStore", "FilesystemStore", "S3Store", "safe_key", "safe_name"]


class DocumentConflict(Exception):
    """Another document already sits under this key."""


class DocumentStoreUnavailable(Exception):
    """The store refused or failed a write; try again later."""


_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|%]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def _escape(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8"))


def safe_name(value: str, *, limit: int = 120) -> str:
    """One path component that cannot climb out of its folder or trip a filesystem — and that no other
    value maps to (issue 17 item 9: loans ``.`` and ``..`` shared the folder ``_``, as did ``a:b`` and
    ``a_b``). Unsafe characters, ``%`` itself, leading dots and surrounding spaces are percent-escaped
    (``..`` → ``%2E%2E``, ``a:b`` → ``a%3Ab``), a DOS device name gets its first letter escaped
    (``CON`` → ``%43ON``), the empty name is ``%``, and a name longer than ``limit`` keeps its start
    and a hash of the whole."""
    text = unicodedata.normalize("NFC", value)
    body = text.lstrip(".")
    head = _escape(".") * (len(text) - len(body))
    core = body.strip(" ")
    left = len(body) - len(body.lstrip(" "))
    right = len(body) - len(body.rstrip(" ")) if core else 0
    escaped = head + "%20" * left + _UNSAFE.sub(lambda m: _escape(m.group(0)), core) + "%20" * right
    if not escaped:
        return "%"
    if escaped.upper().split(".")[0] in _RESERVED:
        escaped = _escape(escaped[0]) + escaped[1:]
    if len(escaped) > limit:
        escaped = escaped[: limit - 17] + "~" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
    return escaped


def safe_key(loan_no: str, certificate_number: str, suffix: str = ".pdf") -> str:
    return f"{safe_name(loan_no)}/{safe_name(certificate_number)}{suffix}"


class DocumentStore(Protocol):
    def put(self, key: str, content: bytes, metadata: dict[str, Any]) -> str:
        """Store ``content`` under ``key`` with its sidecar; returns the document's location."""
        ...

    def mark_superseded(self, key: str, superseded_by: dict[str, Any]) -> None: ...

    def get(self, key: str) -> bytes: ...

    def metadata(self, key: str) -> dict[str, Any]: ...

    def keys(self) -> list[str]: ...

    def probe(self) -> str:
        """Write and remove a small object; raises DocumentStoreUnavailable when the store refuses."""
        ...


def _sidecar(key: str) -> str:
    return key.rsplit(".", 1)[0] + ".json"


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True).encode()


class FilesystemStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"document key {key!r} leaves the store")
        return path

    def put(self, key: str, content: bytes, metadata: dict[str, Any]) -> str:
        from sdk.support import failpoints
        from sdk.support.files import atomic_write, temporary_name

        path = self._path(key)
        digest = hashlib.sha256(content).hexdigest()
        try:
            if path.exists():
                if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                    raise DocumentConflict(f"{path} already holds another document")
            else:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
                tmp = temporary_name(path)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
                os.fchmod(fd, 0o640)  # a certificate is personal data: 0640 whatever the umask (issue 17 item 9)
                with os.fdopen(fd, "wb") as fh:
                    for piece in failpoints.halves(content, "store.during_write"):
                        fh.write(piece)
                        fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(tmp, path)  # fails if the name exists: never overwrite
                except FileExistsError:
                    if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                        raise DocumentConflict(f"{path} already holds another document") from None
                finally:
                    tmp.unlink(missing_ok=True)
            sidecar = self._path(_sidecar(key))
            if not sidecar.exists():
                atomic_write(sidecar, _json({**metadata, "sha256": digest, "status": "current"}), mode=0o640)
        except OSError as exc:
            raise DocumentStoreUnavailable(f"{path}: {exc.strerror or exc}") from exc
        return str(path)

    def mark_superseded(self, key: str, superseded_by: dict[str, Any]) -> None:
        from sdk.support.files import atomic_write

        sidecar = self._path(_sidecar(key))
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.exists() else {}
            data.update({"status": "superseded", "superseded_by": superseded_by})
            atomic_write(sidecar, _json(data), mode=0o640)
        except OSError as exc:
            raise DocumentStoreUnavailable(f"{sidecar}: {exc.strerror or exc}") from exc

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def metadata(self, key: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self._path(_sidecar(key)).read_text(encoding="utf-8"))
        return data

    def keys(self) -> list[str]:
        documents = (p for p in self.root.rglob("*") if p.suffix in (".pdf", ".ofd"))
        return sorted(str(p.relative_to(self.root)) for p in documents if not p.name.startswith("."))

    def probe(self) -> str:
        path = self.root / f".regbridge-probe-{os.getpid()}"
        try:
            path.write_bytes(b"probe")
            path.unlink()
        except OSError as exc:
            raise DocumentStoreUnavailable(f"{self.root}: {exc.strerror or exc}") from exc
        return str(self.root)


class S3Store:
    """An S3-compatible bucket (AWS S3, MinIO, Ceph, moto's server in the tests)."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._s3 = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )

    def _head(self, key: str) -> Mapping[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self._s3.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise DocumentStoreUnavailable(f"s3://{self.bucket}/{self.prefix}{key}: {exc}") from exc

    def put(self, key: str, content: bytes, metadata: dict[str, Any]) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        digest = hashlib.sha256(content).hexdigest()
        location = f"s3://{self.bucket}/{self.prefix}{key}"
        try:
            head = self._head(key)
            if head is not None:
                if head.get("Metadata", {}).get("sha256") != digest:
                    raise DocumentConflict(f"{location} already holds another document")
            else:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=content,
                    ContentType="application/pdf",
                    Metadata={"sha256": digest},
                    IfNoneMatch="*",
                )
            if self._head(_sidecar(key)) is None:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + _sidecar(key),
                    ContentType="application/json",
                    Body=_json({**metadata, "sha256": digest, "status": "current"}),
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return self.put(key, content, metadata)  # someone wrote it meanwhile: compare
            raise DocumentStoreUnavailable(f"{location}: {exc}") from exc
        except BotoCoreError as exc:
            raise DocumentStoreUnavailable(f"{location}: {exc}") from exc
        return location

    def mark_superseded(self, key: str, superseded_by: dict[str, Any]) -> None:
        data = self.metadata(key) if self._head(_sidecar(key)) else {}
        data.update({"status": "superseded", "superseded_by": superseded_by})
        self._s3.put_object(
            Bucket=self.bucket, Key=self.prefix + _sidecar(key), Body=_json(data), ContentType="application/json"
        )

    def get(self, key: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        return body

    def metadata(self, key: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.get(_sidecar(key)))
        return data

    def keys(self) -> list[str]:
        found = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys = [o["Key"] for o in page.get("Contents", [])]
            found += [k[len(self.prefix) :] for k in keys if k.endswith((".pdf", ".ofd"))]
        return sorted(found)

    def probe(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        key = f"{self.prefix}.regbridge-probe-{os.getpid()}"
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=b"probe")
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise DocumentStoreUnavailable(f"s3://{self.bucket}/{key}: {exc}") from exc
        return f"s3://{self.bucket}/{self.prefix}"
