"""vidcap.data.msvd: the caption lists (real files) and the corpus CSV (a fixture in its format)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vidcap.data.prepare import prepare_dataset
from vidcap.data.manifest import read_manifest, summarize
from vidcap.data.msvd import read_caption_list, read_corpus_csv, read_mapping, read_msvd, split_of
from vidcap.errors import DatasetError, ManifestError

# The corpus CSV's header and rows as in the original file; tricky rows: a description with quoted
# commas and quotes, a quoted line break, other languages, an empty description, a clip not in the
# mapping, a float start.
CSV = (
    "VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description\r\n"
    "-4wsuPCjDBc,5,15,1,clean,20,English,A squirrel is eating a peanut.\r\n"
    '-4wsuPCjDBc,5,15,2,unverified,21,English,"A chipmunk, sitting, eats ""nuts"" fast"\r\n'
    "-4wsuPCjDBc,5,15,3,clean,22,German,Ein Eichhörnchen isst eine Erdnuss.\r\n"
    "-4wsuPCjDBc,5,15,4,clean,23,English,   \r\n"
    '-7KMZQEsJW4,205.0,208,5,clean,9,English,"A man   slices\n a tomato."\r\n'
    "-7KMZQEsJW4,205,208,6,clean,9,español,Un hombre corta un tomate.\r\n"
    "zzzNotMapped,1,4,7,clean,9,English,A clip outside the 1970.\r\n"
    "-8y1Q0rA3n8,108,115,8,clean,9,English,Someone plays a guitar.\r\n"
)
MAPPING = "-4wsuPCjDBc_5_15 vid1\r\n-7KMZQEsJW4_205_208 vid1250\r\n-8y1Q0rA3n8_108_115 vid1301"


def _files(tmp_path: Path) -> tuple[Path, Path]:
    csv_path = tmp_path / "MSR Video Description Corpus.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + CSV.encode("utf-8"))  # with a BOM, as Excel saves it
    mapping = tmp_path / "youtube_mapping.txt"
    mapping.write_bytes(MAPPING.encode())  # CRLF, no final newline
    return csv_path, mapping


def test_standard_split_by_vid_number():
    assert [split_of(n) for n in (1, 1200, 1201, 1300, 1301, 1970)] == [
        "train", "train", "val", "val", "test", "test"]
    assert split_of(0) is None and split_of(1971) is None


def test_corpus_csv_keeps_english_and_counts_what_it_leaves(tmp_path):
    csv_path, _ = _files(tmp_path)
    captions, dropped = read_corpus_csv(csv_path)
    assert captions["-4wsuPCjDBc_5_15"] == ["A squirrel is eating a peanut.",
                                            'A chipmunk, sitting, eats "nuts" fast']
    assert captions["-7KMZQEsJW4_205_208"] == ["A man slices a tomato."]  # 205.0 -> 205
    assert dropped == {"other_language": 2, "empty": 1}


def test_corpus_csv_with_mapping_makes_the_manifest(tmp_path, caplog):
    csv_path, mapping = _files(tmp_path)
    videos = tmp_path / "YouTubeClips"
    videos.mkdir()
    (videos / "-4wsuPCjDBc_5_15.avi").write_bytes(b"")
    (videos / "vid1250.mp4").write_bytes(b"")  # some releases rename clips vidN
    (videos / "-8y1Q0rA3n8.mkv").write_bytes(b"")  # the full YouTube video
    caplog.set_level(logging.INFO)  # the counts of what was left out are logged as info
    out = prepare_dataset("msvd", [csv_path, mapping], videos=videos, out=tmp_path / "m.jsonl",
                          allow_partial=True)  # three clips, not the standard 1970
    records = {r.video_id: r for r in read_manifest(out)}
    assert {k: r.split for k, r in records.items()} == {"vid1": "train", "vid1250": "val",
                                                        "vid1301": "test"}
    assert records["vid1"].path == "YouTubeClips/-4wsuPCjDBc_5_15.avi"
    assert records["vid1"].extra == {"clip": "-4wsuPCjDBc_5_15"}
    assert records["vid1250"].path == "YouTubeClips/vid1250.mp4"
    assert (records["vid1301"].start, records["vid1301"].end) == (108.0, 115.0)
    assert "1 English descriptions of clips not in youtube_mapping.txt" in caplog.text
    assert "2 descriptions in other languages, 1 empty descriptions" in caplog.text


def test_corpus_csv_needs_the_mapping_and_one_form_of_captions(tmp_path, shared_data):
    csv_path, mapping = _files(tmp_path)
    with pytest.raises(DatasetError, match="no vid numbers, so no standard split"):
        read_msvd([csv_path])
    with pytest.raises(DatasetError, match="in one form"):
        read_msvd([csv_path, mapping, shared_data / "msvd" / "sents_val_lc_nopunc.txt"])


@pytest.mark.parametrize("content, problem", [
    ("VideoID,Start,End,Description\nabc,1,2,x\n", "no column Language"),
    (CSV.splitlines()[0] + "\nabc,one,2,1,clean,9,English,x\n", ":2: `Start` must be a number"),
    (CSV.splitlines()[0] + "\nabc,1,2\n", ":2: 3 fields"),
])
def test_malformed_csv_names_file_line_and_problem(tmp_path, content, problem):
    path = tmp_path / "video_corpus.csv"
    path.write_text(content)
    with pytest.raises(ManifestError, match=problem) as err:
        read_corpus_csv(path)
    assert str(path) in str(err.value)


def test_malformed_caption_list_and_mapping(tmp_path):
    bad = tmp_path / "sents_train_lc_nopunc.txt"
    bad.write_text("vid1\ta cat\nvid2 a dog without a tab\n")
    with pytest.raises(ManifestError, match=r"sents_train_lc_nopunc.txt:2: expected `vidN<TAB>"):
        read_caption_list(bad)
    mapping = tmp_path / "youtube_mapping.txt"
    mapping.write_text("a_1_2 vid1\nb_1_2 vid1\n")
    with pytest.raises(ManifestError, match=":2: b_1_2 / vid1 is mapped twice"):
        read_mapping(mapping)


def test_real_caption_lists_give_the_standard_split(shared_data, tmp_path):
    folder = shared_data / "msvd"
    mapping = read_mapping(folder / "youtube_mapping.txt")  # CRLF, no final newline
    assert len(mapping) == 1970 and mapping["-4wsuPCjDBc_5_15"] == 1
    out = prepare_dataset("msvd", [folder], out=tmp_path / "msvd.jsonl", no_videos=True)
    records = read_manifest(out)
    stats = summarize(records)
    assert {s: (int(v["videos"]), int(v["captions"])) for s, v in stats.items()} == {
        "train": (1200, 48774), "val": (100, 4290), "test": (670, 27763)}
    first = records[0]
    assert (first.video_id, first.extra["clip"]) == ("vid1", "-4wsuPCjDBc_5_15")
    assert first.captions[0] == "a squirrel is eating a peanut in it s shell"
    # the clip lists of collaborative-experts agree with the split by vid number
    for split in ("train", "val", "test"):
        listed = set((folder / f"{split}_list.txt").read_text().split())
        assert {r.extra["clip"] for r in records if r.split == split} == listed
