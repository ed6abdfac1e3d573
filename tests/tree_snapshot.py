"""A directory tree's state, to prove an operation left it untouched."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def snapshot(root: Path, *, metadata: bool = False) -> dict[str, object]:
    """Every path under ``root`` with its content hash, or with ``metadata`` its size, mtime and mode
    instead (cheap for large trees, and even a rewrite of identical bytes shows): two equal snapshots mean
    an untouched tree."""
    tree: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            tree[key] = "link:" + os.readlink(path)
        elif path.is_dir():
            tree[key] = "dir"
        else:
            if metadata:
                info = path.stat()
                tree[key] = (info.st_size, info.st_mtime_ns, info.st_mode)
            else:
                tree[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return tree
