"""Bad input, generated (hypothesis): every export reader, the mappings and the identifier parsers.

Random bytes, the sample exports truncated, re-encoded, with bytes spliced in, line endings
mixed, a field blown up to megabytes, spreadsheet formulas in cells — through the agent's real
ingest (read → map → build → admit) for each of the three sample profiles. Whatever comes in:
no exception escapes, every record is accounted for (queued, quarantined, a duplicate or a
补正 answer), and every quarantine entry names the file, the row (when there is one), the field
and what was expected. The identifier parsers and value converters answer a value or a
``ValueError`` that says what was expected — nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.daemon import Agent
from agent.demo import samples
from agent.mapping import FieldSpec, convert, parse_amount, parse_date
from agent.pipeline.ingest import ingest_file
from sandbox.local import LocalCentre
from sdk import identifiers
from tests import proof
from tests.agent.conftest import make_branch

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = {
    "corebank": ROOT / "config" / "samples" / "corebank_gb18030.csv",
    "presale": ROOT / "config" / "samples" / "presale_loans.xlsx",
    "legacy": ROOT / "config" / "samples" / "legacy_batch.dat",
}
EXAMPLES = proof.size(60, 1000)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FORMULAS = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", '=HYPERLINK("http://x","y")', "\t=1", "\r=1"]
# test_zz_record_the_fuzzing reads TALLY filled by the other tests of this module, so the whole module must run in
# one process, in file order: the Makefile runs pytest-xdist with --dist loadfile (one file → one worker).
# (--dist loadgroup with an xdist_group mark would be narrower, but with pytest 9.2 + pytest-xdist 3.8 here it does
# not group: the marked tests were still split across gw0/gw1.)
TALLY: dict[str, int] = {"inputs": 0, "quarantined": 0, "queued": 0}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    with LocalCentre() as centre:
        branch = make_branch(centre, tmp_path_factory.mktemp("fuzz") / "branch")
        running = branch.agent()
        for inbox in running.config.inbox:  # the samples' materials, so that intact rows can be admitted
            folder = running.config.resolve(inbox.path) / running.profiles[inbox.name].materials.folder
            for loan, kind in samples.loans_by_type().items():
                samples.write_materials(folder, loan, kind)
        try:
            yield running
        finally:
            running.close()


def _ingest(agent: Agent, inbox: str, data: bytes, label: str) -> None:
    """The agent's ingest of one export, and the invariants every outcome must keep."""
    config = agent.context.inbox(inbox)
    path = agent.config.resolve(config.path) / label
    path.write_bytes(data)
    report = ingest_file(agent.context, config, path)
    assert not path.exists(), "the export was left in the inbox"
    TALLY["inputs"] += 1
    if report.skipped:  # the same bytes again: recognised, not read twice
        assert agent.store.file_seen(hashlib.sha256(data).hexdigest()) is not None
        return
    TALLY["queued"] += len(report.queued)
    TALLY["quarantined"] += len(report.quarantined)
    if report.file_error:
        assert report.quarantined and report.file_error.strip()
    for entry in report.quarantined:
        assert entry["errors"], entry
        for error in entry["errors"]:
            assert error["file"] == label and error["field"] and error["expected"], error
    item = agent.store.quarantined()[-1] if report.quarantined else None
    if item is not None:
        assert item["errors"], item


def _mutate(data: bytes, how: str, at: float, blob: bytes, text: str) -> bytes:
    cut = int(len(data) * at)
    if how == "truncate":
        return data[:cut]
    if how == "splice":
        return data[:cut] + blob + data[cut:]
    if how == "utf8":
        return data.decode("gb18030", "replace").encode("utf-8")
    if how == "utf16":
        return data.decode("gb18030", "replace").encode("utf-16")
    if how == "line_endings":
        lines = data.split(b"\n")
        return b"".join(line + (b"\r\n", b"\r", b"\n")[i % 3] for i, line in enumerate(lines))
    if how == "huge_field":
        return data[:cut] + b"9" * (1 << 21) + data[cut:]
    if how == "formula":
        return data[:cut] + text.encode("gb18030", "replace") + data[cut:]
    raise AssertionError(how)


HOW = st.sampled_from(["truncate", "splice", "utf8", "utf16", "line_endings", "huge_field", "formula"])


