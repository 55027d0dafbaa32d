"""How well a run aligns videos and captions: retrieval on a split (`vidcap evaluate --task
retrieval`), measured in the space the align stage trains (paper eq. 3).

Videos and captions are embedded with the contrastive head (`MFFCL.embed_video` / `embed_text`,
unit vectors); their cosine similarity ranks videos for each caption and captions for each video
(`vidcap.evaluation.retrieval` computes R@1/5/10 and ranks). The queries follow each dataset's
usual protocol: every caption of the split is a query (MSVD, VATEX, MSR-VTT "full"), or MSR-VTT's
1k-A (the JSFusion list of 1,000 video-caption pairs) when its file is given. On Shapes, where
many clips share a caption, the share of the top 10 whose colour, shape and motion all match the
query is reported too, for queries of seen and held-out (colour, shape) pairs apart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidcap.config import Config
from vidcap.data.clips import ClipDataset, collate_samples
from vidcap.data.manifest import VideoRecord, read_manifest
from vidcap.data.shapes import HELD_OUT_PAIRS, attributes_beside, read_attributes
from vidcap.errors import DatasetError, RunError
from vidcap.evaluation.retrieval import (RetrievalSet, caption_set, read_msrvtt_1k_a,
                                         retrieval_metrics, select_msrvtt_1k_a,
                                         shapes_precision_detail)
from vidcap.evaluation.shapes import parse_caption
from vidcap.files import write_json
from vidcap.models.mffcl import MFFCL
from vidcap.runs.layout import open_run
from vidcap.runs.store import load_run, read_config

log = logging.getLogger(__name__)

STANDARD_PROTOCOLS = {
    "msvd": "MSVD: the 670 test videos, every caption a query (about 27,700)",
    "msrvtt": "MSR-VTT: 1k-A (JSFusion's 1,000 test pairs, --jsfusion FILE) is the standard; "
              "the full test split (2,990 videos, every caption a query) is reported by some",
    "vatex": "VATEX: the test videos, every English caption a query",
    "shapes": "Shapes: the test split, every caption a query; many clips share a caption, so "
              "precision@10 of attribute matches says more than R@1",
}
"""What each dataset's papers report; printed beside the numbers."""


@dataclass
class Embedded:
    """A retrieval set embedded: unit vectors of its videos and of its captions."""

    videos: np.ndarray
    """(N, E) of the videos that could be read."""
    texts: np.ndarray
    """(M, E) of the captions of those videos."""
    video_of_text: list[int]
    video_ids: list[str]
    captions: list[str]
    skipped: list[tuple[str, str]]
    """(video_id, reason) of videos that could not be read (left out with their captions)."""


def guess_dataset(records: Sequence[VideoRecord]) -> str | None:
    """Which dataset a manifest holds, from its ids (vidN, videoN, <ytid>_<start>_<end>, shapes-)."""
    first = records[0].video_id if records else ""
    for prefix, name in (("shapes-", "shapes"), ("video", "msrvtt"), ("vid", "msvd")):
        if first.startswith(prefix) and (name == "shapes" or first[len(prefix):].isdigit()):
            return name
    return "vatex" if first.count("_") >= 2 else None


def embed_set(model: MFFCL, chosen: RetrievalSet, cfg: Config, *, batch_size: int = 32
              ) -> Embedded:
    """Embed the videos (decoded as in training, in batches, unreadable ones skipped) and the
    captions of a retrieval set."""
    dataset = ClipDataset(chosen.videos, cfg.video, cache_dir=cfg.data.cache_dir)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_samples,
                        num_workers=cfg.data.num_workers)
    vectors: dict[int, np.ndarray] = {}
    skipped: list[tuple[str, str]] = []
    for batch in loader:
        skipped.extend(batch.failed)
        if len(batch):
            rows = model.embed_video(batch.pixels).cpu().numpy()
            vectors.update(zip(batch.indices, rows))
    kept = sorted(vectors)
    position = {old: new for new, old in enumerate(kept)}
    if not kept:
        raise DatasetError(f"{chosen.name}: none of its {len(chosen.videos)} videos could be read "
                           f"(e.g. {skipped[0][1] if skipped else 'no videos'})")
    pairs = [(t, position[v]) for t, v in zip(chosen.texts, chosen.video_of_text)
             if v in position]
    captions = [t for t, _ in pairs]
    texts = np.concatenate([model.embed_text(captions[i:i + 256]).cpu().numpy()
                            for i in range(0, len(captions), 256)])
    return Embedded(np.stack([vectors[i] for i in kept]), texts, [v for _, v in pairs],
                    [chosen.videos[i].video_id for i in kept], captions, skipped)


