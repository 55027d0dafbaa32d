"""Captions as subtitles: WebVTT files that players show and screen readers speak."""

from __future__ import annotations

from pathlib import Path

from vidcap.files import write_text
from vidcap.video import probe_video


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
    return write_text(video.with_suffix(".vtt"), vtt_text(caption, duration))
