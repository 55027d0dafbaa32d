"""Properties of the prediction and reference readers (`vidcap score`'s inputs): each format
written reads back as written; any bytes read or fail cleanly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.property.conftest import IDS, JSON, PROPERTY, WORDS, clean_or_value, json_text
from vidcap.data.manifest import VideoRecord, write_manifest
from vidcap.evaluation.formats import load_predictions, load_references

PREDICTIONS = st.dictionaries(IDS.filter(lambda s: s.strip() == s), WORDS, min_size=1,
                              max_size=6)
REFERENCES = st.dictionaries(IDS.filter(lambda s: s.strip() == s),
                             st.lists(WORDS, min_size=1, max_size=3), min_size=1, max_size=6)


@PROPERTY
@given(PREDICTIONS, st.sampled_from(["dict", "coco", "lines"]))
def test_predictions_read_back_in_every_format(scratch, predictions, form):
    entries = [{"video_id": k, "caption": v} for k, v in predictions.items()]
    text = {"dict": json_text(predictions), "coco": json_text(entries),
            "lines": "\n".join(json_text(e) for e in entries) + "\n"}[form]
    assert load_predictions(scratch("predictions.json", text)) == predictions


@PROPERTY
@given(REFERENCES, st.sampled_from(["dict", "coco", "manifest"]))
def test_references_read_back_in_every_format(scratch, references, form):
    if form == "manifest":
        path = scratch("m.jsonl", b"")
        write_manifest([VideoRecord(k, "", "test", v) for k, v in references.items()], path)
    else:
        coco = {"annotations": [{"image_id": k, "caption": c} for k, v in references.items()
                                for c in v]}
        path = scratch("refs.json", json_text(references if form == "dict" else coco))
    assert load_references(path) == references


@PROPERTY
@given(st.one_of(st.binary(max_size=200), JSON.map(lambda v: json_text(v).encode()),
                 st.lists(JSON, max_size=3).map(
                     lambda vs: "\n".join(json_text(v) for v in vs).encode())))
def test_any_bytes_are_predictions_references_or_a_clean_error(scratch, data):
    predictions = clean_or_value(lambda: load_predictions(scratch("p.json", data)))
    references = clean_or_value(lambda: load_references(scratch("r.json", data)))
    assert predictions is None or all(isinstance(v, str) for v in predictions.values())
    assert references is None or all(isinstance(v, list) for v in references.values())
