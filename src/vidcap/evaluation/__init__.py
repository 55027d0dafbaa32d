"""Evaluation: coco-caption metrics (`score_captions`) and scoring of prediction files."""

from vidcap.evaluation.metrics import METRIC_KEYS, Scores, clean_caption, score_captions
from vidcap.evaluation.score import (format_table, load_predictions, load_references, match_ids,
                                     score_files)

__all__ = ["METRIC_KEYS", "Scores", "clean_caption", "score_captions", "format_table",
           "load_predictions", "load_references", "match_ids", "score_files"]
