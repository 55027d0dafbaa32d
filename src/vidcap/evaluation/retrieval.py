"""Text-video retrieval metrics as the field reports them, and the MSR-VTT 1k-A protocol.

Scores come as a similarity matrix `S` of shape (texts, videos) (cosine similarity of the
L2-normalised embeddings of stage 1) and, per text, the index of its own video.

- text-to-video (t2v): every caption is a query over all videos; it is right when its own video
  is ranked first (R@1), among the first 5 (R@5), ...
- video-to-text (v2t): every video that has a caption is a query over all captions; it is right
  at the best rank among its own captions (the usual convention when a video has several).

Ties are counted against the model: a query's rank is 1 + the number of WRONG candidates that
score at least as high as its best right candidate. A model that gives every candidate the same
score therefore ranks last (rank = number of wrong candidates + 1), never first. With one right
candidate this is 1 + (candidates scoring strictly higher) + (other candidates scoring equal).

Recall is in percent, as papers print it; the median rank is numpy's median of the 1-based ranks
(a half rank when the number of queries is even and the middle two differ).

Pure numpy: the similarity matrix is whatever the caller computed.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidcap.data.manifest import VideoRecord
from vidcap.data.shapes import ClipAttributes
from vidcap.evaluation.shapes import parse_caption
from vidcap.errors import DatasetError, ManifestError, MetricsError

TIES = "pessimistic: a query's rank counts every wrong candidate scoring at least as high"
MSRVTT_1KA_FILE = "MSRVTT_JSFUSION_test.csv"
"""The 1k-A test pairs (JSFusion's split: 1,000 test videos, one caption each)."""
MSRVTT_1KA_COLUMNS = ("key", "vid_key", "video_id", "sentence")
_MSRVTT_ID = re.compile(r"video\d+")
_ROW_CHUNK = 1024  # rows of the similarity matrix compared at once (bounds the boolean temporary)


@dataclass(frozen=True)
class Protocol:
    """What was measured, so a report can say it next to the numbers."""

    name: str
    texts: int
    """Captions, each one a text-to-video query."""
    videos: int
    """Candidate videos of every text query."""
    captions_per_video: tuple[int, int]
    """Fewest and most captions of a video."""
    video_queries: int
    """Videos with at least one caption (the video-to-text queries)."""
    every_caption_is_query: bool = True
    ties: str = TIES

    def describe(self) -> str:
        """One line for a report, e.g. 'msrvtt-1k-A: 1000 captions x 1000 videos, ...'."""
        low, high = self.captions_per_video
        per_video = f"{low}" if low == high else f"{low}-{high}"
        return (f"{self.name}: {self.texts} caption queries over {self.videos} videos "
                f"({per_video} captions per video, every caption is a query); "
                f"{self.video_queries} video queries over {self.texts} captions "
                f"(a video is right at its best-ranked caption); ties {self.ties}")


@dataclass(frozen=True)
class RankMetrics:
    """Recall at 1/5/10 in percent, median and mean 1-based rank, over `queries` queries."""

    r1: float
    r5: float
    r10: float
    median_rank: float
    mean_rank: float
    queries: int


@dataclass(frozen=True)
class RetrievalResult:
    """Both directions and the protocol they were measured under."""

    t2v: RankMetrics
    v2t: RankMetrics
    protocol: Protocol

    def to_json(self) -> dict[str, Any]:
        """A plain dict (for a scores file or `--format json`)."""
        return {"t2v": asdict(self.t2v), "v2t": asdict(self.v2t),
                "protocol": asdict(self.protocol)}

    def format_table(self) -> str:
        """The protocol line, then one row per direction: R@1 R@5 R@10 (percent), MdR, MnR."""
        lines = [self.protocol.describe(),
                 f"{'direction':<12} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MdR':>6} {'MnR':>7}"]
        for name, m in (("text->video", self.t2v), ("video->text", self.v2t)):
            lines.append(f"{name:<12} {m.r1:6.1f} {m.r5:6.1f} {m.r10:6.1f} "
                         f"{m.median_rank:6.1f} {m.mean_rank:7.1f}")
        return "\n".join(lines)


def rank_metrics(ranks: np.ndarray) -> RankMetrics:
    """R@1/5/10 (percent), median and mean of 1-based ranks."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise MetricsError("no queries to compute retrieval metrics over")
    recall = [float(np.mean(ranks <= k) * 100.0) for k in (1, 5, 10)]
    return RankMetrics(*recall, median_rank=float(np.median(ranks)),
                       mean_rank=float(np.mean(ranks)), queries=int(ranks.size))


def _check(similarity: np.ndarray, video_of_text: Sequence[int] | np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(similarity)
    if scores.ndim != 2 or 0 in scores.shape:
        raise MetricsError(f"the similarity matrix must be (texts, videos), "
                           f"got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise MetricsError("the similarity matrix holds NaN or infinite scores")
    owner = np.asarray(video_of_text)
    if owner.shape != (scores.shape[0],) or not np.issubdtype(owner.dtype, np.integer):
        raise MetricsError(f"expected one integer video index per text ({scores.shape[0]}), "
                           f"got an array of shape {owner.shape} and type {owner.dtype}")
    if owner.min() < 0 or owner.max() >= scores.shape[1]:
        raise MetricsError(f"video indices must lie in [0, {scores.shape[1]}), "
                           f"got {owner.min()}..{owner.max()}")
    return scores, owner


def text_to_video_ranks(similarity: np.ndarray, video_of_text: Sequence[int] | np.ndarray
                        ) -> np.ndarray:
    """1-based rank of each text's own video among all videos (ties counted against it)."""
    scores, owner = _check(similarity, video_of_text)
    ranks = np.empty(len(owner), dtype=np.int64)
    for lo in range(0, len(owner), _ROW_CHUNK):
        rows = scores[lo:lo + _ROW_CHUNK]
        right = rows[np.arange(len(rows)), owner[lo:lo + _ROW_CHUNK]]
        # every candidate scoring >= the right one, the right one included once: 1 + wrong ones
        ranks[lo:lo + _ROW_CHUNK] = np.sum(rows >= right[:, None], axis=1)
    return ranks


def video_to_text_ranks(similarity: np.ndarray, video_of_text: Sequence[int] | np.ndarray
                        ) -> np.ndarray:
    """1-based rank, per video that has a caption, of its best-scored own caption among all
    captions; other own captions never count against it, wrong ones scoring equal do."""
    scores, owner = _check(similarity, video_of_text)
    by_video = scores.T  # (videos, texts)
    queries = np.unique(owner)
    ranks = np.empty(len(queries), dtype=np.int64)
    for lo in range(0, len(queries), _ROW_CHUNK):
        videos = queries[lo:lo + _ROW_CHUNK]
        rows = by_video[videos]
        own = owner[None, :] == videos[:, None]
        best = np.where(own, rows, -np.inf).max(axis=1)
        wrong_at_least = np.sum((rows >= best[:, None]) & ~own, axis=1)
        ranks[lo:lo + _ROW_CHUNK] = 1 + wrong_at_least
    return ranks


def retrieval_metrics(similarity: np.ndarray, video_of_text: Sequence[int] | np.ndarray, *,
                      name: str = "custom") -> RetrievalResult:
    """Text-to-video and video-to-text R@1/5/10, median and mean rank, with the protocol.

    `similarity[i, j]` scores text i against video j; `video_of_text[i]` is text i's video.
    Videos without a caption are candidates of the text queries but not video queries.
    """
    scores, owner = _check(similarity, video_of_text)
    counts = np.bincount(owner, minlength=scores.shape[1])
    captioned = counts[counts > 0]
    protocol = Protocol(name=name, texts=scores.shape[0], videos=scores.shape[1],
                        captions_per_video=(int(captioned.min()), int(captioned.max())),
                        video_queries=int(captioned.size))
    return RetrievalResult(t2v=rank_metrics(text_to_video_ranks(scores, owner)),
                           v2t=rank_metrics(video_to_text_ranks(scores, owner)),
                           protocol=protocol)


# ---------------------------------------------------------------------------------------------
# which texts and videos: a manifest's captions, or MSR-VTT 1k-A


@dataclass(frozen=True)
class RetrievalSet:
    """The videos to embed, the captions to embed, and which video each caption belongs to."""

    name: str
    videos: list[VideoRecord]
    texts: list[str]
    video_of_text: list[int]


def caption_set(records: Iterable[VideoRecord], *, name: str = "custom") -> RetrievalSet:
    """Every caption of every record is a query; its record is its video."""
    videos, texts, owner = [], [], []
    for record in records:
        for caption in record.captions:
            texts.append(caption)
            owner.append(len(videos))
        videos.append(record)
    if not texts:
        raise DatasetError(f"{name}: no captions to use as retrieval queries")
    return RetrievalSet(name, videos, texts, owner)


@dataclass(frozen=True)
class RetrievalPair:
    """One row of MSRVTT_JSFUSION_test.csv."""

    key: str
    video_id: str
    sentence: str


def _csv_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file (MSR-VTT 1k-A needs {MSRVTT_1KA_FILE})") from None
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not UTF-8 text ({err.reason})") from None


def _pair(row: list[str], path: Path, lineno: int) -> RetrievalPair:
    if len(row) != len(MSRVTT_1KA_COLUMNS):
        raise ManifestError(f"{path}:{lineno}: expected {len(MSRVTT_1KA_COLUMNS)} fields "
                            f"({','.join(MSRVTT_1KA_COLUMNS)}), got {len(row)}")
    key, _, video_id, sentence = (field.strip() for field in row)
    if not key or not sentence:
        raise ManifestError(f"{path}:{lineno}: empty {'key' if not key else 'sentence'}")
    if not _MSRVTT_ID.fullmatch(video_id):
        raise ManifestError(f"{path}:{lineno}: video_id must look like video123, got {video_id!r}")
    return RetrievalPair(key, video_id, sentence)


def read_msrvtt_1k_a(path: str | Path) -> list[RetrievalPair]:
    """The (key, video id, sentence) rows of MSRVTT_JSFUSION_test.csv, in file order."""
    path = Path(path)
    rows = csv.reader(io.StringIO(_csv_text(path), newline=""))
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header) != MSRVTT_1KA_COLUMNS:
        raise ManifestError(f"{path}: expected the header {','.join(MSRVTT_1KA_COLUMNS)}, "
                            f"got {','.join(header) if header else 'an empty file'}")
    pairs, keys = [], set()
    for lineno, row in enumerate(rows, start=2):
        if not any(field.strip() for field in row):
            continue
        pair = _pair(row, path, lineno)
        if pair.key in keys:
            raise ManifestError(f"{path}:{lineno}: key {pair.key!r} appears twice")
        keys.add(pair.key)
        pairs.append(pair)
    if not pairs:
        raise ManifestError(f"{path}: no rows after the header")
    return pairs


