"""The user config file: defaults for options that would otherwise be typed every time.

Example ``config.toml``::

    backend = "hunyuan"
    base = "/models/HunyuanVideo"
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from .errors import UsageError
from .paths import config_file


def load() -> dict[str, Any]:
    path = config_file()
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, OSError) as e:
        raise UsageError(f"cannot read config file {path}: {e}", hint="fix or remove the file") from e


def setting(name: str, cli_value: Any = None, env: str | None = None) -> tuple[Any, str]:
    """Resolve a setting: command line, then environment variable, then config file.

    Returns the value and where it came from, so commands can say why they chose it.
    """
    if cli_value is not None:
        return cli_value, "command line"
    if env and os.environ.get(env):
        return os.environ[env], f"${env}"
    value = load().get(name)
    if value is not None:
        return value, f"config file {config_file()}"
    return None, "default"
