"""Caption video files with a trained model (`vidcap caption`): folders, bad files, WebVTT.

A file that cannot be read gets an error result and the others are still captioned; the caller
decides the exit status. `write_vtt` writes a WebVTT file beside the video with one cue spanning
the clip, so players and screen readers can show or speak the description.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vidcap.config import GenerateConfig, VideoConfig
from vidcap.errors import VideoError
from vidcap.video import load_clip, probe_video

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg",
                              ".wmv", ".flv", ".3gp", ".ogv", ".ts"})


@dataclass
class CaptionResult:
    path: Path
    caption: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, and every video file (by extension) directly inside a given folder.

    Paths that do not exist are kept, so that the captioning step reports them like bad files.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.iterdir()
                                if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS))
        else:
            found.append(item)
    return found


def caption_files(model: torch.nn.Module, paths: Sequence[Path], video_cfg: VideoConfig,
                  gen: GenerateConfig, *, device: str | torch.device = "cpu",
                  ) -> Iterator[CaptionResult]:
    """Caption `paths` in batches of `gen.batch_size`, yielding one result per path, in order."""
    for start in range(0, len(paths), gen.batch_size):
        chunk = paths[start:start + gen.batch_size]
        results = [CaptionResult(p) for p in chunk]
        clips, where = [], []
        for i, path in enumerate(chunk):
            try:
                clips.append(load_clip(path, video_cfg))
                where.append(i)
            except VideoError as err:
                results[i].error = str(err)
        if clips:
            with torch.no_grad():
                texts = model.generate(torch.stack(clips).to(device), gen)
            for i, text in zip(where, texts):
                results[i].caption = text
        yield from results


def _timestamp(seconds: float) -> str:
    millis = int(round(max(0.0, seconds) * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def vtt_text(caption: str, duration: float) -> str:
    """A WebVTT document with one cue from 0 to `duration` seconds."""
    cue = " ".join(caption.split()) or "(no description)"
    return f"WEBVTT\n\n1\n{_timestamp(0.0)} --> {_timestamp(duration)}\n{cue}\n"


def write_vtt(video: Path, caption: str) -> Path:
    """Write `<video stem>.vtt` beside the video, spanning the whole clip."""
    duration = probe_video(video).duration
    out = video.with_suffix(".vtt")
    out.write_text(vtt_text(caption, duration), encoding="utf-8")
    return out
