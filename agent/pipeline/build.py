"""Build and validate: a mapped group of rows → an ``sdk`` application with its materials.

Everything a row lacks or gets wrong is reported at once, each problem naming the file, the
row, the source column, the value (masked when personal) and what was expected: the mapping's
conversions, the SDK model's validation (identifiers, dates, amounts, required fields), the
declaration (经办人, one e-signature per applicant) and the materials checklist of the business
type (config/checklists, seed 004). Validating before sending avoids the 补正 that a centre would
otherwise ask for (peers' lesson: over 40% of requisitions are avoidable).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agent.mapping import FieldError, MappedApplication, Profile
from agent.mapping.profile import CHINA
from agent.state.blobs import BlobStore
from sdk.checklists import missing_materials
from sdk.identifiers import check_resident_id, check_uscc
from sdk.models import (
    APPLICATION_TYPES,
    COURT_DOCUMENT_MATERIAL,
    Application,
    ApplicationBase,
    MaterialChecklist,
    MortgageDischarge,
    court_document_problems,
)

__all__ = ["BuildContext", "BuiltApplication", "build", "payload_digest"]

_APPLICATION = TypeAdapter(Application)
MEDIA_BY_SUFFIX = {
    ".pdf": "application/pdf",
    ".ofd": "application/ofd",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
_UNION_TAGS = {
    "person",
    "organisation",
    "guarantee_scope",
    "rank",
    "secured_debt",
    "debt_period",
    "maximum_amount",
    "determination_period",
}


@dataclass
class BuildContext:
    """What the agent knows that an export does not: the bank, its default operator, the checklists."""

    bank_name: str
    bank_uscc: str
    default_operator: str | None
    checklists: dict[str, MaterialChecklist]
    blobs: BlobStore
    bank_signature_id: str = "institution-seal"
    #: the e-signature CAs (PEM) whose applicant signatures are accepted (the enrolment bundle's); ``None``: who
    #: issued a signer's certificate is not judged (a dry run without the agent's config)
    esign_cas: list[str] | None = field(default_factory=list)


@dataclass
class BuiltApplication:
    reference: str
    loan_no: str
    type: str
    payload: dict[str, Any]
    materials: list[dict[str, Any]]
    rows: list[int]
    errors: list[FieldError] = field(default_factory=list)
    #: the 查询授权书 on file (no personal data), kept with the row's source for the pre-flight
    authorisation: dict[str, str] | None = None
    #: the branch (a key of the agent's [branches], or the inbox's label) the loan belongs to
    branch: str | None = None
    #: the 经办人 account the row names (or the agent's default operator): audit records name it, the row's too
    operator: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def payload_digest(payload: dict[str, Any]) -> str:
    """A digest of what was asked for, ignoring when it was signed: an identical re-export has the same one."""
    stripped = json.loads(json.dumps(payload))
    for sig in stripped.get("declaration", {}).get("signatures", []):
        sig.pop("signed_at", None)
    return hashlib.sha256(json.dumps(stripped, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _party_kind(party: dict[str, Any]) -> None:
    if "kind" in party or not isinstance(party.get("id_number"), str):
        party.setdefault("kind", "person")
        return
    number = party["id_number"]
    try:
        check_resident_id(number)
        party["kind"] = "person"
        return
    except ValueError:
        pass
    try:
        check_uscc(number)
        party["kind"] = "organisation"
    except ValueError:
        party["kind"] = "person"


def applicant_pointers(kind: str, data: dict[str, Any]) -> list[str]:
    """The JSON pointers of the applicants who must sign, from the unvalidated data."""
    if kind == "mortgage_discharge":
        side = data.get("applicant_side", "mortgagee")
        mortgagors = [f"/mortgagors/{i}" for i in range(len(data.get("mortgagors") or []))]
        return {"mortgagee": ["/mortgagee/0"], "mortgagor": mortgagors}.get(side, [*mortgagors, "/mortgagee/0"])
    pointers: list[str] = []
    for name in APPLICATION_TYPES[kind].applicant_fields:
        value = data.get(name)
        if isinstance(value, list):
            pointers += [f"/{name}/{i}" for i in range(len(value))]
        elif value is not None:
            pointers.append(f"/{name}/0")
    return pointers


def _fill(mapped: MappedApplication, profile: Profile, ctx: BuildContext) -> None:
    data = mapped.data
    kind = mapped.type
    assert kind is not None
    model_fields = APPLICATION_TYPES[kind].model_fields
    if "mortgagee" in model_fields and "mortgagee" not in data:
        data["mortgagee"] = {"kind": "organisation", "name": ctx.bank_name, "id_number": ctx.bank_uscc}
    for name in ("mortgagors", "obligors", "buyers", "sellers"):
        for party in data.get(name) or []:
            if isinstance(party, dict):
                _party_kind(party)
    if isinstance(data.get("mortgagee"), dict):
        data["mortgagee"].setdefault("kind", "organisation")
    spec = profile.declaration
    first_row = mapped.rows[0]
    pointers = applicant_pointers(kind, data)
    personal = [p for p in pointers if not p.startswith("/mortgagee/")]
    ids = list(mapped.signature_ids)
    if spec.esignatures:  # signed documents: declared and checked with the materials (_esignatures)
        ids = ["(file)"] * len(personal)
    if len(ids) != len(personal):
        column = spec.signatures or "(declaration.signatures)"
        mapped.error(
            first_row,
            column,
            ";".join(ids),
            f"{len(personal)} e-signature id(s), one per applicant in order ({', '.join(personal) or 'none'})",
        )
    signed_at = mapped.signed_at or datetime.now(UTC).isoformat()
    signatures = []
    for pointer in [] if spec.esignatures else pointers:
        sig = ctx.bank_signature_id if pointer.startswith("/mortgagee/") else (ids.pop(0) if ids else "")
        signatures.append({"party": pointer, "signature_id": sig or "missing", "signed_at": signed_at})
    commitment: Any = spec.commitment
    if isinstance(commitment, str):
        raw = mapped.records[0].values.get(commitment, "")
        commitment = raw.strip() in ("是", "Y", "y", "yes", "true", "1", "√")
        if not commitment:
            column = str(spec.commitment)  # a column name here (the profile may also say true)
            mapped.error(first_row, column, raw, "是：申请人已签署真实性承诺 (承诺)", "declaration.commitment_accepted")
    operator = mapped.operator or ctx.default_operator
    if not operator:
        mapped.error(
            first_row,
            spec.operator or "(declaration.operator)",
            "",
            "the 经办人 account (a column, or the agent's default operator)",
        )
    data["declaration"] = {
        "operator_id": operator or "unknown",
        "inquiry": [
            {
                "question_code": q.code,
                "question": q.question,
                "answer": _answer(mapped, q.column, q.question) or q.answer,
            }
            for q in spec.inquiry
        ],
        "commitment_accepted": bool(commitment),
        "signatures": signatures,
    }


def _answer(mapped: MappedApplication, column: str | None, question: str) -> str | None:
    """The applicant's answer to one 询问笔录 question, from its column (an empty cell is an error)."""
    if column is None:
        return None
    first = mapped.records[0]
    raw = first.values.get(column, "").strip()
    if not raw:
        mapped.error(first.row, column, "", f"申请人对询问笔录「{question}」的回答 (the applicant's answer)")
    return raw or None


