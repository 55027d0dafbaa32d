"""Fixtures of the evaluation tests: the coco-caption demo files."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def coco_demo(shared_data: Path) -> Path:
    """The coco-caption demo folder (../shared/data/coco_caption)."""
    folder = shared_data / "coco_caption"
    if not (folder / "captions_val2014_fakecap_results.json").is_file():
        pytest.skip(f"coco-caption demo files not found in {folder}")
    return folder
