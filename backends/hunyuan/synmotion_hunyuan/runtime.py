"""Loading a base pipeline onto the right device with the right dtype, once per command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import bases


@dataclass
class Runtime:
    device: str
    dtype: object            # torch dtype of the frozen weights
    autocast: bool           # bf16 autocast on CUDA

    @property
    def dtype_bytes(self) -> int:
        import torch

        return torch.finfo(self.dtype).bits // 8


def pick_runtime(mixed_precision: str = "auto") -> Runtime:
    import torch

    if torch.cuda.is_available():
        bf16 = mixed_precision in ("auto", "bf16")
        return Runtime("cuda", torch.bfloat16 if bf16 else torch.float32, bf16)
    # CPU: float32 throughout; bf16 matmuls on CPU are slower than fp32 for small models.
    return Runtime("cpu", torch.float32, False)


def quiet_libraries() -> None:
    """diffusers and transformers print their own progress bars and notices; synmotion reports its own."""
    import warnings

    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    for log in (dlog, tlog):
        log.disable_progress_bar()
        log.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*torchvision.*")


def load_pipeline(base: bases.BaseSpec, runtime: Runtime, *, training: bool, i2v: bool = False):
    """Check the base fits and is the right kind (text- or image-to-video), then load it with diffusers'
    own ``from_pretrained``."""
    import torch

    quiet_libraries()  # before the import: loading the I2V pipeline's module already prints a notice
    from diffusers import HunyuanVideoImageToVideoPipeline, HunyuanVideoPipeline

    cls = HunyuanVideoImageToVideoPipeline if i2v else HunyuanVideoPipeline
    kind = bases.pipeline_class(base)
    if kind is not None and kind != cls.__name__:
        from synmotion_cli.errors import UsageError

        want = "an image-to-video" if i2v else "a text-to-video"
        raise UsageError(f"base {base.id} is a {kind}, not {want} base",
                         hint="--i2v-base names the image-to-video base, --base the text-to-video one")
    bases.check_fits(base, runtime.device, training=training, dtype_bytes=runtime.dtype_bytes)
    try:
        pipe = cls.from_pretrained(str(base.path), dtype=runtime.dtype)
    except (OSError, ValueError, KeyError) as e:
        from synmotion_cli.errors import IntegrityError

        raise IntegrityError(f"cannot load base {base.id}: {e}",
                             hint="check that the directory is a complete HunyuanVideo diffusers export") from e
    except torch.cuda.OutOfMemoryError as e:  # the estimate is a bound, not a promise
        from synmotion_cli.errors import EnvironmentProblem

        raise EnvironmentProblem(f"out of GPU memory loading {base.id}", hint="free GPU memory or use a larger GPU") from e
    pipe.tokenizer.padding_side = "right"
    pipe.set_progress_bar_config(disable=True)
    for part in (pipe.text_encoder, pipe.text_encoder_2, pipe.vae, pipe.transformer):
        part.requires_grad_(False)
        part.eval()
    return pipe.to(runtime.device)


# The pipeline `generate` loaded last, kept so that several videos in one process (`gen --count N`) load the
# base once: on the toy base loading (mostly importing diffusers and transformers) is half of a video's time.
# One entry only, keyed by everything that decides what would be loaded, down to each file's size and mtime,
# so a base changed on disk is loaded (and checked) again.
_generation_cache: dict = {}


def _files_state(path: Path) -> tuple:
    stats = {str(f.relative_to(path)): f.stat() for f in path.rglob("*") if f.is_file()}
    return tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in stats.items()))


def generation_pipeline(base: bases.BaseSpec, runtime: Runtime, *, i2v: bool = False):
    """``load_pipeline(base, runtime, training=False, i2v=i2v)``, reused while nothing it depends on changed.
    The caller leaves it as it found it (no adapters loaded)."""
    key = (str(base.path), i2v, runtime.device, str(runtime.dtype), _files_state(Path(base.path)))
    if _generation_cache.get("key") != key:
        drop_generation_pipeline()
        _generation_cache.update(key=key, pipe=load_pipeline(base, runtime, training=False, i2v=i2v))
    return _generation_cache["pipe"]


def drop_generation_pipeline() -> None:
    """Free the kept pipeline (before training loads its own, so two copies never share a GPU)."""
    _generation_cache.clear()
