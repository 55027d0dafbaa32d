"""Bad MSVD annotation files (`vidcap.data.msvd`, `vidcap prepare msvd`)."""

from __future__ import annotations

import pytest

from tests.faults.conftest import HUGE_INT, clean, write
from vidcap.data.msvd import read_caption_list, read_corpus_csv, read_msvd
from vidcap.data.prepare import prepare_dataset
from vidcap.errors import VidcapError

HEADER = "VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description\n"


def test_a_truncated_caption_list_is_an_error_with_the_counts(shared_data, tmp_path):
    # before: 333 of the 670 test videos written, with only a warning about unmapped clips
    folder = shared_data / "msvd"
    lines = (folder / "sents_test_lc_nopunc.txt").read_text().splitlines(keepends=True)
    vids = sorted({line.split("\t")[0] for line in lines}, key=lambda v: int(v[3:]))
    kept = set(vids[:333])
    cut = write(tmp_path / "sents_test_lc_nopunc.txt",
                "".join(line for line in lines if line.split("\t")[0] in kept))
    with pytest.raises(VidcapError) as err:
        prepare_dataset("msvd", [cut, folder / "youtube_mapping.txt"], no_videos=True,
                        out=tmp_path / "msvd.jsonl")
    clean(err, "333 of the 670 test videos", "--allow-partial")
    assert not (tmp_path / "msvd.jsonl").exists()


def test_an_unterminated_quote_in_the_corpus_csv(tmp_path):
    # before: the quote swallowed every row after it into one description, silently
    path = write(tmp_path / "video_corpus.csv", HEADER
                 + 'abc,1,2,1,clean,9,English,"A dog runs\n'
                 + "def,3,4,2,clean,9,English,A cat sleeps\n"
                 + "ghi,5,6,3,clean,9,English,A bird sings\n")
    with pytest.raises(VidcapError) as err:
        read_corpus_csv(path)
    clean(err, str(path), "CSV")


def test_a_csv_field_over_the_csv_module_limit(tmp_path):
    # before: _csv.Error (field larger than field limit) as a traceback
    path = write(tmp_path / "video_corpus.csv", HEADER
                 + "abc,1,2,1,clean,9,English," + "x" * 200_000 + "\n")
    with pytest.raises(VidcapError) as err:
        read_corpus_csv(path)
    clean(err, f"{path}:2", "CSV")


def test_a_start_time_that_is_not_a_number_of_seconds(tmp_path):
    # before: "nan" accepted: the clip became `abc_nan_inf`, matched nothing, was left out
    path = write(tmp_path / "video_corpus.csv", HEADER + "abc,nan,inf,1,clean,9,English,x\n")
    with pytest.raises(VidcapError) as err:
        read_corpus_csv(path)
    clean(err, f"{path}:2", "Start")


@pytest.mark.parametrize("data, says", [
    ("vid1301\ta dog\n".encode("utf-16"), "UTF-16"),  # before: "not UTF-8 text (invalid ...)"
    (b"PK\x03\x04" + bytes(100), "zip"),  # before: "not UTF-8 text"
    (f"vid{HUGE_INT}\ta dog\n".encode(), ":1"),  # before: ValueError (int digit limit)
    (b"vid2000\ta dog\n", ":1: vid2000"),  # before: "vid2000: outside ..." without the file
])
def test_a_bad_caption_list_names_the_file_line_and_problem(tmp_path, data, says):
    path = write(tmp_path / "sents_test_lc_nopunc.txt", data)
    with pytest.raises(VidcapError) as err:
        read_caption_list(path) if b"vid2000" not in data else read_msvd([path])
    clean(err, str(path), says)


def test_a_video_in_two_caption_lists(tmp_path):
    # before: its captions were merged, each counted twice in the references
    first = write(tmp_path / "sents_test_lc_nopunc.txt", "vid1301\ta dog\n")
    second = write(tmp_path / "sents_test_copy.txt", "vid1301\ta dog\n")
    with pytest.raises(VidcapError) as err:
        read_msvd([first, second])
    clean(err, "vid1301", "once")


def test_a_video_whose_captions_are_all_empty_is_left_out_and_counted(tmp_path):
    # before: kept with no caption: the manifest written could not be read back
    path = write(tmp_path / "sents_test_lc_nopunc.txt", "vid1301\ta dog\nvid1302\t  \n")
    found = read_msvd([path])
    assert [c.video_id for c in found.clips] == ["vid1301"]
    assert found.dropped["empty captions"] == 1
    assert found.dropped["videos without a caption"] == 1


def test_a_clip_name_whose_end_is_no_number_of_seconds(tmp_path):
    # before: `abc_1_999...9` (400 digits) gave the window (1, inf): a manifest found through the
    # full source video held `"end": Infinity`, which no JSON reader takes back
    mapping = write(tmp_path / "youtube_mapping.txt", "abc_1_" + "9" * 400 + " vid1301\n")
    captions = write(tmp_path / "sents_test_lc_nopunc.txt", "vid1301\ta dog\n")
    (clip,) = read_msvd([mapping, captions]).clips
    assert all(name.end is None or name.end < 1e308 for name in clip.names)
