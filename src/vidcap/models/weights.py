"""Weights on disk: safetensors files written atomically, read with one check of what they hold.

Every weights file vidcap writes (a run's model, a checkpoint, the best-on-validation copy) goes
through `save_weights`, and every one it reads through `load_weights`, so a file is judged by
one rule wherever it comes from: finite values, nothing the model does not have, every shape the
model's, and each component either complete or, where the caller allows it, absent (a frozen
component whose weights come from elsewhere: the pretrained text encoder, or a part no stage
trains).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from vidcap.errors import RunError
from vidcap.files import atomic_path


def unique_weights(model: nn.Module, skip: Iterable[str] = ()) -> dict[str, Tensor]:
    """The state dict on the CPU minus components in `skip` and minus tied duplicates (GPT-2's
    lm_head.weight is wte.weight: kept once, under the first name)."""
    skip = tuple(skip)
    seen: set[tuple[int, tuple[int, ...]]] = set()
    out = {}
    for key, tensor in model.state_dict().items():
        if key.split(".", 1)[0] in skip:
            continue
        ident = (tensor.data_ptr(), tuple(tensor.shape))
        if tensor.numel() and ident in seen:
            continue
        seen.add(ident)
        out[key] = tensor.detach().to("cpu").contiguous()
    return out


def save_weights(model: nn.Module, file: str | Path, *, skip: Collection[str] = (),
                 metadata: dict[str, str] | None = None) -> None:
    """Write `unique_weights(model, skip)` to a safetensors file, atomically; the same weights
    and metadata give the same bytes in every process (`_sort_metadata`)."""
    with atomic_path(file) as tmp:
        save_file(unique_weights(model, skip), str(tmp), metadata=metadata)
        if metadata and len(metadata) > 1:
            _sort_metadata(tmp)


def _sort_metadata(file: Path) -> None:
    """Rewrite the header in one order, in place: `__metadata__` first with its keys sorted, then
    the tensors in data order. safetensors keeps the metadata in a hash map whose order changes
    from process to process, so two saves of the same weights differed in their header bytes;
    reordering keeps the header's length, and the tensor data does not move."""
    with open(file, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        raw = f.read(size)
        header = json.loads(raw)
        metadata = dict(sorted(header.pop("__metadata__").items()))
        tensors = sorted(header.items(), key=lambda item: item[1]["data_offsets"])
        header = {"__metadata__": metadata, **dict(tensors)}
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > size:  # cannot happen for a reordering; leave the file as written
            return
        f.seek(8)
        f.write(text + b" " * (size - len(text)))


def read_weights(file: str | Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file; RunError when it is missing, unreadable, or holds a
    value that is not finite (NaN weights caption nothing: never used silently)."""
    file = Path(file)
    if not file.is_file():
        raise RunError(f"{file}: weights file not found")
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise RunError(f"{file}: not a readable safetensors file ({err})") from None
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise RunError(f"{file}: tensor {name} holds NaN or infinite values (training "
                           "diverged, or the file is damaged)")
    return tensors


def load_weights(model: nn.Module, weights: dict[str, Tensor], source: str | Path, *,
                 may_lack: Collection[str] = ()) -> None:
    """Copy `weights` into `model` after checking them: no tensor the model lacks, every shape
    the model's (its config's), and every component (first part of a key) either complete or
    wholly absent — absent only when named in `may_lack` (it keeps the weights it has). `source`
    names the file in errors; nothing is copied unless every check passes."""
    expected = model.state_dict()
    unexpected = [k for k in weights if k not in expected]
    if unexpected:
        raise RunError(f"{source}: weights do not fit this model (unexpected "
                       f"{', '.join(unexpected[:3])} ...)")
    wrong = [k for k, v in weights.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        key = wrong[0]
        raise RunError(f"{source}: {key} has shape {tuple(weights[key].shape)} but the config "
                       f"makes it {tuple(expected[key].shape)} ({len(wrong)} tensor(s) differ): "
                       "the weights and the run's config.yaml do not belong together")
    present = {k.split(".", 1)[0] for k in weights}
    absent = {k.split(".", 1)[0] for k in expected} - present
    allowed = absent & set(may_lack)
    lacking = [k for k in unique_weights(model, allowed) if k not in weights]
    if lacking:
        raise RunError(f"{source}: lacks {len(lacking)} weights of this model "
                       f"(e.g. {', '.join(lacking[:3])})")
    model.load_state_dict(weights, strict=False)
