"""Captioning videos with a trained model: which inputs (`inputs`), in batches (`batch`), and
written out as subtitles (`subtitles`). Import from the submodules."""
