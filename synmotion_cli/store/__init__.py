"""The pack store: content-addressed blobs, manifests written last, export/import, plugin sources."""

from .names import DEFAULT_TAG, parse_name
from .sources import DirectorySource, PackSource, plugin_sources
from .store import GcResult, PackRef, PackStore, VerifyResult, find_pack

__all__ = ["DEFAULT_TAG", "DirectorySource", "GcResult", "PackRef", "PackSource", "PackStore", "VerifyResult",
           "find_pack", "parse_name", "plugin_sources"]
