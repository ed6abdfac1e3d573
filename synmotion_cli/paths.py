"""Where synmotion keeps things. Every location can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "synmotion"


def home() -> Path:
    """Root of the pack store (``SYNMOTION_HOME``, else the platform's user data dir)."""
    env = os.environ.get("SYNMOTION_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP))


def config_file() -> Path:
    """The user config file (``SYNMOTION_CONFIG``, else ``<user config dir>/config.toml``)."""
    env = os.environ.get("SYNMOTION_CONFIG")
    return Path(env).expanduser() if env else Path(platformdirs.user_config_dir(APP)) / "config.toml"


def cache_dir() -> Path:
    """Recomputable data: encoded latents, text embeddings, subject-prior videos (``SYNMOTION_CACHE``)."""
    env = os.environ.get("SYNMOTION_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(APP))


def runs_dir() -> Path:
    """Training runs in progress: checkpoints that ``learn --resume`` continues from."""
    return home() / "runs"