def select_msrvtt_1k_a(records: Iterable[VideoRecord], pairs: Sequence[RetrievalPair], *,
                       allow_missing: bool = False) -> RetrievalSet:
    """The 1k-A protocol over an MSR-VTT manifest: each pair's sentence is the only query of
    its video (the manifest's own captions are not used); videos in the pairs' order.

    A pair whose video is not in the manifest is an error naming how many and a few, unless
    `allow_missing` (then the set is smaller, and its name says 'N of M videos').
    """
    by_id = {record.video_id: record for record in records}
    missing = [pair.video_id for pair in pairs if pair.video_id not in by_id]
    if missing and not allow_missing:
        raise DatasetError(f"{len(missing)} of the {len(pairs)} MSR-VTT 1k-A videos are not in "
                           f"the manifest (e.g. {', '.join(missing[:3])})")
    videos: list[VideoRecord] = []
    index: dict[str, int] = {}
    texts, owner = [], []
    for pair in pairs:
        if pair.video_id not in by_id:
            continue
        if pair.video_id not in index:
            index[pair.video_id] = len(videos)
            videos.append(by_id[pair.video_id])
        texts.append(pair.sentence)
        owner.append(index[pair.video_id])
    if not texts:
        raise DatasetError("none of the MSR-VTT 1k-A videos are in the manifest")
    name = "msrvtt-1k-A" if not missing else f"msrvtt-1k-A ({len(videos)} of "\
        f"{len({p.video_id for p in pairs})} videos)"
    return RetrievalSet(name, videos, texts, owner)


