"""The MFFCL model and its parts (paper §III): see `vidcap.models.mffcl` for the whole."""

from __future__ import annotations

from vidcap.models.decoder import CaptionDecoder
from vidcap.models.encoder import VideoEncoder, VideoFeatures
from vidcap.models.mapper import Mapper
from vidcap.models.mffcl import COMPONENTS, MFFCL, ContrastiveHead
from vidcap.models.text_encoder import TextEncoder
from vidcap.models.tokenizer import load_tokenizer, train_caption_tokenizer

__all__ = ["MFFCL", "VideoFeatures", "VideoEncoder", "TextEncoder", "ContrastiveHead", "Mapper",
           "CaptionDecoder", "COMPONENTS", "load_tokenizer",
           "train_caption_tokenizer"]
