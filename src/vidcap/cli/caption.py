"""Commands that run a trained model on videos: `vidcap caption` and `vidcap attention`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vidcap.cli.common import Subparsers, add_decode_options, add_run, decode_overrides
from vidcap.errors import VidcapError

if TYPE_CHECKING:  # building the parser imports nothing heavy
    from vidcap.captioning.frames import SegmentRequest

FORMATS = ("text", "json", "jsonl", "vtt", "srt")
OUTPUTS = """\
what is written, and where (--format FORMAT, --out PATH):
  text   on stdout, a line per video: PATH<TAB>caption; a video cut into segments gives a
         line per cue: PATH<TAB>START --> END<TAB>caption. (default)
  json   on stdout, one JSON array of results {path, caption, segments, error, seconds}.
  jsonl  JSON Lines, a result a line as soon as each video is done: on stdout, or appended
         to --out FILE.jsonl (the default format when FILE ends in .jsonl). Run again with
         the same --out to resume: videos already there are skipped, a line cut short by a
         kill is done again. Under torchrun each process appends to a part of its own and
         the parts are merged in input order at the end.
  vtt    WebVTT subtitles, a cue per segment (neighbours with the same caption merged):
  srt    SubRip, the same cues. One file per video, beside it (a.mp4 -> a.vtt; a.mp4.vtt
         when another video shares the stem), or in --out DIR.
  text, json with --out DIR: one file per video, timestamped lines (NAME.txt) or the cues
         [{start, end, caption}] (NAME.json).
  With a single video file, --out FILE.vtt (.srt, .json, .txt) writes that file, and --out -
  prints the document. Times are seconds from the video's first frame, on frame times.
  Subtitle files are never written through a symbolic link, over an input or a media file,
  nor over a file vidcap did not write unless --overwrite.

segments (--segments MODE): auto (default) captions a video longer than twice the run's
training clips shot by shot, long shots split into parts of about a clip, and shorter videos
whole; shots: one caption per shot; fixed: windows of --window s every --stride s; none: the
whole video. Under torchrun (torchrun --nproc_per_node N [--nnodes M ...] -m vidcap caption
...) the inputs are shared out among the processes; write --out FILE.jsonl or subtitle files
(with several nodes, on a folder they all see, as the inputs).

