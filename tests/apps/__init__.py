"""Tests of the applications (vidcap.apps)."""
