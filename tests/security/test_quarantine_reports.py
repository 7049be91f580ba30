"""No full ID number in a quarantine report (issue 17 item 9).

A broken record is shown by its leading key, and an error by its field's value; when the record
starts with an ID number, or an ID number sits in a column where none was expected, both showed it
in full. Now every ID number in either is masked (first four and last four characters).
"""

from __future__ import annotations

from agent.messages import field_line
from agent.pipeline.outbox import record_excerpt
from sandbox import register
from sdk.privacy import mask_id

PERSON = register.owners_of(3)[0]
ID = PERSON.id_number


def test_a_broken_record_starting_with_an_id_number_is_shown_masked() -> None:
    excerpt = record_excerpt(f"{ID},黄伟,1500000,broken")
    assert ID not in excerpt and mask_id(ID) in excerpt


def test_an_id_number_in_a_wrong_column_is_shown_masked() -> None:
    line = field_line(7, None, "loan_no", ID, "a loan number")
    assert ID not in line and mask_id(ID) in line
    line = field_line(7, None, "phone", f"tel {ID}", "a phone number")
    assert ID not in line
