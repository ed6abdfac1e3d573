"""Base models: resolving a name to a local diffusers directory, identifying it, and checking that this
machine can hold it before anything large is loaded.

A base is a hub id (looked up only in the local Hugging Face cache: synmotion never downloads) or a local
diffusers-format directory. Its identity, recorded in every pack, is the id plus a fingerprint of its
configs and weight-file sizes, so a pack refuses to load on a different base.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from synmotion_cli.errors import EnvironmentProblem, NotFoundError, SynMotionError, UsageError

DEFAULT_T2V = "hunyuanvideo-community/HunyuanVideo"
DEFAULT_I2V = "hunyuanvideo-community/HunyuanVideo-I2V"
# Above this many transformer bytes a base is "full size": it needs a CUDA device.
FULL_SIZE_BYTES = 4 * 1024**3
# Working memory on top of the weights (activations, optimizer, VAE decode), as a fraction of the weights.
OVERHEAD = 0.35


@dataclass(frozen=True)
class BaseSpec:
    id: str                 # what the user named: hub id or directory
    path: Path              # local diffusers-format directory
    fingerprint: str        # sha256 over configs and weight sizes (16 hex)
    component_bytes: dict   # component -> bytes of weights on disk

    @property
    def transformer_bytes(self) -> int:
        return self.component_bytes.get("transformer", 0)

    @property
    def full_size(self) -> bool:
        return self.transformer_bytes >= FULL_SIZE_BYTES

    def identity(self) -> dict:
        return {"id": self.id, "fingerprint": self.fingerprint,
                "transformer_bytes": self.transformer_bytes}


def _local_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (or hub library missing): the caller explains what to do
        return None


def _weight_files(path: Path):
    return sorted(p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".gguf") and p.is_file())


def _identity_bytes(cfg: Path, rel: str) -> bytes:
    """What of a config file says which model it is. ``synmotion.json``'s ``defaults`` are settings
    (``learn``/``gen`` option defaults), not the model: a base may tune them without orphaning its packs.
    Its prompt template and training record stay in (a retrained base has the same configs and sizes)."""
    raw = cfg.read_bytes()
    if rel != "synmotion.json":
        return raw
    try:
        info = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(info, dict):
        return raw
    info.pop("defaults", None)
    return json.dumps(info, sort_keys=True).encode()


def _fingerprint(path: Path) -> tuple[str, dict]:
    h = hashlib.sha256()
    sizes: dict[str, int] = {}
    for cfg in sorted(path.rglob("*.json")):
        rel = cfg.relative_to(path).as_posix()
        if rel.endswith(".index.json"):
            continue  # shard indexes list file names that differ between identical exports
        h.update(rel.encode() + b"\0" + _identity_bytes(cfg, rel) + b"\0")
    for w in _weight_files(path):
        rel = w.relative_to(path)
        size = w.stat().st_size
        h.update(f"{rel.as_posix()}:{size}\n".encode())
        component = rel.parts[0] if len(rel.parts) > 1 else "."
        sizes[component] = sizes.get(component, 0) + size
    return h.hexdigest()[:16], sizes


BASES_GROUP = "synmotion.bases"
# A CUDA device with at least this much memory counts as capable of the full-size base.
CAPABLE_GPU_BYTES = 40 * 1024**3


def named_bases() -> dict:
    """Bases that installed distributions register by name (the toy world registers ``toy``)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=BASES_GROUP)}


def _named_path(name: str) -> Path | None:
    ep = named_bases().get(name)
    if ep is None:
        return None
    try:
        return Path(ep.load()())
    except SynMotionError:  # the plugin's own explanation (e.g. how to build weights it does not ship)
        raise
    except Exception as e:  # a broken plugin: say which
        raise NotFoundError(f"base {name!r} is registered by an installed plugin that failed to load: {e}",
                            hint="reinstall the plugin that provides it") from e


def choose_default(*, i2v: bool = False) -> tuple[str, str]:
    """The base to use when none is configured, and why: HunyuanVideo when its weights are cached and a
    capable GPU is present, else the toy base when installed, else HunyuanVideo (which will then say what
    is missing)."""
    real = DEFAULT_I2V if i2v else DEFAULT_T2V
    cached = _local_snapshot(real) is not None
    gpu = _capable_gpu()
    if cached and gpu:
        return real, f"its weights are cached and {gpu} is present"
    toy = "toy-i2v" if i2v else "toy"
    if toy in named_bases():
        why = "no capable GPU" if cached else f"{real} is not in the Hugging Face cache"
        return toy, f"{why}; the toy base runs anywhere"
    return real, "the default base"


def _capable_gpu() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            if props.total_memory >= CAPABLE_GPU_BYTES:
                return props.name
    except Exception:
        return None
    return None


