"""Shared pieces of the property tests: settings, strategies, and the one property every parser
must hold: it returns the right answer or raises a VidcapError whose message is one short line,
never another exception and never a hang (hypothesis's deadline, generous on a loaded machine)."""

from __future__ import annotations

import itertools
import json
import os
import string
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from vidcap.errors import VidcapError

SCALE = float(os.environ.get("VIDCAP_PROPERTY_SCALE", "1"))
"""Multiplies every example count: `VIDCAP_PROPERTY_SCALE=25` for a deep search."""
PROPERTY = settings(max_examples=int(40 * SCALE), deadline=timedelta(seconds=5),
                    suppress_health_check=[HealthCheck.too_slow])
"""Modest example counts keep tests/property under a minute on two loaded cores."""
FEW = settings(PROPERTY, max_examples=int(15 * SCALE))
"""For properties whose every example does real work (zips, the CLI's config pipeline)."""

_names = itertools.count()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Callable[[str, str | bytes], Path]:
    """write(name, data) -> a fresh file in a module-wide folder (hypothesis runs many examples
    in one test call, so function-scoped tmp_path would be shared anyway)."""
    folder = tmp_path_factory.mktemp("property")

    def write(name: str, data: str | bytes) -> Path:
        sub = folder / str(next(_names))
        sub.mkdir()
        path = sub / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    return write


def clean_or_value(parse: Callable[[], Any]) -> Any:
    """`parse()`'s value, or None when it raised a clean VidcapError (one line, short); any other
    exception propagates and fails the property."""
    try:
        return parse()
    except VidcapError as err:
        message = str(err)
        assert "\n" not in message and len(message) <= 400, message[:800]
        return None


# text that survives as itself: no NUL (vidcap refuses text holding NUL bytes), no surrogates
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=40)
WORDS = st.text(string.ascii_letters + string.digits + " .,'\"-!?\u00e9\u4e00\u2028", min_size=1,
                max_size=30).filter(lambda s: s.strip())
"""Captions: letters, punctuation, quotes, a few non-ASCII characters (U+2028 included)."""
IDS = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=16)

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                         st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
"""Any JSON value, a few levels deep."""


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` damaged: truncated, a byte changed, a run of bytes dropped or repeated."""
    n = max(len(data), 1)
    at = st.integers(0, n - 1)
    return st.one_of(
        at.map(lambda i: data[:i]),
        st.tuples(at, st.integers(0, 255)).map(lambda t: data[:t[0]] + bytes([t[1]])
                                               + data[t[0] + 1:]),
        st.tuples(at, st.integers(1, 64)).map(lambda t: data[:t[0]] + data[t[0] + t[1]:]),
        st.tuples(at, st.integers(1, 64)).map(lambda t: data[:t[0] + t[1]] + data[t[0]:]),
    )


def json_text(value: Any) -> str:
    """JSON text of `value`, non-ASCII as is."""
    return json.dumps(value, ensure_ascii=False)
