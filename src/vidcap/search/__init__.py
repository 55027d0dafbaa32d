"""Text-to-video search: an index of video (segment) embeddings and search by caption.

`VectorStore` keeps files, segments and vectors (SQLite, with a faiss copy for speed);
`index_files` fills it incrementally and resumably; `Index` pairs a store with the model's
`Embedder`; `format_hits` / `hits_json` print results.
"""

from vidcap.search.base import (FileStat, Fingerprint, Hit, SearchIndexError, Segment,
                                StoreStats)
from vidcap.search.index import Embedder, Index
from vidcap.search.indexer import (EmbedFile, EmbedVideos, FileEmbedding, IndexReport,
                                   embed_each, index_files)
from vidcap.search.output import format_hits, hits_json
from vidcap.search.store import VectorStore

__all__ = ["EmbedFile", "EmbedVideos", "Embedder", "FileEmbedding", "FileStat", "Fingerprint",
           "Hit", "Index", "IndexReport", "SearchIndexError", "Segment", "StoreStats",
           "VectorStore", "embed_each", "format_hits", "hits_json", "index_files"]