# ---------------------------------------------------------------------------------------------
# precision@k of ranked lists (the Shapes attribute match lives in shapes_precision_at_k)


def precision_at_k(ranked: Sequence[str], relevant: Collection[str] | Callable[[str], bool],
                   k: int) -> float:
    """Share of the first k ranked ids that are relevant (a set of ids or a predicate).

    When fewer than k ids are ranked, the share is over those there are (the top k of a
    collection of 5 is its 5); an empty ranking is an error.
    """
    if k < 1:
        raise MetricsError(f"precision@k needs k >= 1, got {k}")
    top = list(ranked[:k])
    if not top:
        raise MetricsError("precision@k of an empty ranking")
    is_relevant = relevant if callable(relevant) else relevant.__contains__
    return sum(1 for video_id in top if is_relevant(video_id)) / len(top)


def shapes_match(query: str, clip: ClipAttributes) -> bool:
    """Whether a Shapes clip shows what a query caption asks for.

    Each object the query names must be a different object of the clip agreeing on every
    attribute the query names (colour, shape, motion); an attribute the query leaves out
    ("a circle moves left") matches any. A clip may hold more objects than the query names.
    """
    wanted = parse_caption(query)
    if not wanted:
        raise MetricsError(f"the query {query!r} names no Shapes colour, shape or motion")
    for objects in itertools.permutations(clip.objects, len(wanted)):
        if all(want is None or want == have
               for triple, obj in zip(wanted, objects)
               for want, have in zip(triple, (obj.colour, obj.shape, obj.motion))):
            return True
    return False


