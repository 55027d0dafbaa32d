"""Captions with times as subtitle files: WebVTT (what an HTML5 `<track>` plays and screen readers
speak), SRT, JSON (`[{start, end, caption}]`) and timestamped text; and writing them without ever
destroying anything.

Times are seconds from the video's first frame; segment boundaries sit on frame times, and the
millisecond timestamps of VTT and SRT round to the nearest millisecond, so each names its frame
exactly at any frame rate under 500 fps.

Where a video's subtitle file goes (`SubtitleWriter.target`): beside the video, or in an output
folder (mirroring the sub-folders of an input folder), named `<stem>.<ext>` as players expect
(`a.mp4` -> `a.vtt`); when another video shares the stem (`a.avi` beside `a.mp4`) or the video
itself has the subtitle's extension (a video named `movie.vtt`), the whole name is kept
(`a.mp4.vtt`, `movie.vtt.vtt`), so distinct inputs never map to one name. Before writing, the
target is checked by `vidcap.files.check_output`, the rules of every output: never a symbolic
link (nothing is written through one, nor over one), never something other than a regular file,
never the video itself nor a file that looks like media (binary), never a file written for
another input of this run, and never an existing file vidcap did not write unless `overwrite`
(WebVTT files carry a `NOTE written by vidcap` line; SRT, JSON and text have no place for a mark,
so an existing one is replaced only when it already holds exactly the new content, which leaves
it as it is). Files are written atomically (`vidcap.files.atomic_path`).
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from vidcap.captioning.segments import Cue
from vidcap.files import OutputError, check_output, write_text
from vidcap.video import VIDEO_EXTENSIONS

SUBTITLE_FORMATS = {"vtt": ".vtt", "srt": ".srt", "json": ".json", "text": ".txt"}
"""Per-video file formats and their extensions."""
VTT_MARK = "NOTE written by vidcap"
EMPTY_CAPTION = "(no description)"


def timestamp(seconds: float, separator: str = ".") -> str:
    """`HH:MM:SS.mmm` (SRT: separator `,`), rounded to the millisecond."""
    millis = int(round(max(0.0, seconds) * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def safe_text(text: str) -> str:
    """`text` that any file can hold: a lone surrogate (half of a character, or a byte a decoder
    could not read) becomes U+FFFD. What JSON files hold."""
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return text
    return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def caption_line(text: str) -> str:
    """A caption as a cue of VTT, SRT or timestamped text holds it (the normalisation these
    files make): `safe_text`, control characters (NUL, ESC, DEL, ...) dropped, every run of
    white space or line breaks one space, no space at either end; nothing left ->
    "(no description)". VTT then escapes `&`, `<` and `>` as `&amp;`, `&lt;`, `&gt;`."""
    text = safe_text(text)
    if any(unicodedata.category(ch) == "Cc" and not ch.isspace() for ch in text):
        text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc")
    return " ".join(text.split()) or EMPTY_CAPTION


def vtt_text(cues: Sequence[Cue]) -> str:
    """A WebVTT document, one numbered cue per caption (text escaped: `&`, `<`, `>`)."""
    blocks = ["WEBVTT", VTT_MARK]
    for number, cue in enumerate(cues, start=1):
        text = caption_line(cue.text)
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        blocks.append(f"{number}\n{timestamp(cue.start)} --> {timestamp(cue.end)}\n{text}")
    return "\n\n".join(blocks) + "\n"


def srt_text(cues: Sequence[Cue]) -> str:
    """A SubRip document, one numbered cue per caption."""
    return "".join(f"{n}\n{timestamp(c.start, ',')} --> {timestamp(c.end, ',')}\n"
                   f"{caption_line(c.text)}\n\n" for n, c in enumerate(cues, start=1))


def cue_objects(cues: Sequence[Cue]) -> list[dict]:
    """`[{start, end, caption}]`, seconds rounded to the microsecond, captions `safe_text`."""
    return [{"start": round(c.start, 6), "end": round(c.end, 6), "caption": safe_text(c.text)}
            for c in cues]


def json_text(cues: Sequence[Cue]) -> str:
    """`cue_objects` as a JSON document."""
    return json.dumps(cue_objects(cues), indent=2, ensure_ascii=False) + "\n"


def timed_text(cues: Sequence[Cue]) -> str:
    """One line per cue: `START --> END<TAB>caption`."""
    return "".join(f"{timestamp(c.start)} --> {timestamp(c.end)}\t{caption_line(c.text)}\n"
                   for c in cues)


RENDERERS = {"vtt": vtt_text, "srt": srt_text, "json": json_text, "text": timed_text}


def render(cues: Sequence[Cue], fmt: str) -> str:
    """The document of `cues` in `fmt` (one of `SUBTITLE_FORMATS`)."""
    return RENDERERS[fmt](cues)


# ---------------------------------------------------------------------------------------------
# where, and whether, to write


def _shares_stem(video: Path) -> bool:
    """Whether another file in the video's folder has its stem and a video extension (or none)."""
    stem = video.stem
    names = {stem} | {stem + ext for ext in VIDEO_EXTENSIONS} | \
        {stem + ext.upper() for ext in VIDEO_EXTENSIONS}
    return any((video.parent / name).exists() for name in names - {video.name})


