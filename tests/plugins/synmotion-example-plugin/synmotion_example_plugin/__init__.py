"""A minimal third-party plugin: proves that another distribution can add a backend and a pack source.

The ``colour`` backend "learns" the mean colour of the clips (stored as a safetensors tensor in the pack)
and "generates" a video that fades from black to that colour. It needs no torch and runs in milliseconds,
so the CLI's learn/gen plumbing is tested on its own. The ``examples`` pack source serves a read-only
directory of packs named by ``SYNMOTION_EXAMPLE_PACKS``.
"""

from __future__ import annotations

import os
from pathlib import Path

from synmotion_cli.backend import CAP_LEARN, CAP_T2V, GenResult, PackDraft


class ColourBackend:
    name = "colour"
    description = "Example plugin: learns a clip's mean colour"
    capabilities = frozenset({CAP_LEARN, CAP_T2V})

    def check(self, base=None):
        return []

    def learn(self, request, reporter):
        import numpy as np
        from safetensors.numpy import save_file

        from synmotion_cli import media

        reporter.stage("read clips", total=len(request.clips))
        means = []
        for clip in request.clips:
            means.append(media.decode(clip, fps=8, height=16, width=16, frames=5).reshape(-1, 3).mean(0))
            reporter.advance(1)
        path = request.work_dir / "colour.safetensors"
        save_file({"colour": np.mean(means, 0).astype("float32")}, str(path))
        return PackDraft(files={"t2v/colour.safetensors": path},
                         manifest={"kind": "synmotion.motion-pack", "backend": self.name,
                                   "motion": {"name": request.motion, "trigger_words": [request.motion]},
                                   "base": {"id": "colour"}, "variants": {"t2v": {"files": ["t2v/colour.safetensors"]}},
                                   "data": {"clips": len(request.clips)}})

    def generate(self, request, reporter):
        import numpy as np
        from safetensors.numpy import load_file

        colour = np.array([128.0, 128.0, 128.0], dtype="float32")
        for pack in request.packs:
            colour = load_file(str(pack.files["t2v/colour.safetensors"]))["colour"]
        n, h, w = request.frames or 9, request.height or 32, request.width or 32
        ramp = np.linspace(0.0, 1.0, n, dtype="float32")[:, None, None, None]
        frames = np.clip(ramp * colour[None, None, None, :], 0, 255).astype("uint8")
        return GenResult(frames=np.broadcast_to(frames, (n, h, w, 3)).copy(), fps=8.0,
                         metadata={"prompt": request.prompt, "base": "colour"})


def example_source():
    from synmotion_cli.store.sources import DirectorySource

    root = Path(os.environ.get("SYNMOTION_EXAMPLE_PACKS", "/nonexistent"))
    return DirectorySource("examples", root, description="packs shipped by the example plugin")