exit status: 0 when every video was captioned, 1 when some could not be (or only in part:
each gets an error line naming the file), 2 on bad usage or input."""


def add_parsers(sub: Subparsers) -> None:
    _add_caption(sub)
    _add_attention(sub)


def add_segment_options(p: argparse.ArgumentParser) -> None:
    """--segments, --window, --stride (`vidcap caption`, `vidcap evaluate --long`)."""
    g = p.add_argument_group("segments of long videos")
    g.add_argument("--segments", choices=("auto", "shots", "fixed", "none"), default="auto",
                   help="how to cut videos into captioned segments (default auto)")
    g.add_argument("--window", type=float, default=None, metavar="S",
                   help="fixed: window length in seconds (default: the run's clip length)")
    g.add_argument("--stride", type=float, default=None, metavar="S",
                   help="fixed: seconds from one window's start to the next (default: --window)")


def add_pipeline_options(p: argparse.ArgumentParser) -> None:
    """--workers (`vidcap caption`, `vidcap evaluate`)."""
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes decoding upcoming videos while the model captions "
                        "(default: the cores less one, at most 8; 0: decode in turn)")


def _add_caption(sub: Subparsers) -> None:
    p = sub.add_parser("caption", help="caption videos with a trained run",
                       description="Caption video files, folders of videos and lists of paths "
                                   "with a trained run; long videos segment by segment.",
                       epilog=OUTPUTS, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run(p)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="video files or folders of videos")
    p.add_argument("--from-list", metavar="FILE", default=None,
                   help="also the paths listed in FILE, one a line, read as it goes (- reads "
                        "standard input; relative paths are relative to the current folder)")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="look for videos in the sub-folders of folder inputs too")
    out = p.add_argument_group("output (see below)")
    out.add_argument("--format", choices=FORMATS, default=None, help="what to write")
    out.add_argument("--out", default=None, metavar="PATH",
                     help="FILE.jsonl (results), DIR (a file per video), FILE (one video) or -")
    out.add_argument("--overwrite", action="store_true",
                     help="replace existing subtitle files that vidcap did not write")
    add_segment_options(p)
    add_pipeline_options(p)
    add_decode_options(p)
    p.set_defaults(func=_cmd_caption)


@dataclass
class Output:
    """Where `vidcap caption` writes: stdout, a results log, or subtitle files."""

    fmt: str
    kind: str
    """stdout, log (FILE.jsonl), files (one per video: beside it or in `path`), file (one)."""
    path: Path | None = None


_EXTENSIONS = {".vtt": "vtt", ".srt": "srt", ".json": "json", ".txt": "text", ".jsonl": "jsonl"}


def plan_output(fmt: str | None, out: str | None, inputs: list[str], from_list: str | None
                ) -> Output:
    """The output `--format` and `--out` ask for (VidcapError when they do not fit)."""
    single = from_list is None and len(inputs) == 1 and not Path(inputs[0]).is_dir()
    suffix = Path(out).suffix.lower() if out not in (None, "-") else ""
    guessed = _EXTENSIONS.get(suffix) if (suffix == ".jsonl" or single) else None
    fmt = fmt or guessed or "text"
    if out == "-" or (out is None and fmt in ("text", "json", "jsonl")):
        if fmt in ("vtt", "srt") and not single:
            raise VidcapError(f"--format {fmt} on standard output takes one video file")
        return Output(fmt, "stdout")
    if fmt == "jsonl":
        return Output(fmt, "log", Path(out))
    if out is None:
        return Output(fmt, "files")
    if single and guessed == fmt and not Path(out).is_dir():
        return Output(fmt, "file", Path(out))
    if suffix in _EXTENSIONS and not Path(out).is_dir():
        raise VidcapError(f"--out {out}: names a file, and {fmt} output of these inputs is a "
                          "file per video, in a folder (one file of results: --out FILE.jsonl)")
    if Path(out).exists() and not Path(out).is_dir():
        raise VidcapError(f"--out {out}: exists and is not a folder (several videos write a "
                          "file each into a folder)")
    return Output(fmt, "files", Path(out))


def _cmd_caption(args: argparse.Namespace) -> int:
    from vidcap.captioning.batch import CaptionJob, FileSource
    from vidcap.captioning.engine import default_workers
    from vidcap.captioning.results import ResultsLog
    from vidcap.cli.common import run_generate_config
    from vidcap.distributed import setup_distributed, teardown_distributed
    from vidcap.runs.store import load_run

    if not args.inputs and args.from_list is None:
        raise VidcapError("nothing to caption: name video files or folders, or --from-list")
    output = plan_output(args.format, args.out, args.inputs, args.from_list)
    request = segment_request(args)
    gen = run_generate_config(args.run, decode_overrides(args))
    info = setup_distributed(args.device)
    try:
        if info.is_distributed and output.kind not in ("log", "files"):
            raise VidcapError("under torchrun, write --out FILE.jsonl or subtitle files")
        model = load_run(args.run, device=info.device, which=args.checkpoint)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        job = CaptionJob(model, gen, lambda todo: FileSource(todo, model.video_cfg, request),
                         log=ResultsLog(output.path, "path") if output.kind == "log" else None,
                         workers=default_workers(local) if args.workers is None else args.workers,
                         device=info.device, rank=info.rank, world_size=info.world_size,
                         precision=args.precision)
        show = _Printer(output, args)
        for result in job.run(_inputs(args)):
            show(result)
        show.close()
        summary = job.summary
        if info.is_main_process:
            if summary.done == 0 and summary.skipped == 0:
                raise VidcapError("no video files in " + ", ".join(args.inputs or
                                                                   [args.from_list]))
            print(f"vidcap: {summary.line()}", file=sys.stderr)
        return 1 if summary.failed or show.failed else 0
    finally:
        teardown_distributed()


def _inputs(args: argparse.Namespace):
    from itertools import chain

    from vidcap.captioning.inputs import iter_inputs, iter_listed

    listed = iter_listed(args.from_list) if args.from_list is not None else ()
    return (str(p) for p in iter_inputs(chain(args.inputs, listed), recursive=args.recursive))


def segment_request(args: argparse.Namespace) -> SegmentRequest:
    """The `SegmentRequest` of --segments/--window/--stride, with the run's clip length where
    the mode needs it."""
    from vidcap.captioning.frames import SegmentRequest
    from vidcap.runs.store import clip_length, read_config

    length = None
    if args.segments == "auto" or (args.segments == "fixed" and args.window is None):
        length = clip_length(args.run, read_config(args.run).video)
    return SegmentRequest(args.segments, clip_length=length, window=args.window,
                          stride=args.stride)


class _Printer:
    """Shows or writes each result as it comes, per the output; counts what could not be written."""

    def __init__(self, output: Output, args: argparse.Namespace) -> None:
        from vidcap.captioning.subtitles import SubtitleWriter

        self.output, self.listing, self.failed = output, [], 0
        self.writer = None
        if output.kind in ("files", "file"):
            roots = [Path(i) for i in args.inputs if Path(i).is_dir()]
            self.writer = SubtitleWriter(output.fmt, output.path if output.kind == "files"
                                         else None, roots=roots, overwrite=args.overwrite,
                                         file=output.path if output.kind == "file" else None)

    def __call__(self, result) -> None:
        from vidcap.captioning.batch import result_record
        from vidcap.captioning.subtitles import OutputError, render

        if result.error:
            where = "" if result.key in result.error else f"{result.key}: "
            print(f"vidcap: error: {where}{result.error}", file=sys.stderr, flush=True)
        fmt = self.output.fmt
        if self.output.kind == "log":
            return
        if fmt == "json" and self.writer is None:
            self.listing.append(result_record(result))
        elif fmt == "jsonl":
            print(json.dumps(result_record(result)), flush=True)
        elif result.caption is None:
            return
        elif self.writer is not None:
            try:
                target = self.writer.write(Path(result.key), result.cues or [])
                print(f"{target}\t{result.caption}", flush=True)
            except OutputError as err:
                self.failed += 1
                print(f"vidcap: error: {err}", file=sys.stderr, flush=True)
        elif fmt in ("vtt", "srt"):
            print(render(result.cues or [], fmt), end="", flush=True)
        elif result.segmented or result.error:
            for cue in result.cues or []:
                print(f"{result.key}\t{render([cue], 'text')}", end="", flush=True)
        else:
            print(f"{result.key}\t{result.caption}", flush=True)

    def close(self) -> None:
        if self.output.fmt == "json" and self.output.kind == "stdout":
            print(json.dumps(self.listing, indent=2, ensure_ascii=False))


def _add_attention(sub: Subparsers) -> None:
    p = sub.add_parser("attention", help="draw the CLS-to-patch attention over a video's frames",
                       description="The paper's Fig. 5: each sampled frame above the same frame "
                                   "under the heat map of the video CLS's spatial attention to "
                                   "its patches, the generated caption as the title.")
    add_run(p)
    p.add_argument("video", type=Path, help="video file")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--layer", type=int, default=None,
                   help="encoder block, 0-based, negative from the end (default: the run's "
                        "model.encoder.attention_layer)")
    p.add_argument("--rollout", action="store_true",
                   help="attention rollout over the blocks up to --layer instead of that "
                        "block's head-averaged attention")
    p.set_defaults(func=_cmd_attention)


def _cmd_attention(args: argparse.Namespace) -> int:
    from vidcap.visualize import render_attention

    figure = render_attention(args.run, args.video, args.out, layer=args.layer,
                              method="rollout" if args.rollout else "mean", device=args.device,
                              which=args.checkpoint, precision=args.precision)
    layout = figure.layout
    print(f"{figure.path}: {layout.width}x{layout.height} px, {len(figure.frame_indices)} frames "
          f"({' '.join(map(str, figure.frame_indices))}), block {figure.layer} "
          f"{'rollout' if figure.method == 'rollout' else 'head mean'}")
    print(f"caption: {figure.caption}")
    return 0
