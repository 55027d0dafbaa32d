"""Video files in and out, through PyAV (FFmpeg inside its wheel; never a system ffmpeg).

The package: `sampling` (which frames), `container` (opening, scanning, `probe_video`), `decode`
(the sampled frames of a clip, or of many windows in one pass), `passes` (every frame of a
file, once), `convert` (RGB, grey,
upright), `transforms` (the model's input), `write` (encoding), `limits` and `types`. Import the
public names from `vidcap.video` itself.

Reading samples T frames by uniform segment-centre sampling: frame i of T is the one at the centre
of the i-th of T equal segments of the clip (or of its [start, end] window), so a clip shorter
than T repeats frames. How the frames are decoded is chosen per file and per request:

1. A demux pass (no decoding) lists every packet: presentation timestamps, keyframe flags. That is
   the frame count and timeline; container metadata (`stream.frames`, `duration`) is not trusted,
   only compared: data that ends before what the header announces is a truncated file, read as
   far as it goes with a warning naming the file and where it broke (MP4/MOV files, whose index
   lists every sample, stay a `VideoError`).
2. `plan_decode_runs` groups the wanted frames into runs. A run seeks to the keyframe before its
   first frame (by that keyframe's presentation timestamp, so it lands on it and not on the one
   before) and decodes forward; the next wanted frame joins the run when no later keyframe lies
   before it, or when decoding on costs less than seeking again. Sparse keyframes (libx264's
   default of one per 250 frames) give one sequential run; dense keyframes a seek per frame.
3. While decoding, packets whose frame is not wanted are sent with `skip_frame=NONREF`, so the
   decoder drops the non-reference (B-)frames nobody asked for.
4. Wanted frames are converted to RGB by one swscale context per stream, on the calling thread
   (`frame.to_ndarray(format="rgb24")` would build a context and a thread pool per frame), and
   turned upright by the stream's display matrix (phone videos), as ffmpeg's autorotation does.

Long videos: `iter_frames` decodes a file once, frame by frame; `read_windows` / `iter_windows`
take the sampled frames of many windows (the scenes of a video) in that one pass.

Reads are capped before anything is allocated: at most `MAX_SAMPLED_FRAMES` frames per read and
`MAX_FRAME_BYTES` bytes of frames (environment variables VIDCAP_MAX_SAMPLED_FRAMES,
VIDCAP_MAX_FRAME_BYTES). Frames are never scaled down to fit: a read over the cap is an error
that says how to raise it (scaling would change what a model sees without a word, and
`crop_frames` resizes afterwards anyway). Only regular files are opened (a pipe would block); a
symbolic link loop, a broken link and a file this user may not read are named as such.

Every failure reaches the caller as a `VideoError(path, reason)` (a `ValueError` for arguments
that are wrong whatever the file); no PyAV exception escapes.
"""

from __future__ import annotations

from vidcap.video.container import probe_video
from vidcap.video.convert import SMALL_KINDS, Picture
from vidcap.video.decode import iter_windows, read_frames, read_sampled, read_windows
from vidcap.video.limits import MAX_FRAME_BYTES, MAX_SAMPLED_FRAMES
from vidcap.video.passes import FrameIterator, iter_frames
from vidcap.video.sampling import (plan_decode_runs, sample_frame_indices, select_frame_indices,
                                   window_frame_range)
from vidcap.video.transforms import (ModelClip, crop_frames, load_clip, normalize_frames,
                                     preprocess_frames, read_clip)
from vidcap.video.types import DecodedFrame, SampledFrames, Truncation, VideoInfo
from vidcap.video.write import default_codec, write_video

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg",
                                     ".mpeg", ".flv", ".wmv", ".3gp", ".ogv", ".ts")
"""File extensions, in lower case, treated as videos (folders searched, datasets matched); earlier
ones are preferred when two files share a stem."""

__all__ = ["VIDEO_EXTENSIONS", "MAX_FRAME_BYTES", "MAX_SAMPLED_FRAMES", "SMALL_KINDS",
           "DecodedFrame", "FrameIterator", "ModelClip", "Picture", "SampledFrames", "Truncation",
           "VideoInfo", "crop_frames", "default_codec", "iter_frames", "iter_windows", "load_clip",
           "normalize_frames", "plan_decode_runs", "preprocess_frames", "probe_video",
           "read_clip", "read_frames", "read_sampled", "read_windows", "sample_frame_indices",
           "select_frame_indices", "window_frame_range", "write_video"]