@dataclass(frozen=True)
class ShapesPrecision:
    """Precision@k of attribute matches, with what the candidates allow."""

    precision: float
    """Mean share of the top k that match (`shapes_precision_at_k`)."""
    ceiling: float
    """The best precision@k any ranking could get: mean of min(k, matching) / k (k at most the
    candidates). On a split
    where few clips match a query (400 Shapes test clips: a median of 4 per seen-pair query)
    it is far below 1."""
    attainable: float
    """Mean share of the top n that match, n = min(k, the candidates matching the query): 1 for
    a ranking that puts every match first, whatever the split's size."""


def shapes_precision_detail(queries: Sequence[str], rankings: Sequence[Sequence[str]],
                            candidates: Sequence[str], attributes: Mapping[str, ClipAttributes],
                            k: int) -> ShapesPrecision:
    """`shapes_precision_at_k`, its ceiling over `candidates` (every video a query could be
    given), and precision over the attainable top min(k, matching)."""
    precision = shapes_precision_at_k(queries, rankings, attributes, k)
    missing = [v for v in candidates if v not in attributes]
    if missing:
        raise MetricsError(f"{len(missing)} candidate videos have no Shapes attributes "
                           f"(e.g. {min(missing)})")
    ceilings, attained = [], []
    shown = min(k, len(candidates))  # precision@k of fewer candidates is over those there are
    for query, ranked in zip(queries, rankings):
        matching = sum(shapes_match(query, attributes[v]) for v in candidates)
        n = min(k, matching)
        ceilings.append(n / shown)
        if n:
            attained.append(sum(shapes_match(query, attributes[v]) for v in ranked[:n]) / n)
    return ShapesPrecision(precision, float(np.mean(ceilings)),
                           float(np.mean(attained)) if attained else float("nan"))


def shapes_precision_at_k(queries: Sequence[str], rankings: Sequence[Sequence[str]],
                          attributes: Mapping[str, ClipAttributes], k: int) -> float:
    """Mean over queries of precision@k, a ranked video being right when `shapes_match`."""
    if len(queries) != len(rankings) or not queries:
        raise MetricsError(f"expected one ranking per query, got {len(queries)} queries and "
                           f"{len(rankings)} rankings")
    unknown = {v for ranked in rankings for v in ranked[:k] if v not in attributes}
    if unknown:
        raise MetricsError(f"{len(unknown)} ranked videos have no Shapes attributes "
                           f"(e.g. {min(unknown)})")
    shares = [precision_at_k(ranked, lambda v, q=query: shapes_match(q, attributes[v]), k)
              for query, ranked in zip(queries, rankings)]
    return float(np.mean(shares))