@FUZZ
@given(inbox=st.sampled_from(sorted(SAMPLES)), data=st.binary(max_size=4096))
def test_random_bytes_as_any_export(agent: Agent, inbox: str, data: bytes) -> None:
    _ingest(agent, inbox, data, f"random.{SAMPLES[inbox].suffix.lstrip('.')}")


@FUZZ
@given(
    inbox=st.sampled_from(sorted(SAMPLES)),
    how=HOW,
    at=st.floats(0, 1),
    blob=st.binary(min_size=1, max_size=64),
    formula=st.sampled_from(FORMULAS),
)
def test_damaged_sample_exports(agent: Agent, inbox: str, how: str, at: float, blob: bytes, formula: str) -> None:
    data = _mutate(SAMPLES[inbox].read_bytes(), how, at, blob, formula)
    _ingest(agent, inbox, data, SAMPLES[inbox].name)


@FUZZ
@given(text=st.text(max_size=40) | st.from_regex(r"[0-9X]{15,19}", fullmatch=True))
def test_identifier_parsers_answer_a_value_or_say_what_was_expected(text: str) -> None:
    for parse in (
        identifiers.check_resident_id,
        identifiers.check_uscc,
        identifiers.check_property_unit_id,
        identifiers.parse_property_unit_id,
        identifiers.parse_certificate_number,
        identifiers.parse_licence_id,
        identifiers.check_licence_id,
    ):
        try:
            parse(text)
        except ValueError as exc:
            assert str(exc).strip(), parse.__name__


@FUZZ
@example(text="1E+30", kind="amount")  # found by this test: quantize overflowed on a huge exponent
@given(text=st.text(max_size=30), kind=st.sampled_from(["text", "amount", "date", "int", "bool", "enum"]))
def test_value_converters_answer_a_value_or_say_what_was_expected(text: str, kind: str) -> None:
    spec: dict[str, Any] = {"target": "x", "column": "c", "kind": kind}
    if kind == "enum":
        spec["map"] = {"一般": "1", "最高额": "2"}
    try:
        convert(FieldSpec.model_validate(spec), text, "万元")
        parse_amount(text, "元")
        parse_date(text, ["%Y-%m-%d"])
    except ValueError as exc:
        assert str(exc).strip()


def test_the_daemon_takes_a_pile_of_broken_exports_and_stays_up(tmp_path: Path) -> None:
    """The same kinds of damage, dropped into the three inboxes of a running ``regbridge run``."""
    import random
    import signal
    import time

    from tests.reliability.harness import agent_process

    rng = random.Random(7)
    with LocalCentre() as centre:
        branch = make_branch(centre, tmp_path / "branch", rescan_seconds=0.5)
        proc = agent_process(branch, log=tmp_path / "agent.stderr")
        try:
            dropped = []
            for i in range(proof.size(24, 200)):
                inbox = rng.choice(sorted(SAMPLES))
                how = rng.choice(["truncate", "splice", "utf16", "line_endings", "huge_field", "formula", "random"])
                data = (
                    rng.randbytes(rng.randrange(1, 4096))
                    if how == "random"
                    else _mutate(
                        SAMPLES[inbox].read_bytes(), how, rng.random(), rng.randbytes(16), rng.choice(FORMULAS)
                    )
                )
                path = branch.inbox(inbox) / f"broken-{i:03d}{SAMPLES[inbox].suffix}"
                path.write_bytes(data)
                dropped.append(path)
            deadline = time.monotonic() + 120
            while any(p.exists() for p in dropped):
                assert proc.poll() is None, (tmp_path / "agent.stderr").read_text()[-3000:]
                assert time.monotonic() < deadline, [p.name for p in dropped if p.exists()]
                time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reports = list((branch.root / "inbox").rglob("*quarantine*"))
        assert reports, "no quarantine report was written for the loan system"


def test_zz_record_the_fuzzing(agent: Agent) -> None:
    """Runs after the properties above (file order): the tally for the proof table."""
    assert TALLY["inputs"] >= 2 * EXAMPLES, TALLY
    assert TALLY["quarantined"] > 0 and TALLY["queued"] > 0, TALLY  # both outcomes were reached
    proof.record(
        proof.Result("fuzzed exports (random, truncated, re-encoded, huge, formulas)", runs=TALLY["inputs"],
                     applications=TALLY["queued"] + TALLY["quarantined"], lost=0, duplicated=0,
                     refused=TALLY["quarantined"], expected_refusals=TALLY["quarantined"])
    )  # fmt: skip
