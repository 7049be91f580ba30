"""银行信息备案 from the bank's side (seed 001 §5.2): the 营业执照 and 金融许可证 filed once at the centre.

The centre keeps them (and their validity) and never asks for them again with an application; it
refuses applications while the filing is missing or expired (``sdk.FilingRequired`` /
``sdk.FilingExpired``), which pauses the agent's submissions until the filing is in order again
(``regbridge filing`` files them; ``doctor`` shows the state).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sdk
from sdk.models import FILING_KINDS, FilingDocument, InstitutionFiling, InstitutionProfile

__all__ = ["FILING_COMMAND", "FilingFile", "describe_filing", "file_documents", "filing_hint", "sample_filing"]

_MEDIA = {
    ".pdf": "application/pdf",
    ".ofd": "application/ofd",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}

#: what to run when the centre says the filing is missing or expired
FILING_COMMAND = (
    "regbridge filing --business-licence 营业执照.pdf --financial-licence 金融许可证.pdf "
    "--financial-licence-number 机构编码 [--financial-licence-valid-until YYYY-MM-DD]"
)


def filing_hint(reason: str) -> str:
    """The centre's refusal for the filing, with what to do about it (for alerts and the console)."""
    return f"{reason}；请办理银行信息备案：{FILING_COMMAND}"


@dataclass(frozen=True)
class FilingFile:
    """One document to file: its kind (``business_licence`` / ``financial_licence``), file, number, validity."""

    code: str
    path: Path
    number: str
    valid_until: date | None = None


def _document(item: FilingFile) -> tuple[FilingDocument, bytes]:
    """The declaration of one file and its content.

    Raises:
        ValueError: an unknown kind, a file type the centre does not take, or a file that cannot be read.
    """
    if item.code not in FILING_KINDS:
        raise ValueError(f"unknown filing document {item.code!r}; one of {', '.join(FILING_KINDS)}")
    media = _MEDIA.get(item.path.suffix.lower())
    if media is None:
        raise ValueError(f"{item.path}: {FILING_KINDS[item.code]} must be a PDF, OFD, JPEG, PNG or TIFF file")
    try:
        content = item.path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{item.path}: cannot read {FILING_KINDS[item.code]}: {exc.strerror}") from None
    digest = hashlib.sha256(content).hexdigest()
    doc = FilingDocument(
        id=f"{item.code}-{digest[:12]}",
        code=item.code,
        name=FILING_KINDS[item.code],
        filename=item.path.name[-255:],
        media_type=media,
        sha256=digest,
        size=len(content),
        number=item.number,
        valid_until=item.valid_until,
    )
    return doc, content


def file_documents(client: sdk.Client, items: list[FilingFile]) -> InstitutionProfile:
    """File the institution's 营业执照 and 金融许可证 once (seed 001 §5.2): declare both, upload each.

    The same files filed again change nothing (one idempotency key per filing; uploads are PUTs).

    Raises:
        ValueError: a file that cannot be filed (see :class:`FilingFile`), or not one of each kind.
        sdk.APIError: the centre's refusal (``filing_mismatch`` when a number is not the institution's).
    """
    pairs = [_document(item) for item in items]
    filing = InstitutionFiling(documents=[doc for doc, _ in pairs])
    key = "filing-" + hashlib.sha256(filing.model_dump_json().encode()).hexdigest()[:32]
    profile = client.institution.file(filing, idempotency_key=key)
    for doc, content in pairs:
        profile = client.institution.upload_document(doc, content)
    return profile


def describe_filing(profile: InstitutionProfile) -> str:
    """One line per filed document and the state, in Chinese, for the console and ``doctor``."""
    lines = []
    for doc in profile.filing:
        until = doc.valid_until.isoformat() if doc.valid_until else "长期"
        lines.append(f"{FILING_KINDS.get(doc.code, doc.code)} {doc.number}，有效期至 {until}（{doc.filename}）")
    state = profile.filing_state
    lines.append({"complete": "备案齐全有效", "missing": "备案不全", "expired": "备案已过期"}[state.status]
                 + (f"：{state.reason}" if state.reason else ""))  # fmt: skip
    return "\n".join(lines)


def sample_filing(uscc: str, licence_no: str) -> list[FilingFile]:
    """The shipped sample documents (config/samples/filing/, for the sandbox's sample bank): what the demo
    and the docs walkthrough file."""
    from importlib import resources

    folder = Path(str(resources.files("config").joinpath("samples", "filing")))
    return [
        FilingFile("business_licence", folder / "business_licence.pdf", uscc),
        FilingFile("financial_licence", folder / "financial_licence.pdf", licence_no),
    ]
