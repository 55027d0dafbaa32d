"""Reading Shapes results back: what captions say, how right they are, where attention looks.

Everything that judges a model on the Shapes world (`vidcap.data.shapes` renders it and records
each clip's objects in attributes.jsonl):

- `parse_caption`: (colour, shape, motion) of each object a caption describes;
- `attribute_accuracy`: colour / shape / motion / all-three accuracy per object, seen and
  held-out (colour, shape) pairs apart; `direction_accuracy`: left vs right, up vs down, grows
  vs shrinks (does the model use the order of frames?); both match objects by `match_objects`;
- `peak_report`: how often the attention peak of each sampled frame lies on the object.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from vidcap.data.shapes import COLOURS, HELD_OUT_PAIRS, ClipAttributes, ShapeObject
from vidcap.errors import MetricsError
from vidcap.video import read_clip
from vidcap.visualize import Method, attention_maps, attention_peaks

# ---------------------------------------------------------------------------------------------
# captions


_SHAPE_WORDS = {
    "circle": "circle", "circles": "circle", "disc": "circle", "disk": "circle", "ball": "circle",
    "dot": "circle", "square": "square", "squares": "square", "box": "square", "block": "square",
    "triangle": "triangle", "triangles": "triangle",
}
_MOTION_WORDS = {
    "left": "left", "leftward": "left", "leftwards": "left",
    "right": "right", "rightward": "right", "rightwards": "right",
    "up": "up", "upward": "up", "upwards": "up", "rises": "up", "rising": "up", "rise": "up",
    "ascends": "up", "ascending": "up", "climbs": "up", "climbing": "up",
    "down": "down", "downward": "down", "downwards": "down", "falls": "down", "falling": "down",
    "fall": "down", "descends": "down", "descending": "down", "drops": "down", "sinks": "down",
    "grows": "grows", "grow": "grows", "growing": "grows", "bigger": "grows", "larger": "grows",
    "expands": "grows", "expanding": "grows", "enlarges": "grows", "swells": "grows",
    "shrinks": "shrinks", "shrink": "shrinks", "shrinking": "shrinks", "smaller": "shrinks",
    "contracts": "shrinks", "contracting": "shrinks",
}
_DESTINATION = re.compile(r"\b(?:to|toward|towards)\s+(?:the\s+)?(left|right|top|bottom)\b")
_SIDE_TO_MOTION = {"left": "left", "right": "right", "top": "up", "bottom": "down"}
_OBJECT_SEPARATOR = re.compile(r"\s*(?:\band\b|\bwhile\b|,|;)\s*")

Triple = tuple[str | None, str | None, str | None]


def _parse_part(text: str) -> Triple:
    words = re.findall(r"[a-z]+", text)
    colour = next((w for w in words if w in COLOURS), None)
    shape = next((_SHAPE_WORDS[w] for w in words if w in _SHAPE_WORDS), None)
    destination = _DESTINATION.search(text)
    if destination:
        motion = _SIDE_TO_MOTION[destination.group(1)]
    else:
        motion = next((_MOTION_WORDS[w] for w in words if w in _MOTION_WORDS), None)
    return colour, shape, motion


def parse_caption(text: str) -> list[Triple]:
    """(colour, shape, motion) of each object a caption describes, None where it says nothing.

    Objects are separated by "and", "while", commas or semicolons; a piece that names no colour
    and no shape ("... gets bigger and bigger") belongs to the object before it. Destinations win
    over other direction words ("from right to left" is left).
    """
    objects: list[Triple] = []
    for part in _OBJECT_SEPARATOR.split(text.lower()):
        colour, shape, motion = _parse_part(part)
        if colour is None and shape is None and objects:
            c, s, m = objects[-1]
            objects[-1] = (c, s, m or motion)
        elif colour or shape or motion:
            objects.append((colour, shape, motion))
    return objects


def _agreement(obj: ShapeObject, guess: Triple | None) -> tuple[bool, bool, bool]:
    if guess is None:
        return False, False, False
    return guess[0] == obj.colour, guess[1] == obj.shape, guess[2] == obj.motion


def match_objects(objects: Sequence[ShapeObject], caption: str
                  ) -> list[tuple[ShapeObject, Triple | None]]:
    """Each true object with the object of the caption it is matched to (None: unmatched).

    Of a clip with K objects, the first K objects the caption names are matched one-to-one to
    the true objects so that the number of agreeing attributes is largest (a caption naming
    extra objects gains nothing from them); a true object left unmatched is wrong on everything.
    """
    guesses: list[Triple | None] = list(parse_caption(caption)[:len(objects)])
    guesses += [None] * (len(objects) - len(guesses))
    best = max(itertools.permutations(guesses), key=lambda order: sum(
        sum(_agreement(o, g)) for o, g in zip(objects, order)))
    return list(zip(objects, best))


def _group(obj: ShapeObject) -> str:
    return "held_out" if (obj.colour, obj.shape) in HELD_OUT_PAIRS else "seen"


def attribute_accuracy(predictions: Mapping[str, str], attributes: Mapping[str, ClipAttributes]
                       ) -> dict[str, dict[str, Any]]:
    """Colour, shape, motion and all-three accuracy of predicted captions, per object.

    Objects are matched to those the caption names by `match_objects`, and grouped by their own
    (colour, shape) pair: "seen" or "held_out". Rates are None when a group is empty; `n` counts
    objects.
    """
    tallies = {group: dict.fromkeys(("colour", "shape", "motion", "all", "n"), 0)
               for group in ("seen", "held_out")}
    for video_id, caption in predictions.items():
        clip = attributes.get(video_id)
        if clip is None:
            raise MetricsError(f"prediction for {video_id!r}, which has no Shapes attributes")
        for obj, guess in match_objects(clip.objects, caption):
            colour, shape, motion = _agreement(obj, guess)
            tally = tallies[_group(obj)]
            tally["n"] += 1
            tally["colour"] += colour
            tally["shape"] += shape
            tally["motion"] += motion
            tally["all"] += colour and shape and motion
    return {group: {key: (t[key] / t["n"] if t["n"] else None) if key != "n" else t["n"]
                    for key in t} for group, t in tallies.items()}


AXES: dict[str, tuple[str, str]] = {"left/right": ("left", "right"), "up/down": ("up", "down"),
                                    "grows/shrinks": ("grows", "shrinks")}
"""The motions that differ only in the order of frames, by axis."""


def direction_accuracy(predictions: Mapping[str, str], attributes: Mapping[str, ClipAttributes]
                       ) -> dict[str, dict[str, dict[str, Any]]]:
    """Telling left from right, up from down, grows from shrinks, read from the captions.

    Objects are matched as `attribute_accuracy` matches them (`match_objects`). For each axis,
    among the objects whose true motion lies on it: `objects`, `on_axis` (the caption's motion is
    on the same axis: either direction), `correct` (it is the true direction), `accuracy` =
    correct / on_axis (chance is 0.5 for a model that knows the axis but not the order of frames;
    None when on_axis is 0), `axis_rate` = on_axis / objects. Groups: all, seen, held-out pairs.
    Predictions of videos without attributes are left out.
    """
    counts = {g: {axis: [0, 0, 0] for axis in AXES} for g in ("all", "seen", "held_out")}
    axis_of = {m: axis for axis, pair in AXES.items() for m in pair}
    for video_id, caption in predictions.items():
        clip = attributes.get(video_id)
        if clip is None:
            continue
        for obj, guess in match_objects(clip.objects, caption):
            axis = axis_of.get(obj.motion)
            if axis is None:
                continue
            said = guess[2] if guess is not None else None
            for g in ("all", _group(obj)):
                tally = counts[g][axis]
                tally[0] += 1
                tally[1] += said in AXES[axis]
                tally[2] += said == obj.motion
    return {g: {axis: {"objects": n, "on_axis": on, "correct": ok,
                       "accuracy": ok / on if on else None, "axis_rate": on / n if n else None}
                for axis, (n, on, ok) in axes.items()} for g, axes in counts.items()}


# ---------------------------------------------------------------------------------------------
# attention peaks against the objects' boxes


def box_in_model_pixels(box: list[float] | tuple[float, ...], clip_hw: tuple[int, int],
                        image_size: int) -> tuple[float, float, float, float]:
    """A clip box [x0, y0, x1, y1] (pixels of the decoded clip) in pixels of the model's input:
    the same shorter-side resize and centre crop as `video.crop_frames`."""
    h, w = clip_hw
    scale = image_size / min(h, w)
    size = (max(image_size, round(h * scale)), max(image_size, round(w * scale)))
    top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    sy, sx = size[0] / h, size[1] / w
    x0, y0, x1, y1 = box
    return x0 * sx - left, y0 * sy - top, x1 * sx - left, y1 * sy - top


def patch_hits(peak: tuple[int, int], box: tuple[float, float, float, float],
               patch: int) -> tuple[bool, bool]:
    """(centre, overlap): whether the patch's centre lies inside the box, and whether the patch
    and the box share area."""
    row, col = peak
    x0, y0, x1, y1 = box
    cx, cy = (col + 0.5) * patch, (row + 0.5) * patch
    centre = x0 <= cx < x1 and y0 <= cy < y1
    overlap = min(x1, (col + 1) * patch) > max(x0, col * patch) and \
        min(y1, (row + 1) * patch) > max(y0, row * patch)
    return centre, overlap


@dataclass
class PeakReport:
    """How often the attention peak lies on the object, over frames of Shapes clips."""

    frames: int = 0
    centre: int = 0
    """Frames whose peak patch has its centre inside the object's box (what the upsampled heat
    map shows: bilinear upsampling peaks at patch centres)."""
    overlap: int = 0
    """Frames whose peak patch overlaps the object's box."""
    chance_centre: float = 0.0
    """Sum over frames of the fraction of patches meeting the centre rule (a random peak's
    expected hits)."""
    chance_overlap: float = 0.0
    mass_overlap: float = 0.0
    """Sum over frames of the attention mass on the patches that overlap the box (compare with
    chance_overlap: what a uniform map puts there)."""
    per_clip: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """video_id -> peak (row, col) per sampled frame."""

    def rates(self) -> dict[str, float]:
        n = max(1, self.frames)
        return {"centre": self.centre / n, "overlap": self.overlap / n,
                "chance_centre": self.chance_centre / n, "chance_overlap": self.chance_overlap / n,
                "mass_overlap": self.mass_overlap / n}


