"""Properties of the dataset readers (MSVD caption lists, mapping and corpus CSV; MSR-VTT JSON and
zip; VATEX JSON): what is written in the dataset's format reads back as written; damaged files
and any bytes read or fail cleanly."""

from __future__ import annotations

import csv
import io
import json
import zipfile

from hypothesis import given
from hypothesis import strategies as st

from tests.property.conftest import (FEW, IDS, JSON, PROPERTY, WORDS, clean_or_value, json_text,
                                     mutations)
from vidcap.data.msrvtt import read_msrvtt
from vidcap.data.msvd import read_caption_list, read_corpus_csv, read_mapping, read_msvd
from vidcap.data.vatex import read_vatex
from vidcap.text import collapse_whitespace

CAPTIONS = st.dictionaries(st.integers(1, 1970), st.lists(WORDS, min_size=1, max_size=3),
                           min_size=1, max_size=6)


def _expected(captions: dict[int, list[str]]) -> dict[int, list[str]]:
    out = {n: [collapse_whitespace(c) for c in caps] for n, caps in captions.items()}
    return {n: [c for c in caps if c] for n, caps in out.items()}


@PROPERTY
@given(CAPTIONS, st.sampled_from(["\n", "\r\n"]))
def test_msvd_caption_lists_read_back(scratch, captions, newline):
    text = newline.join(f"vid{n}\t{c}" for n, caps in captions.items() for c in caps)
    got, empty = read_caption_list(scratch("sents_test_lc_nopunc.txt", text))
    want = _expected(captions)
    assert {n: c for n, c in got.items() if c} == {n: c for n, c in want.items() if c}
    assert empty == sum(len(captions[n]) - len(want[n]) for n in captions)


@PROPERTY
@given(st.dictionaries(IDS, st.integers(1, 1970), min_size=1, max_size=6).filter(
    lambda m: len(set(m.values())) == len(m)))
def test_msvd_mappings_read_back(scratch, mapping):
    text = "\r\n".join(f"{clip} vid{n}" for clip, n in mapping.items())
    assert read_mapping(scratch("youtube_mapping.txt", text)) == mapping


ROWS = st.lists(st.tuples(IDS, st.integers(0, 500), st.integers(1, 60),
                          st.sampled_from(["English", "German", "english "]),
                          WORDS | st.just("a, \"quoted\"\nline")), min_size=1, max_size=8)


@PROPERTY
@given(ROWS)
def test_msvd_corpus_csv_reads_back(scratch, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime",
                     "Language", "Description"])
    want: dict[str, list[str]] = {}
    for video, start, length, language, text in rows:
        writer.writerow([video, start, start + length, 1, "clean", 9, language, text])
        if language.strip().lower() == "english" and collapse_whitespace(text):
            want.setdefault(f"{video}_{start}_{start + length}", []).append(
                collapse_whitespace(text))
    got, dropped = read_corpus_csv(scratch("video_corpus.csv", buffer.getvalue()))
    assert {k: v for k, v in got.items() if v} == want
    assert dropped["other_language"] == sum(r[3].strip().lower() != "english" for r in rows)


@st.composite
def msrvtt(draw) -> tuple[dict, dict[str, list[str]]]:
    """(an MSR-VTT annotation object, {video_id: captions in sen_id order})."""
    ids = draw(st.lists(IDS, min_size=1, max_size=5, unique=True))
    videos = [{"video_id": v, "split": draw(st.sampled_from(["train", "validate", "test"])),
               "category": 1} for v in ids]
    sentences, want = [], {}
    order = draw(st.permutations(range(3 * len(ids))))
    for i, v in enumerate(ids):
        caps = draw(st.lists(WORDS, min_size=1, max_size=3))
        sentences += [{"video_id": v, "caption": c, "sen_id": order[3 * i + k]}
                      for k, c in enumerate(caps)]
        pairs = sorted((order[3 * i + k], collapse_whitespace(c)) for k, c in enumerate(caps))
        want[v] = [c for _, c in pairs if c]
    return {"info": {}, "videos": videos, "sentences": sentences}, want


def _zip(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


@PROPERTY
@given(msrvtt(), st.booleans())
def test_msrvtt_json_and_zip_read_back(scratch, annotation, as_zip):
    data, want = annotation
    name = "train_val_videodatainfo.json"
    path = (scratch("train_val_annotation.zip", _zip(name, json.dumps(data))) if as_zip
            else scratch(name, json.dumps(data)))
    got = {c.video_id: c.captions for c in read_msrvtt([path]).clips}
    assert got == {v: c for v, c in want.items() if c}


@FEW
@given(st.data())
def test_a_damaged_msrvtt_zip_reads_the_same_or_fails_cleanly(scratch, data):
    annotation, want = data.draw(msrvtt())
    good = _zip("train_val_videodatainfo.json", json.dumps(annotation))
    path = scratch("train_val_annotation.zip", data.draw(mutations(good)))
    found = clean_or_value(lambda: read_msrvtt([path]))
    if found is not None:  # a change the archive does not see (a date, a comment)
        assert {c.video_id: c.captions for c in found.clips} == {
            v: c for v, c in want.items() if c}


@PROPERTY
@given(st.lists(st.tuples(IDS, st.integers(0, 9000), st.lists(WORDS, max_size=3)),
                min_size=1, max_size=5, unique_by=lambda t: t[0]))
def test_vatex_files_read_back(scratch, entries):
    data = [{"videoID": f"{v}_{s:06d}_{s + 10:06d}", "enCap": caps} for v, s, caps in entries]
    found = read_vatex([scratch("vatex_validation_v1.0.json", json_text(data))])
    want = {e["videoID"]: [collapse_whitespace(c) for c in e["enCap"]] for e in data}
    assert {c.video_id: c.captions for c in found.clips} == {
        v: [c for c in caps if c] for v, caps in want.items() if any(caps)}


READERS = {
    "sents_test_lc_nopunc.txt": lambda p: read_msvd([p]),
    "youtube_mapping.txt": read_mapping,
    "video_corpus.csv": read_corpus_csv,
    "test_videodatainfo.json": lambda p: read_msrvtt([p]),
    "train_val_annotation.zip": lambda p: read_msrvtt([p]),
    "vatex_training_v1.0.json": lambda p: read_vatex([p]),
}


@PROPERTY
@given(st.sampled_from(sorted(READERS)),
       st.one_of(st.binary(max_size=200), JSON.map(lambda v: json_text(v).encode()),
                 st.text("vid0123456789\t\n\r ,\"abc_PK", max_size=80).map(str.encode)))
def test_any_bytes_in_any_dataset_file_read_or_fail_cleanly(scratch, name, data):
    clean_or_value(lambda: READERS[name](scratch(name, data)))
