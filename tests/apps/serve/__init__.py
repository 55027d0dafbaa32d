"""Tests of `vidcap serve` (vidcap.apps.serve)."""