class SubtitleWriter:
    """Writes one subtitle file per video, safely (see the module's docstring)."""

    def __init__(self, fmt: str, out_dir: Path | None = None, *,
                 roots: Sequence[Path] = (), overwrite: bool = False,
                 file: Path | None = None) -> None:
        """Files beside each video, or in `out_dir` (sub-folders of the input folders `roots`
        mirrored), or, for a single video, `file`."""
        if fmt not in SUBTITLE_FORMATS:
            raise ValueError(f"unknown subtitle format {fmt!r}")
        self.fmt, self.suffix = fmt, SUBTITLE_FORMATS[fmt]
        self.out_dir, self.overwrite, self.file = out_dir, overwrite, file
        self.roots = [Path(os.path.abspath(r)) for r in roots]
        self.written: dict[str, str] = {}
        """Targets written in this run -> the video each was written for."""

    def target(self, video: Path) -> Path:
        """Where the subtitles of `video` go."""
        if self.file is not None:
            return self.file
        name = video.stem + self.suffix
        if video.suffix.lower() == self.suffix or _shares_stem(video):
            name = video.name + self.suffix
        if self.out_dir is None:
            return video.with_name(name)
        return self.out_dir / self._relative_folder(video) / name

    def _relative_folder(self, video: Path) -> Path:
        folder = Path(os.path.abspath(video.parent))
        for root in self.roots:
            if folder == root or root in folder.parents:
                return folder.relative_to(root)
        return Path()

    def write(self, video: Path, cues: Sequence[Cue]) -> Path:
        """Write the subtitles of `video`; OutputError (naming the file) when that would destroy
        something."""
        target = self.target(video)
        text = render(cues, self.fmt)
        key = os.path.abspath(target)
        if key in self.written:
            raise OutputError(f"{target}: already written in this run for {self.written[key]}; "
                              f"not overwriting it with the subtitles of {video}")
        if self._is_unchanged(target, video, text):
            self.written[key] = str(video)
            return target
        write_text(target, text)
        self.written[key] = str(video)
        return target

    def _is_unchanged(self, target: Path, video: Path, text: str) -> bool:
        """Checks the target (`vidcap.files.check_output`: its own files are the VTT files with
        vidcap's mark and files that already hold `text`): True when it already holds `text`;
        OutputError when it may not be replaced; False when it may."""
        def own(path: Path) -> bool:
            with path.open("rb") as f:
                head = f.read(len(text.encode("utf-8")) + 1)
            existing = head.decode("utf-8", errors="replace")
            return existing == text or existing.startswith(f"WEBVTT\n\n{VTT_MARK}\n")

        check_output(target, inputs=[video], overwrite=self.overwrite, own=own)
        return target.is_file() and target.read_bytes() == text.encode("utf-8")
