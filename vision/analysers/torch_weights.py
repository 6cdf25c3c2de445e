"""Read a PyTorch ``state_dict`` file into NumPy arrays, without PyTorch.

The ImageNet classifier's weights ship as a ``.pth`` file (torchvision's
MobileNetV2 checkpoint, in the pre-1.6 "legacy" serialisation). Importing
torch just to read 14 MB of floats would cost seconds and a GB of wheels, so
this module reads both of PyTorch's formats directly:

- legacy: a stream of pickles (magic number, protocol version, system info,
  the object, the list of storage keys) followed by each storage's raw bytes,
  prefixed with its element count;
- zip (torch >= 1.6): ``<name>/data.pkl`` plus one ``<name>/data/<key>``
  member per storage.

The unpickler is restricted: it resolves only the handful of names a tensor
``state_dict`` uses and refuses everything else, so a hostile file cannot run
code the way ``torch.load(weights_only=False)`` would let it.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from assistant.errors import AssistantError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class WeightsFormatError(AssistantError, ValueError):
    """The file is not a PyTorch tensor dictionary this reader understands."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return STORAGE_DTYPES[self.name]


@dataclass(slots=True)
class _Storage:
    """A storage whose bytes may arrive after the pickle that refers to it (legacy format)."""

    dtype: np.dtype[Any]
    numel: int
    data: np.ndarray | None = None


@dataclass(slots=True)
class _PendingTensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        if self.storage.data is None:
            raise WeightsFormatError("a tensor refers to a storage the file does not contain")
        itemsize = self.storage.dtype.itemsize
        # as_strided trusts its arguments: check that the view stays inside the storage.
        if len(self.shape) != len(self.stride):
            raise WeightsFormatError(f"a tensor of shape {self.shape} has strides {self.stride}")
        last = self.offset + sum((size - 1) * step for size, step in zip(self.shape, self.stride, strict=True))
        if (
            self.offset < 0
            or any(step < 0 for step in self.stride)
            or (min(self.shape, default=1) > 0 and last >= len(self.storage.data))
        ):
            raise WeightsFormatError(f"a tensor of shape {self.shape} reaches outside its storage")
        if not self.shape:
            return self.storage.data[self.offset : self.offset + 1].reshape(()).copy()
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :],
            shape=self.shape,
            strides=tuple(step * itemsize for step in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...], *_: Any) -> Any:
    return _PendingTensor(storage, offset, tuple(shape), tuple(stride))


def _ordered_dict(*args: Any) -> OrderedDict[Any, Any]:
    return OrderedDict(*args)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _ordered_dict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, stream: IO[bytes], load_storage: Callable[[_StorageType, str, int], _Storage]) -> None:
        super().__init__(stream)
        self.load_storage = load_storage
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise WeightsFormatError(f"refusing to load {module}.{name}: not part of a tensor state_dict") from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or _text(pid[0]) != "storage":
            raise WeightsFormatError(f"unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1], _text(pid[2]), pid[3], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise WeightsFormatError(f"unsupported storage type {storage_type!r}")
        if key not in self.storages:
            self.storages[key] = self.load_storage(storage_type, key, int(numel))
        return self.storages[key]


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _tensors(obj: Any) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise WeightsFormatError(f"expected a state_dict (a mapping of names to tensors), found {type(obj).__name__}")
    return {str(name): value.materialise() for name, value in obj.items() if isinstance(value, _PendingTensor)}


def _no_storage(kind: _StorageType, key: str, numel: int) -> _Storage:
    raise WeightsFormatError("a storage reference outside the state_dict")


def _load_legacy(stream: IO[bytes]) -> dict[str, np.ndarray]:
    # Every pickle in the file goes through the restricted unpickler, the headers too.
    def header() -> Any:
        return _Unpickler(stream, _no_storage).load()

    if header() != LEGACY_MAGIC:
        raise WeightsFormatError("not a PyTorch file (bad magic number)")
    if header() != LEGACY_PROTOCOL:
        raise WeightsFormatError("unsupported PyTorch legacy protocol version")
    system = header()
    if isinstance(system, dict) and not system.get("little_endian", True):
        raise WeightsFormatError("big-endian PyTorch files are not supported")
    unpickler = _Unpickler(stream, lambda kind, _key, numel: _Storage(kind.dtype, numel))
    state = unpickler.load()
    for key in header():
        storage = unpickler.storages.get(_text(key))
        if storage is None:
            raise WeightsFormatError(f"the file holds data for a storage no tensor uses ({key!r})")
        (count,) = struct.unpack("<q", stream.read(8))
        raw = stream.read(count * storage.dtype.itemsize)
        if len(raw) != count * storage.dtype.itemsize:
            raise WeightsFormatError("the file ends inside a tensor's data")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return _tensors(state)


def _load_zip(archive: zipfile.ZipFile) -> dict[str, np.ndarray]:
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") or name == "data.pkl"]
    if len(pickles) != 1:
        raise WeightsFormatError("a PyTorch zip file holds exactly one data.pkl")
    prefix = pickles[0][: -len("data.pkl")]

    def load_storage(kind: _StorageType, key: str, numel: int) -> _Storage:
        raw = archive.read(f"{prefix}data/{key}")
        return _Storage(kind.dtype, numel, np.frombuffer(raw, dtype=kind.dtype)[:numel])

    with archive.open(pickles[0]) as stream:
        return _tensors(_Unpickler(stream, load_storage).load())


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The named tensors in a PyTorch ``.pth``/``.pt`` state_dict file, as NumPy arrays."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return _load_zip(archive)
    with path.open("rb") as stream:
        try:
            return _load_legacy(stream)
        except (pickle.UnpicklingError, EOFError, struct.error) as error:
            raise WeightsFormatError(f"{path} is not a readable PyTorch file: {error}") from error
