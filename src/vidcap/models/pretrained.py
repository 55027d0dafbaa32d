"""Loading Hugging Face files without ever running code that comes with them.

transformers imports Python shipped beside a model when its config or tokenizer config has an
`auto_map` and the caller trusts it (and asks "Do you wish to run the custom code?" on a terminal
when the caller says nothing). vidcap never does: every `from_pretrained` and `from_config` passes
`**NO_CODE` (`trust_remote_code=False`), and a local folder whose JSON files carry an `auto_map` is
refused with one error naming the file before transformers reads it. A run folder, a downloaded
model and a folder named in a config are data; nothing in them may run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidcap.errors import ConfigError, VidcapError

NO_CODE: dict[str, Any] = {"trust_remote_code": False}
"""Keyword arguments of every transformers loading call in vidcap."""


def refuse_custom_code(source: str | Path, key: str | None = None, *,
                       error: type[VidcapError] = ConfigError) -> None:
    """Raise `error` when the folder `source` (a run's model folder, or a pretrained folder a
    config names under `key`) has a JSON file with an `auto_map`; a hub name passes (NO_CODE
    keeps its code out)."""
    folder = Path(source)
    if not folder.is_dir():
        return
    for file in sorted(folder.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # an unreadable file is reported by whoever reads it
        if isinstance(data, dict) and "auto_map" in data:
            where = f"{key}: " if key else ""
            raise error(f"{where}{file}: asks to run Python code that comes with the model "
                        "(auto_map); vidcap never runs such code: use a model transformers "
                        "supports as it is")