def resolve(spec: str | None, *, i2v: bool = False) -> BaseSpec:
    """Find the base on disk. Raises NotFoundError with what to do next when it is absent."""
    name = spec or (DEFAULT_I2V if i2v else DEFAULT_T2V)
    # A registered name ("toy") wins over a same-named folder in the working directory: write ./toy for that.
    looks_like_path = "/" in name or name.startswith((".", "~"))
    named = None if looks_like_path else _named_path(name)
    if named is not None:
        if not (named / "model_index.json").is_file():
            raise NotFoundError(f"base {name!r} has no weights at {named}",
                                hint="train it (e.g. `synmotion toy train-base`) or reinstall the package providing it")
        fp, sizes = _fingerprint(named)
        return BaseSpec(name, named.resolve(), fp, sizes)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise UsageError(f"{path} is not a diffusers model directory (no model_index.json)",
                             hint="pass a directory saved with save_pretrained, or a hub id")
        fp, sizes = _fingerprint(path)
        return BaseSpec(str(path.resolve()), path.resolve(), fp, sizes)
    if name.count("/") != 1 or name.startswith((".", "/")):
        raise NotFoundError(f"base {name!r} is neither a directory nor a hub id")
    snapshot = _local_snapshot(name)
    if snapshot is None:
        raise NotFoundError(
            f"the weights of {name} are not in the Hugging Face cache",
            hint=f"on a machine with network run `hf download {name}` (or copy the cache), "
                 f"or pass --base DIR for a local copy")
    fp, sizes = _fingerprint(snapshot)
    return BaseSpec(name, snapshot, fp, sizes)


def _available_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def estimate_bytes(base: BaseSpec, *, training: bool, dtype_bytes: int) -> int:
    """Peak memory of the stage that holds the most: the transformer plus VAE (text encoders are freed
    before the loop), converted from the on-disk dtype to the compute dtype, plus working overhead."""
    on_disk = base.transformer_bytes + base.component_bytes.get("vae", 0)
    stored_dtype_bytes = 2 if base.full_size else 4  # full-size checkpoints ship bf16; small ones fp32
    weights = on_disk * dtype_bytes // stored_dtype_bytes
    return int(weights * (1 + OVERHEAD * (2 if training else 1)))


def check_fits(base: BaseSpec, device: str, *, training: bool, dtype_bytes: int) -> None:
    """Refuse before loading when the base cannot run here, with the reason and a way out."""
    if base.full_size and not device.startswith("cuda"):
        raise EnvironmentProblem(
            f"{base.id} is a full-size base ({base.transformer_bytes / 1024**3:.1f} GB transformer) and this machine "
            "has no CUDA device",
            hint="run on a machine with a CUDA GPU (>= 40 GB for training), or use the small toy base")
    need, have = estimate_bytes(base, training=training, dtype_bytes=dtype_bytes), _available_bytes(device)
    if need > have:
        raise EnvironmentProblem(
            f"{base.id} needs about {need / 1024**3:.1f} GB on {device} but {have / 1024**3:.1f} GB is free",
            hint="free memory, use a larger GPU, or lower --size/--frames")


def pipeline_class(base: BaseSpec) -> str | None:
    """The diffusers pipeline class a base directory declares (``model_index.json``)."""
    try:
        return json.loads((base.path / "model_index.json").read_text()).get("_class_name")
    except (OSError, ValueError):
        return None


# Each text-to-video base and the image-to-video base made from it: a pack's two variants come from such a
# pair. `--i2v-base` names another; a local base directory may name its partner in synmotion.json
# ("i2v_base" beside a text-to-video base, "t2v_base" beside an image-to-video one).
I2V_PARTNERS = {DEFAULT_T2V: DEFAULT_I2V, "toy": "toy-i2v"}


def _declared_partner(spec: BaseSpec, key: str) -> str | None:
    partner = read_synmotion_config(spec.path).get(key)
    if not partner:
        return None
    beside = spec.path / partner   # a folder next to this base, else a registered name or hub id
    return str(beside.resolve()) if beside.is_dir() else partner


def i2v_partner(t2v: str) -> str | None:
    """The image-to-video base paired with the text-to-video base ``t2v``, or None when it has none."""
    if t2v in I2V_PARTNERS:
        return I2V_PARTNERS[t2v]
    try:
        spec = resolve(t2v)
    except SynMotionError:
        return None
    return I2V_PARTNERS.get(spec.id) or _declared_partner(spec, "i2v_base")


def t2v_partner(i2v: BaseSpec) -> str | None:
    """The text-to-video base paired with an image-to-video one (it draws I2V subject-prior images)."""
    return {v: k for k, v in I2V_PARTNERS.items()}.get(i2v.id) or _declared_partner(i2v, "t2v_base")


def resolve_i2v(i2v: str | None, t2v: str | None) -> BaseSpec:
    """The image-to-video base: ``i2v`` if named, else the partner of ``t2v`` (else of the default base)."""
    if i2v:
        return resolve(i2v)
    t2v = t2v or choose_default()[0]
    partner = i2v_partner(t2v)
    if partner is None:
        raise UsageError(f"base {t2v} has no image-to-video partner",
                         hint="name the image-to-video base with --i2v-base DIR_OR_HUB_ID")
    return resolve(partner)


def read_synmotion_config(path: Path) -> dict:
    """Per-base prompt settings written beside small bases (``synmotion.json``); empty for real bases."""
    f = path / "synmotion.json"
    return json.loads(f.read_text()) if f.is_file() else {}
