"""vidcap.runs.folders: folders written whole, swapped in by rename, checked by checksums."""

import os

import pytest

from vidcap.errors import RunError
from vidcap.runs import folders


def _write(final, text: str) -> None:
    with folders.written_whole(final) as tmp:
        (tmp / "a.txt").write_text(text)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text(text * 2)


def test_a_folder_replaces_the_previous_one_whole_and_checks(tmp_path):
    final = tmp_path / "model"
    _write(final, "one")
    _write(final, "two")
    assert (final / "a.txt").read_text() == "two" and (final / "sub" / "b.txt").is_file()
    folders.verify(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # nothing left beside it
    (final / "sub" / "b.txt").write_text("twotwo!")
    with pytest.raises(RunError, match=r"b.txt: damaged"):
        folders.verify(final)
    (final / "sub" / "b.txt").unlink()
    with pytest.raises(RunError, match=r"b.txt: missing"):
        folders.verify(final)
    (final / "checksums.json").write_text("{")
    with pytest.raises(RunError, match="checksums.json: unreadable"):
        folders.verify(final)


def test_a_failure_while_filling_keeps_the_previous_folder(tmp_path):
    final = tmp_path / "model"
    _write(final, "one")
    with pytest.raises(RunError, match="cannot be written.*No space"):
        with folders.written_whole(final) as tmp:
            (tmp / "a.txt").write_text("half")
            raise OSError(28, "No space left on device")
    assert (final / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_swap_cut_between_its_renames_is_read_and_repaired(tmp_path):
    final = tmp_path / "model"
    _write(final, "one")
    os.rename(final, tmp_path / ".model.old-12345")  # killed after the first rename
    (tmp_path / ".model.new-12345").mkdir()          # with the new one not yet in place
    assert folders.current(final) == tmp_path / ".model.old-12345"
    folders.verify(folders.current(final))
    folders.repair(final)
    assert (final / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert folders.current(tmp_path / "nothing") is None


def test_checksums_may_not_name_files_outside_the_folder(tmp_path):
    final = tmp_path / "model"
    _write(final, "one")
    (final / "checksums.json").write_text('{"sha256": {"../x": "00"}}')
    with pytest.raises(RunError, match="outside its folder"):
        folders.verify(final)
