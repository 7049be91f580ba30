"""``regbridge demo --dir X`` empties X only when it is new, empty, or a previous demo folder (it holds MARKER)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.demo import MARKER, DemoFolderRefused, prepare_demo_folder


def test_a_folder_with_other_files_is_refused_and_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    (folder / "sub").mkdir(parents=True)
    (folder / "ledger.xlsx").write_bytes(b"the bank's own file")
    (folder / "sub" / "notes.txt").write_text("keep me")
    with pytest.raises(DemoFolderRefused, match="not a previous demo folder"):
        prepare_demo_folder(folder)
    assert (folder / "ledger.xlsx").read_bytes() == b"the bank's own file"
    assert (folder / "sub" / "notes.txt").read_text() == "keep me"
    assert not (folder / MARKER).exists()


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "work"
    target.write_text("not a folder")
    with pytest.raises(DemoFolderRefused, match="not a folder"):
        prepare_demo_folder(target)
    assert target.read_text() == "not a folder"


def test_a_new_an_empty_and_a_previous_demo_folder_are_made_empty_with_the_marker(tmp_path: Path) -> None:
    new = tmp_path / "new" / "demo"
    prepare_demo_folder(new)
    assert [p.name for p in new.iterdir()] == [MARKER]

    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_demo_folder(empty)
    assert [p.name for p in empty.iterdir()] == [MARKER]

    (new / "var").mkdir()
    (new / "var" / "agent.db").write_bytes(b"a previous run")
    prepare_demo_folder(new)  # a previous demo folder: emptied again
    assert [p.name for p in new.iterdir()] == [MARKER]


def test_the_cli_refuses_with_a_clear_message_and_exit_code_2(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "thesis.docx").write_bytes(b"precious")
    result = CliRunner().invoke(app, ["demo", "--dir", str(folder)])
    assert result.exit_code == 2, result.output
    assert "not a previous demo folder" in result.output
    assert "--dir" in result.output
    assert (folder / "thesis.docx").read_bytes() == b"precious"