def shapes_precision(embedded: Embedded, manifest: Path, k: int = 10) -> dict[str, Any] | None:
    """Precision@k of attribute matches for caption queries of seen and of held-out pairs, with
    its ceiling on these candidates and the precision over the attainable top min(k, matching)
    (`vidcap.evaluation.retrieval.ShapesPrecision`), in percent."""
    attributes_file = attributes_beside(manifest)
    if attributes_file is None:
        return None
    attributes = read_attributes(attributes_file)
    top = np.argsort(-(embedded.texts @ embedded.videos.T), axis=1, kind="stable")[:, :k]
    result: dict[str, Any] = {"k": k}
    for group, wanted in (("seen", False), ("held_out", True)):
        chosen = [i for i, text in enumerate(embedded.captions)
                  if _is_held_out(text) == wanted]
        rankings = [[embedded.video_ids[j] for j in top[i]] for i in chosen]
        queries = [embedded.captions[i] for i in chosen]
        result[group] = {"queries": len(queries), "precision": None, "ceiling": None,
                         "attainable": None}
        if queries:
            detail = shapes_precision_detail(queries, rankings, embedded.video_ids, attributes, k)
            result[group].update(precision=100 * detail.precision, ceiling=100 * detail.ceiling,
                                 attainable=100 * detail.attainable)
    return result


def _is_held_out(caption: str) -> bool:
    return any((c, s) in HELD_OUT_PAIRS for c, s, _ in parse_caption(caption))


def _retrieval_set(records: list[VideoRecord], split: str, jsfusion: Path | None) -> RetrievalSet:
    if jsfusion is not None:
        return select_msrvtt_1k_a(records, read_msrvtt_1k_a(jsfusion))
    return caption_set(records, name=f"{split} split")


def evaluate_retrieval(run_dir: str | Path, *, split: str = "test",
                       manifest: str | Path | None = None, jsfusion: str | Path | None = None,
                       which: str = "auto", device: str = "cpu", limit: int | None = None
                       ) -> dict[str, Any]:
    """Text-to-video and video-to-text retrieval of a run on a split; writes
    retrieval-<split>.json into the run and returns what it wrote."""
    layout = open_run(run_dir)
    cfg = read_config(layout)
    manifest = Path(manifest or cfg.data.manifest)
    if limit is not None and limit < 1:
        raise RunError(f"--limit must be at least 1, got {limit}")
    records = read_manifest(manifest, split)[:limit]
    if not records:
        raise RunError(f"{manifest}: no videos in split {split!r}")
    chosen = _retrieval_set(records, split, Path(jsfusion) if jsfusion else None)
    model = load_run(layout.root, device=device, which=which, with_text_encoder=True)
    with torch.no_grad():
        embedded = embed_set(model, chosen, cfg, batch_size=cfg.generate.batch_size)
    for video_id, reason in embedded.skipped:
        log.warning("skipped %s: %s", video_id, reason)
    result = retrieval_metrics(embedded.texts @ embedded.videos.T, embedded.video_of_text,
                               name=chosen.name)
    dataset = guess_dataset(records)
    report = {**result.to_json(), "table": result.format_table(), "skipped": len(embedded.skipped),
              "standard": STANDARD_PROTOCOLS.get(dataset or "", "")}
    precision = shapes_precision(embedded, manifest)
    if precision is not None:
        report["shapes_precision"] = precision
    write_json(layout.retrieval(split), report)
    return report
