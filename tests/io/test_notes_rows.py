"""Notes CSVs from real exports: an empty or unreadable row is set aside (its row number, never its text) and
the other rows are classified; only faults of the whole file refuse it."""
from __future__ import annotations

import pytest

from medai_core.errors import EmptyInput, InputError, TooLarge, UnsupportedFormat
from medai_core.io import notes as io_notes
from medai_core.io.changes import NOT_SCORED
from medai_core.io.notes import EMPTY, TOO_LONG, UNREADABLE, NoteBatch, SkippedNote, load_notes

SECRET = "Zyxwname"  # a planted identifier: must never reach a change, a message or a reference of a bad row


def test_empty_and_whitespace_rows_are_set_aside_the_others_load():
    data = (f"id,text\nn1,{SECRET} has knee pain\nn2,\nn3,\"   \t \"\nn4,chest pain with troponin\nn5\n"
            "n6,cataract surgery\n").encode()
    batch = load_notes(data, "export.csv")
    assert isinstance(batch, NoteBatch)
    assert [(n.ref, n.row) for n in batch] == [("n1", 1), ("n4", 4), ("n6", 6)]  # used like a list, in file order
    assert len(batch) == 3 and batch[1].text == "chest pain with troponin" and [n.ref for n in batch[:2]] == ["n1", "n4"]
    assert [(c.row, c.field, c.at, c.value, c.action) for c in batch.changes] == [
        (2, "text", "", EMPTY, NOT_SCORED), (3, "text", "", EMPTY, NOT_SCORED), (5, "text", "", EMPTY, NOT_SCORED)]
    assert all(c.reason == "the note is empty" for c in batch.changes)
    assert [s.ref for s in batch.skipped] == ["n2", "n3", "n5"]
    assert [x.row for x in batch.in_file_order()] == [1, 2, 3, 4, 5, 6]
    assert batch.skipped[0].message() == "Row 2 (n2) was not scored: the note is empty."


def test_unreadable_rows_name_the_row_never_the_text():
    garbage = SECRET + "\x01\x02\x03\x04\x05\x06\x07\x0b\x0e\x0f\x10\x11\x12\x13"
    long_note = f"{SECRET} " + "word " * (io_notes.MAX_NOTE_CHARS // 5)
    data = f"text\nknee pain\n{SECRET} 1234 !!\n{garbage}\n{long_note}\n1234 5678\nchest pain\n".encode()
    data = data.replace(f"{SECRET} 1234 !!".encode(), b"1234 !!")  # a row without words
    batch = load_notes(data, "x.csv")
    assert [n.ref for n in batch] == ["x.csv:2", "x.csv:7"]  # without ids: the file's line, as before
    assert [(c.row, c.value) for c in batch.changes] == [(2, UNREADABLE), (3, UNREADABLE), (4, TOO_LONG),
                                                        (5, UNREADABLE)]
    assert "binary data" in batch.changes[1].reason and "200,000" in batch.changes[2].reason
    for s in batch.skipped:
        shown = " ".join([*map(str, s.change.to_json().values()), s.change.text(), s.message(), s.ref])
        assert SECRET not in shown and "word word" not in shown


def test_blank_lines_are_empty_notes_and_keep_the_row_numbers():
    batch = load_notes(b"\ntext\nknee pain\n\nchest pain\n\n\n", "x.csv")  # blank lines around the table are not rows
    assert [(n.ref, n.row) for n in batch] == [("x.csv:2", 1), ("x.csv:4", 3)]
    assert [(c.row, c.value) for c in batch.changes] == [(2, EMPTY)]


def test_a_single_note_file_is_one_note_without_changes():
    batch = load_notes(b"knee pain after a fall", "note.txt")
    assert [n.key for n in batch] == ["file"] and batch.changes == () and batch.skipped == ()


def test_skipped_note_is_exported_by_the_workspace():
    from medai_core.workspaces import notes as N

    assert N.NoteBatch is NoteBatch and N.SkippedNote is SkippedNote


@pytest.mark.parametrize("data,err,match", [
    (b"", EmptyInput, "empty"),
    (b"\x00\x01binary", UnsupportedFormat, "not a text file"),
    (b"id,note\n1,knee pain\n", InputError, "'text' column"),
    (b"id,text\n", EmptyInput, "no notes"),
    (b"id,text\n1,knee pain\n1,chest pain\n", InputError, "Duplicate ids"),
    (b"id,text\n1,\n2,   \n3\n", EmptyInput, "None of the CSV's 3 rows"),
    (b"id,text\n1,knee pain,\n2,chest pain\n", UnsupportedFormat, "more values than the header"),
    (b"id,text\n1,\"knee pain\n2,chest pain\n", UnsupportedFormat, "could not be read as a CSV"),
])
def test_faults_of_the_whole_file_still_refuse_it(data, err, match):
    with pytest.raises(err, match=match):
        load_notes(data, "a.csv")


def test_file_limits_still_refuse_the_file(monkeypatch):
    monkeypatch.setattr(io_notes, "MAX_NOTES", 2)
    with pytest.raises(TooLarge, match="limit is 2"):
        load_notes(b"text\none\n\nthree\n", "n.csv")
    monkeypatch.setattr(io_notes, "MAX_FILE_BYTES", 10)
    with pytest.raises(TooLarge):
        load_notes(b"text\nknee pain\nchest pain\n", "n.csv")


def test_the_all_bad_message_names_rows_not_text():
    with pytest.raises(EmptyInput) as info:
        load_notes(f"id,text\n{SECRET},\n2,1234\n".encode(), "a.csv")
    assert SECRET not in str(info.value) and "row 1: the note is empty" in str(info.value)
