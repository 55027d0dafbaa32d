"""Properties of the manifest reader: written records read back as they were; any line, any
bytes, give a record or a clean error."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.property.conftest import (IDS, JSON, PROPERTY, TEXT, WORDS, clean_or_value, json_text,
                                     mutations)
from vidcap.data.manifest import SPLITS, VideoRecord, parse_record, read_manifest, write_manifest

TIMES = st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
EXTRA = st.dictionaries(TEXT.filter(lambda k: k not in ("video_id", "path", "split", "captions",
                                                        "start", "end")), JSON, max_size=3)


@st.composite
def records(draw) -> list[VideoRecord]:
    ids = draw(st.lists(IDS, min_size=1, max_size=6, unique=True))
    out = []
    for video_id in ids:
        start, end = draw(TIMES), draw(TIMES)
        if start is not None and end is not None and end <= start:
            end = None
        out.append(VideoRecord(video_id, draw(TEXT), draw(st.sampled_from(SPLITS)),
                               draw(st.lists(WORDS, min_size=1, max_size=4)), start, end,
                               draw(EXTRA)))
    return out


@PROPERTY
@given(records())
def test_written_records_read_back_unchanged(scratch, recs):
    path = write_manifest(recs, scratch("m.jsonl", b""))
    back = read_manifest(path)
    assert [r.to_json() for r in back] == [r.to_json() for r in recs]
    assert all(r.root == path.parent for r in back)


@PROPERTY
@given(JSON)
def test_any_json_line_is_a_record_or_a_clean_error(scratch, value):
    path = scratch("m.jsonl", json_text(value) + "\n")
    record = clean_or_value(lambda: parse_record(value, path, 1))
    back = clean_or_value(lambda: read_manifest(path))
    if record is not None:
        assert back is not None and back[0].to_json() == record.to_json()
        assert record.split in SPLITS and record.captions and all(
            isinstance(c, str) and c.strip() for c in record.captions)


@PROPERTY
@given(st.binary(max_size=300))
def test_any_bytes_are_records_or_a_clean_error(scratch, data):
    path = scratch("m.jsonl", data)
    back = clean_or_value(lambda: read_manifest(path))
    assert back is None or all(isinstance(r, VideoRecord) for r in back)


@PROPERTY
@given(st.data())
def test_a_damaged_manifest_reads_or_fails_cleanly(scratch, data):
    recs = data.draw(records())
    good = scratch("m.jsonl", b"")
    write_manifest(recs, good)
    damaged = scratch("m.jsonl", data.draw(mutations(good.read_bytes())))
    back = clean_or_value(lambda: read_manifest(damaged))
    assert back is None or all(isinstance(r, VideoRecord) for r in back)
