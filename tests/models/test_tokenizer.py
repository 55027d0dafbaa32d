from __future__ import annotations

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from vidcap.errors import ConfigError
from vidcap.models.text_encoder import resolve_pretrained
from vidcap.models.tokenizer import decode_captions, load_tokenizer, train_caption_tokenizer

from .conftest import CAPTIONS


def test_trained_bpe_has_special_tokens_and_round_trips(tmp_path):
    tok = train_caption_tokenizer(CAPTIONS, vocab_size=500)
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<pad>", "<bos>", "<eos>")
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}) == 3
    assert 256 < len(tok) <= 500  # the byte alphabet, specials and merges
    ids = tok(CAPTIONS, add_special_tokens=False)["input_ids"]
    assert decode_captions(tok, ids) == CAPTIONS
    # every word seen in training became one token, the same at the start and inside a sentence
    assert len(tok("red", add_special_tokens=False)["input_ids"]) == 1
    assert tok("red circle", add_special_tokens=False)["input_ids"][0] == \
        tok("a red", add_special_tokens=False)["input_ids"][1]
    # byte-level: unseen words still encode and decode exactly
    unseen = "a purple hexagon spins"
    assert decode_captions(tok, [tok(unseen, add_special_tokens=False)["input_ids"]]) == [unseen]

    tok.save_pretrained(tmp_path / "tok")
    for loaded in (load_tokenizer(tmp_path / "tok"),
                   AutoTokenizer.from_pretrained(tmp_path / "tok")):
        assert len(loaded) == len(tok)
        assert loaded.pad_token_id == tok.pad_token_id and loaded.eos_token_id == tok.eos_token_id
        assert loaded(CAPTIONS, add_special_tokens=False)["input_ids"] == ids


def test_decode_strips_special_tokens():
    tok = train_caption_tokenizer(CAPTIONS, vocab_size=400)
    ids = tok("the blue square grows", add_special_tokens=False)["input_ids"]
    row = [tok.bos_token_id] + ids + [tok.eos_token_id, tok.pad_token_id, tok.pad_token_id]
    assert decode_captions(tok, [row]) == ["the blue square grows"]


def test_vocab_size_is_an_upper_bound():
    assert len(train_caption_tokenizer(CAPTIONS * 3, vocab_size=270)) == 270


def test_pretrained_tokenizer_without_pad_gets_eos_as_pad(tmp_path):
    tok = train_caption_tokenizer(CAPTIONS, vocab_size=400)
    bare = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token="<eos>")
    bare.save_pretrained(tmp_path / "bare")
    loaded = load_tokenizer(tmp_path / "bare")
    assert loaded.pad_token == "<eos>"


def test_errors():
    with pytest.raises(ConfigError, match="no captions"):
        train_caption_tokenizer(["  ", ""], vocab_size=400)
    with pytest.raises(ConfigError, match="model.decoder.tokenizer"):
        load_tokenizer("/nonexistent/tokenizer")
    # the offline MiniLM WordPiece is a fast tokenizer with a [SEP] but no eos: refused for GPT-2
    with pytest.raises(ConfigError, match="end-of-text"):
        load_tokenizer(resolve_pretrained("all-MiniLM-L6-v2"))