def _esignatures(
    mapped: MappedApplication, profile: Profile, ctx: BuildContext, inbox: Path, materials: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each applicant's signed PDF, named by the profile's esignatures column (relative to the export's folder):
    checked as the centre will (:func:`sdk.esign.verify_esignature`: a trusted e-signature CA, unaltered, over this
    loan's signed document, by the applicant named), declared as a material and referred to from the declaration.
    A failed check is an error naming the file, the row and the column; identity numbers are shown masked."""
    spec = profile.declaration
    column = spec.esignatures or ""
    data = mapped.data
    kind = mapped.type or ""
    personal = [p for p in applicant_pointers(kind, data) if not p.startswith("/mortgagee/")]
    files = list(mapped.esignature_files)
    first_row = mapped.rows[0]
    if len(files) != len(personal):
        mapped.error(
            first_row,
            column,
            ";".join(name for _, name in files),
            f"每位申请人一个电子签名文件，按申请人顺序共 {len(personal)} 个 ({', '.join(personal) or '无'})",
            "declaration.signatures",
        )
        return []
    document = next((m for m in materials if m["code"] == spec.signed_document), None)
    if personal and document is None:
        mapped.error(first_row, column, "", f"申请人所签署的文件 ({spec.signed_document}) 须作为本笔贷款的材料一并提供")
        return []
    root = _resolved(inbox)
    signatures = []
    for k, (pointer, (row, name)) in enumerate(zip(personal, files, strict=True), 1):
        path = _inside(root, name)
        if root not in path.parents or not path.is_file():
            mapped.error(
                row,
                column,
                name,
                f"电子签名文件 {name}：须为导出文件所在目录 {root} 内的PDF文件",
                "declaration.signatures",
            )
            continue
        signed = path.read_bytes()
        assert document is not None
        field_name, index = pointer.strip("/").split("/")
        party = (data.get(field_name) or [{}])[int(index)] if isinstance(data.get(field_name), list) else {}
        number = str(party.get("id_number") or "")
        check = _verified(signed, document["_path"].read_bytes(), number, ctx.esign_cas or [])
        problems = [p for p in check.problems if ctx.esign_cas is not None or p.code != "esignature_untrusted"]
        if not _readable_id(number):  # the 证件号码's own error says it: a signer cannot be compared with it
            problems = [p for p in problems if p.code != "esignature_wrong_signer"]
        for problem in problems:
            mapped.error(
                row, column, name, f"电子签名文件 {name}（{pointer}）: {problem.reason}", "declaration.signatures"
            )
        if problems:
            continue
        mid = f"esign{k}"
        materials.append(
            {
                "id": mid,
                "code": "esignature",
                "filename": path.name[-255:],
                "media_type": "application/pdf",
                "sha256": hashlib.sha256(signed).hexdigest(),
                "size": len(signed),
                "_path": path,
            }
        )
        when = check.signed_at.isoformat() if check.signed_at else mapped.signed_at or datetime.now(UTC).isoformat()
        signatures.append({"party": pointer, "material_id": mid, "document_id": document["id"], "signed_at": when})
    return signatures


def _readable_id(number: str) -> bool:
    """Whether ``number`` is a valid 居民身份证号码 or 统一社会信用代码 (what a signer's certificate names)."""
    for check in (check_resident_id, check_uscc):
        try:
            check(number)
        except ValueError:
            continue
        return True
    return False


#: checks of signed documents already made: (signed, document, 证件号码, trusted CAs) digest → (when, result)
_CHECKED: dict[str, tuple[float, Any]] = {}
CHECK_SECONDS = 600.0  # a check is reused this long: a certificate's validity is judged again after it


def _verified(signed: bytes, document: bytes, id_number: str, cas: list[str]) -> Any:
    """:func:`sdk.esign.verify_esignature` of ``signed`` over ``document`` by ``id_number`` against ``cas``, reused for
    :data:`CHECK_SECONDS` when the same bytes come again (an export dropped again, a 补正's rebuild, one signed file
    several rows name): a PAdES validation costs ~0.1 s."""
    from sdk.esign import verify_esignature

    parts = [hashlib.sha256(signed).digest(), hashlib.sha256(document).digest(), id_number.encode()]
    key = hashlib.sha256(b"\0".join([*parts, *(c.encode() for c in cas)])).hexdigest()
    now = time.monotonic()
    hit = _CHECKED.get(key)
    if hit is not None and now - hit[0] < CHECK_SECONDS:
        return hit[1]
    check = verify_esignature(signed, document, id_number=id_number, trusted_cas=cas)
    if len(_CHECKED) >= 4096:
        _CHECKED.clear()
    _CHECKED[key] = (now, check)
    return check


_LISTINGS: dict[Path, tuple[int, list[str]]] = {}
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def _inside(folder: Path, name: str) -> Path:
    """Where ``name`` in ``folder`` really is: links and ``..`` followed (a plain name costs one lstat)."""
    path = folder / name
    if "/" in name or "\\" in name or name.startswith(".") or path.is_symlink():
        return path.resolve()
    return path


_RESOLVED: dict[str, tuple[tuple[int, int], Path]] = {}


def _resolved(folder: Path) -> Path:
    """``folder.resolve()``, remembered while the folder it names is the same one (one stat, not an lstat
    per component of a deep path for every application)."""
    try:
        st = folder.stat()
    except OSError:
        return folder.resolve()
    hit = _RESOLVED.get(str(folder))
    if hit is not None and hit[0] == (st.st_dev, st.st_ino):
        return hit[1]
    real = folder.resolve()
    _RESOLVED[str(folder)] = ((st.st_dev, st.st_ino), real)
    return real


_MANIFEST_FILES: dict[tuple[str, str], tuple[int, Path, bool, bool]] = {}


def _manifest_file(folder: Path, name: str) -> tuple[Path, bool, bool]:
    """(where ``name`` really is, whether inside ``folder``, whether a regular file).

    A plain name's answer is remembered while the folder is unchanged: whatever would change it —
    the file created, removed, renamed or a link re-pointed — changes the folder's mtime. A batch
    names the same shared forms for every loan; this is one stat per application, not three per file.
    """
    plain = not ("/" in name or "\\" in name or name.startswith("."))
    mtime = folder.stat().st_mtime_ns if plain else -1
    hit = _MANIFEST_FILES.get((str(folder), name)) if plain else None
    if hit is not None and hit[0] == mtime:
        return hit[1], hit[2], hit[3]
    path = _inside(folder, name)
    inside = folder in path.parents
    answer = (path, inside, inside and path.is_file())
    if plain:
        if len(_MANIFEST_FILES) > 100_000:
            _MANIFEST_FILES.clear()
        _MANIFEST_FILES[(str(folder), name)] = (mtime, *answer)
    return answer


def file_digest(path: Path) -> tuple[str, int]:
    """(SHA-256, size) of a file, remembered while it is unchanged (one scanned form shared by a batch)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    digest = _DIGESTS.get(key)
    if digest is None:
        if len(_DIGESTS) > 100_000:
            _DIGESTS.clear()
        digest = _DIGESTS[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest, st.st_size


def _listing(folder: Path, prefix: str) -> list[Path]:
    """The folder's files whose names start with ``prefix``, from one listing per change of the folder.

    A batch of many loans shares one materials folder: listing it once per application would make
    an export's ingest quadratic in its size.
    """
    mtime = folder.stat().st_mtime_ns
    cached = _LISTINGS.get(folder)
    if cached is None or cached[0] != mtime:
        cached = _LISTINGS[folder] = (mtime, sorted(p.name for p in folder.iterdir()))
    names = cached[1]
    start = bisect.bisect_left(names, prefix)
    found = []
    for name in names[start:]:
        if not name.startswith(prefix):
            break
        found.append(folder / name)
    return found


def find_materials(
    mapped: MappedApplication, profile: Profile, inbox: Path, checklist: MaterialChecklist
) -> list[tuple[str, Path]]:
    """(code, file) for each material of this loan in the profile's materials folder or manifest column."""
    spec = profile.materials
    folder = _resolved(inbox / spec.folder)
    by_name = {item.name: item.code for item in checklist.items}
    codes = {item.code for item in checklist.items}
    found: list[tuple[str, Path]] = []
    first = mapped.records[0]
    if spec.manifest:
        raw = first.values.get(spec.manifest, "")
        for part in filter(None, (p.strip() for p in raw.split(spec.manifest_split))):
            code, _, name = part.partition(":")
            code = by_name.get(code.strip(), code.strip())
            path, inside, is_file = _manifest_file(folder, name.strip()) if name.strip() else (folder, False, False)
            if not inside:
                mapped.error(first.row, spec.manifest, part, "code:filename, a file inside the materials folder")
            elif code not in codes:
                mapped.error(first.row, spec.manifest, part, f"a material code of the {checklist.name} checklist")
            elif not is_file:
                mapped.error(first.row, spec.manifest, part, f"a file {name} in {folder}")
            else:
                found.append((code, path))
        return found
    prefix = spec.pattern.format(loan_no=mapped.loan_no)
    if not folder.is_dir() or not mapped.loan_no:
        return found
    for path in _listing(folder, prefix):
        if not path.is_file() or not path.name.startswith(prefix) or path.suffix.lower() not in MEDIA_BY_SUFFIX:
            continue
        if folder not in path.resolve().parents:  # a link out of the folder: never read what it points at
            mapped.error(first.row, "(materials)", path.name, f"a regular file inside {folder}, not a link out of it")
            continue
        stem = path.name[len(prefix) : -len(path.suffix)]
        stem = re.sub(r"-\d+$", "", stem)
        code = by_name.get(stem, stem)
        if code in codes:
            found.append((code, path))
    return found


def _loc_path(loc: tuple[Any, ...], kind: str) -> str:
    parts: list[Any] = list(loc)
    if parts and parts[0] == kind:
        parts = parts[1:]
    out: list[Any] = []
    for i, p in enumerate(parts):
        if isinstance(p, str) and (
            p.startswith("function-") or (p in _UNION_TAGS and i and isinstance(parts[i - 1], int))
        ):
            continue
        out.append(p)
    text = ""
    for p in out:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text


def _column_for(target: str, profile: Profile) -> str | None:
    general = re.sub(r"\[\d+\]", "[]", target)
    for spec in profile.fields:
        if spec.column and (
            spec.target == target or spec.target == general or re.sub(r"\[\d+\]", "[]", spec.target) == general
        ):
            return spec.column
    return None


def _field_named(path: str, message: str, mapped: MappedApplication, profile: Profile) -> str | None:
    """The field under ``path`` a model-level message is about (it names it: ``needs secured_amount``)."""
    for name in re.findall(r"[a-z][a-z0-9_]+", message):
        candidate = f"{path}.{name}" if path else name
        if candidate in mapped.provenance or _column_for(candidate, profile) is not None:
            return candidate
    return None


def _validation_errors(exc: ValidationError, mapped: MappedApplication, profile: Profile) -> None:
    already = {e.target for e in mapped.errors if e.target}
    first_row = mapped.rows[0]
    for err in exc.errors(include_url=False, include_input=False):
        path = _loc_path(tuple(err["loc"]), mapped.type or "")
        if path in already:
            continue
        message = str(err["msg"]).removeprefix("Value error, ")
        if message.startswith("applicants without an electronic signature") and "declaration.signatures" in already:
            continue  # the signed document's own error (file, row, column) says why
        if message.startswith("the applicants' truthfulness") and "declaration.commitment_accepted" in already:
            continue  # the 承诺 column's own error says it (the model's would land on another declaration column)
        prov = mapped.provenance.get(path)
        about = _field_named(path, message, mapped, profile) if prov is None and err["type"] != "missing" else None
        if about is not None:  # a rule across fields (一般抵押 needs secured_amount): report it on that field's column
            if about in already:
                continue  # its own cell is already reported (an amount that could not be read)
            prov = mapped.provenance.get(about)
            column = prov.column if prov is not None else _column_for(about, profile)
            if prov is None:
                mapped.error(first_row, column or about, "", message, about)
                continue
        if prov is None:
            under = sorted(k for k in mapped.provenance if k.startswith(path + ".") or k.startswith(path + "["))
            prov = mapped.provenance.get(under[0]) if under and err["type"] != "missing" else None
        if err["type"] == "missing":
            column = _column_for(path, profile)
            mapped.error(
                first_row,
                column or path,
                "",
                f"a value for {path}" + ("" if column else " (no column in the profile maps to it)"),
                path,
            )
        elif prov is not None:
            mapped.error(prov.row, prov.column, prov.value, message, path, prov.kind)
        else:
            mapped.error(first_row, path or "(application)", "", message, path)


def _court_document_material(mapped: MappedApplication, profile: Profile, materials: list[dict[str, Any]]) -> None:
    """Point a mapped 生效法律文书 at the loan's ``court_document`` file (seed 004), or say the file is missing."""
    doc = mapped.data.get("court_document")
    if mapped.type != "mortgage_discharge" or not isinstance(doc, dict) or doc.get("material_id"):
        return
    court = next((m for m in materials if m["code"] == COURT_DOCUMENT_MATERIAL), None)
    if court is not None:
        doc["material_id"] = court["id"]
        return
    folder = profile.materials.folder
    mapped.error(
        mapped.rows[0],
        profile.materials.manifest or f"{folder}/",
        "",
        f"生效法律文书的文件（材料 {COURT_DOCUMENT_MATERIAL}）：{folder}/ 中的 "
        f"{mapped.loan_no}_{COURT_DOCUMENT_MATERIAL}.pdf（或清单列中列出）；行中填写了法律文书，却没有文书本身",
        "court_document.material_id",
    )
    del mapped.data["court_document"]  # reported here once, not again by the model


def _representation(
    mapped: MappedApplication, profile: Profile, ctx: BuildContext, materials: list[dict[str, Any]]
) -> None:
    """Complete the bank's 代理 (seed 001: 银行作为代理人) when the profile maps the agent's name and 证件: the
    bank and its 经办人 from the agent, the 委托书 from the loan's materials, the principals = the applicants."""
    rep = mapped.data.get("representation")
    if not isinstance(rep, dict):
        return
    agent = rep.setdefault("agent", {})
    agent.setdefault("institution_name", ctx.bank_name)
    agent.setdefault("institution_uscc", ctx.bank_uscc)
    agent.setdefault("operator_id", mapped.data.get("declaration", {}).get("operator_id"))
    kind = mapped.type or ""
    rep.setdefault("principals", [p for p in applicant_pointers(kind, mapped.data) if not p.startswith("/mortgagee/")])
    poa = next((m for m in materials if m["code"] == "power_of_attorney"), None) or next(
        (m for m in materials if m["code"] == "applicant_identity"), None
    )
    if poa is not None:
        rep["power_of_attorney"] = {"material_id": poa["id"], "sha256": poa["sha256"]}
        return
    folder = profile.materials.folder
    mapped.error(
        mapped.rows[0],
        profile.materials.manifest or f"{folder}/",
        "",
        f"委托书：银行作为代理人时须随申请提交委托书，即 {folder}/ 中的 {mapped.loan_no}_power_of_attorney.pdf "
        f"或 {mapped.loan_no}_applicant_identity.pdf（申请人身份证明：委托书及代理人身份证件）",
        "representation.power_of_attorney",
    )
    del mapped.data["representation"]  # reported here once, not again by the model


def _standing(app: ApplicationBase, mapped: MappedApplication, profile: Profile) -> None:
    """A mortgagor's unilateral 注销 stands only on an effective court or arbitration document (seed 004): the
    rule the centre applies (``court_document_required`` / ``_not_effective``), checked before sending."""
    if not isinstance(app, MortgageDischarge) or any(e.target.startswith("court_document") for e in mapped.errors):
        return
    today = datetime.now(CHINA).date()
    for _code, reason, pointer in court_document_problems(app.applicant_side.value, app.court_document, today):
        target = pointer.strip("/").replace("/", ".")
        prov = mapped.provenance.get(target) or mapped.provenance.get("applicant_side")
        if prov is not None:
            mapped.error(prov.row, prov.column, prov.value, reason, target, prov.kind)
            continue
        columns = [c for c in (_column_for(f"court_document.{n}", profile) for n in ("kind", "document_number")) if c]
        where = "、".join(columns) or "(court_document)"
        fill = "；请在导出中填写法律文书种类、作出机关、文书编号、生效日期"
        mapped.error(mapped.rows[0], where, "", reason + fill, target)


def build(mapped: MappedApplication, profile: Profile, ctx: BuildContext, inbox: Path) -> BuiltApplication:
    """Validate one mapped application; its errors (mapping ones included) are all in ``errors``."""
    kind = mapped.type
    built = BuiltApplication(mapped.reference, mapped.loan_no, kind or "", {}, [], mapped.rows)
    built.operator = mapped.operator or ctx.default_operator or ""
    built.authorisation = mapped.authorisation
    if kind is None:
        built.errors = list(mapped.errors)
        return built
    checklist = ctx.checklists[kind]
    _fill(mapped, profile, ctx)
    files = find_materials(mapped, profile, inbox, checklist)
    materials: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for code, path in files:
        digest, size = file_digest(path)
        counts[code] = counts.get(code, 0) + 1
        mid = code if counts[code] == 1 else f"{code}-{counts[code]}"
        materials.append(
            {
                "id": mid,
                "code": code,
                "filename": path.name[-255:],
                "media_type": MEDIA_BY_SUFFIX[path.suffix.lower()],
                "sha256": digest,
                "size": size,
                "_path": path,
            }
        )
    if profile.declaration.esignatures:
        mapped.data["declaration"]["signatures"] = _esignatures(mapped, profile, ctx, inbox, materials)
    mapped.data["materials"] = [{k: v for k, v in m.items() if not k.startswith("_")} for m in materials]
    _court_document_material(mapped, profile, materials)
    _representation(mapped, profile, ctx, materials)
    app = None
    try:
        app = _APPLICATION.validate_python(mapped.data)
    except ValidationError as exc:
        _validation_errors(exc, mapped, profile)
    if app is not None:
        _standing(app, mapped, profile)
        folder = profile.materials.folder
        for item in missing_materials(app, checklist):
            expected = (
                f"the material {item.name} ({item.code}): a file {mapped.loan_no}_{item.code}.pdf "
                f"(or {mapped.loan_no}_{item.name}.pdf) in {folder}/"
            )
            if profile.materials.manifest:
                expected = f"the material {item.name} ({item.code}) listed in the manifest column"
            mapped.error(mapped.rows[0], profile.materials.manifest or f"{folder}/", "", expected, "materials")
    built.errors = list(mapped.errors)
    if built.errors or app is None:
        return built
    for m in materials:
        path = m.pop("_path")
        if ctx.blobs.exists(m["sha256"]):  # content-addressed: already kept, no need to read it again
            m["blob"] = m["sha256"]
        else:
            m["blob"] = ctx.blobs.put(path.read_bytes())
            if m["blob"] != m["sha256"]:
                mapped.error(mapped.rows[0], "(materials)", path.name, "a file that stays unchanged while it is read")
    built.errors = list(mapped.errors)
    if built.errors:
        return built
    built.materials = [{k: m[k] for k in ("id", "code", "sha256", "size", "blob")} for m in materials]
    built.payload = app.model_dump(mode="json", exclude_none=True)
    return built
