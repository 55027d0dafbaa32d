"""Writing videos: deterministic, atomic encodes (H.264; MPEG-4 part 2 where H.264 is missing)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidcap.files import atomic_path


def default_codec() -> str:
    """`libx264` (H.264) when this PyAV build can encode it, else `mpeg4` (MPEG-4 part 2)."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except (av.codec.codec.UnknownCodecError, av.FFmpegError):
        return "mpeg4"


def _yuv_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """RGB (H, W, 3) uint8 -> a yuv420p/yuv444p frame, BT.601 limited range (what decoders assume
    for untagged video), in integer arithmetic.

    Converting here rather than letting the encoder call swscale keeps the output byte-identical:
    the encoder's implicit conversion was seen to differ between two encodes of the same frames
    in one process.
    """
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    if pix_fmt == "yuv420p":  # 2x2 means (edge rows/columns repeated for odd sides)
        h, w = y.shape
        u, v = (np.pad(c, ((0, h % 2), (0, w % 2)), mode="edge") for c in (u, v))
        u, v = ((c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2] + 2) >> 2
                for c in (u, v))
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], pix_fmt)
    for plane, values in zip(frame.planes, (y, u, v)):
        rows = np.zeros((plane.height, plane.line_size), np.uint8)
        rows[:, :plane.width] = values
        plane.update(rows.tobytes())
    return frame


def write_video(path: str | Path, frames: np.ndarray, fps: int, *,
                keyframe_interval: int | None = None, codec: str | None = None) -> None:
    """Encode uint8 (T, H, W, 3) RGB frames to a video file, deterministically and atomically.

    H.264 (libx264, CRF 18, one thread, no macroblock tree) in yuv420p, or yuv444p when a side
    is odd (4:2:0 needs even sides); MPEG-4 part 2 (`codec="mpeg4"`, the fallback) at fixed
    quality. Keyframes every `keyframe_interval` frames, or the encoder's default (libx264: up to
    250 frames apart). MP4 files get their index at the front (faststart).
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {frames.dtype} "
                         f"{tuple(frames.shape)}")
    if keyframe_interval is not None and keyframe_interval < 1:
        raise ValueError(f"keyframe_interval must be at least 1, got {keyframe_interval}")
    codec = codec or default_codec()
    is_mp4 = path.suffix.lower() in (".mp4", ".m4v", ".mov")
    with atomic_path(path) as tmp, \
            av.open(str(tmp), "w", options={"movflags": "+faststart"} if is_mp4 else {}) as out:
        stream = out.add_stream(codec, rate=fps)
        _configure_encoder(stream, codec, frames.shape[2], frames.shape[1], keyframe_interval)
        for i, array in enumerate(frames):
            frame = _yuv_frame(array, stream.pix_fmt)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _configure_encoder(stream: av.video.stream.VideoStream, codec: str, width: int, height: int,
                       keyframe_interval: int | None) -> None:
    """Size, pixel format and the deterministic settings of `write_video`'s encoder."""
    stream.width, stream.height = width, height
    if codec == "libx264":
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        # mbtree=0: with it, x264 gave different bytes for the same 64x64 frames
        # depending on the heap's contents (it reads memory it never wrote)
        params = "mbtree=0"
        if keyframe_interval is not None:
            k = keyframe_interval
            params += f":keyint={k}:min-keyint={k}:scenecut=0"
        stream.options = {"crf": "18", "preset": "medium", "threads": "1", "x264-params": params}
    else:
        ctx = stream.codec_context
        stream.pix_fmt = "yuv420p"
        ctx.gop_size = keyframe_interval or 250
        ctx.thread_count = 1
        ctx.qscale = True
        ctx.global_quality = 3 * 118  # FF_QP2LAMBDA * q: q=3 is near-transparent
