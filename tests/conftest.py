"""Shared test set-up: an isolated store, config and cache for every test; no hub access."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Each test gets its own store, config and cache, so nothing leaks between tests or into $HOME."""
    root = tmp_path_factory.mktemp("synmotion-home")
    monkeypatch.setenv("SYNMOTION_HOME", str(root / "store"))
    monkeypatch.setenv("SYNMOTION_CONFIG", str(root / "config.toml"))
    monkeypatch.setenv("SYNMOTION_CACHE", str(root / "cache"))
    monkeypatch.delenv("SYNMOTION_BACKEND", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return root
