"""Caption tokenizers: a byte-level BPE trained on the training captions, or a pretrained one.

The trained BPE is a `tokenizers` model wrapped as a transformers `PreTrainedTokenizerFast`, so it
is saved and loaded with `save_pretrained` / `from_pretrained` like any other (transformers 5 builds
an *empty* tokenizer from `GPT2Tokenizer(vocab_file=..., merges_file=...)`, hence no vocab/merges
files). It has `<pad>`, `<bos>` and `<eos>`; byte-level means no word is ever unknown.

Captions go through `vidcap.text.normalize_caption` before any tokenizer sees them: Unicode NFKC,
whitespace collapsed and stripped, lower-cased unless `lowercase=False`. Video-captioning
references are short lower-case sentences and coco-caption's PTB tokenizer lower-cases before
scoring, so lower-casing the targets loses nothing that is scored and halves the vocabulary a
small BPE needs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from vidcap.errors import ConfigError
from vidcap.models.pretrained import NO_CODE, refuse_custom_code
from vidcap.text import normalize_caption

log = logging.getLogger(__name__)

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


def train_caption_tokenizer(captions: Iterable[str], vocab_size: int, *,
                            lowercase: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE of at most `vocab_size` tokens (fewer when the captions need fewer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = [normalize_caption(c, lowercase=lowercase) for c in captions]
    texts = [t for t in texts if t]
    if not texts:
        raise ConfigError("model.decoder.tokenizer: no captions to train the BPE tokenizer on")
    bpe = Tokenizer(models.BPE())
    # a prefix space makes the first word the same token as everywhere else in a sentence
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token=PAD, bos_token=BOS,
                                        eos_token=EOS)
    log.info("trained a byte-level BPE of %d tokens on %d captions", len(tokenizer), len(texts))
    return tokenizer


def load_tokenizer(name_or_dir: str | Path, *, key: str = "model.decoder.tokenizer"
                   ) -> PreTrainedTokenizerFast:
    """A pretrained (fast) tokenizer; one without a pad token pads with its end-of-text token.
    Never one that needs code of its own (ConfigError)."""
    refuse_custom_code(name_or_dir, key)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_dir), **NO_CODE)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}: cannot load tokenizer {str(name_or_dir)!r} "
                          f"({str(err).splitlines()[0]})") from None
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise ConfigError(f"{key}: {str(name_or_dir)!r} is not a fast (tokenizers) tokenizer")
    if tokenizer.eos_token is None:
        raise ConfigError(f"{key}: {str(name_or_dir)!r} has no end-of-text token")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def decode_captions(tokenizer: PreTrainedTokenizerFast, ids: Sequence[Sequence[int]]) -> list[str]:
    """Token ids -> clean strings: special tokens dropped, whitespace collapsed."""
    return [" ".join(t.split()) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