def peak_report(model: nn.Module, records: list, attributes: dict, *, layer: int | None = None,
                method: Method = "mean") -> PeakReport:
    """Measure, over the sampled frames of Shapes `records` with one object each, where the
    attention peak falls relative to that object's box (`ClipAttributes.objects[0].bboxes`,
    indexed by the frame numbers `read_sampled` reports, mapped into the model's input)."""
    video_cfg = model.video_cfg
    encoder = model.encoder
    grid, patch = encoder.grid, encoder.image_size // encoder.grid
    report = PeakReport()
    for record in records:
        clip = attributes[record.video_id]
        if len(clip.objects) != 1:
            continue
        clip_in = read_clip(record.video_path, video_cfg, start=record.start, end=record.end)
        sampled = clip_in.sampled
        maps = attention_maps(model, clip_in.pixels, layer=layer, method=method)
        peaks = attention_peaks(maps, grid)
        report.per_clip[record.video_id] = peaks
        for index, peak, frame_map in zip(sampled.indices, peaks, maps):
            box = box_in_model_pixels(clip.objects[0].bboxes[index], sampled.frames.shape[1:3],
                                      video_cfg.image_size)
            centre, overlap = patch_hits(peak, box, patch)
            report.frames += 1
            report.centre += centre
            report.overlap += overlap
            cells = [patch_hits((r, c), box, patch) for r in range(grid) for c in range(grid)]
            report.chance_centre += sum(c for c, _ in cells) / len(cells)
            report.chance_overlap += sum(o for _, o in cells) / len(cells)
            report.mass_overlap += float(sum(w for w, (_, o) in zip(frame_map.tolist(), cells)
                                             if o))
    return report
