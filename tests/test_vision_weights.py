"""Reading PyTorch state_dict files without PyTorch, in both of its formats.

The files are written here the way ``torch.save`` writes them: the same
pickle opcodes, globals and persistent ids, produced through stand-in
``torch`` modules (PyTorch itself is not installed). The packaged MobileNetV2
checkpoint, a real legacy file, is covered in test_vision_analysers.py.
"""

from __future__ import annotations

import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vision.analysers.torch_weights import LEGACY_MAGIC, LEGACY_PROTOCOL, WeightsFormatError, load_state_dict


class _Storage:
    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key, self.data = key, data


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.args = (storage, offset, shape, stride, False, OrderedDict())

    def __reduce__(self) -> tuple[Any, ...]:
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """``torch`` and ``torch._utils`` with just the names torch.save's pickles refer to."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    yield torch


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, torch: types.ModuleType) -> None:
        super().__init__(file, protocol=2)
        self.torch = torch

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _Storage):
            kind = self.torch.FloatStorage if obj.data.dtype == np.float32 else self.torch.LongStorage
            return ("storage", kind, obj.key, "cpu", obj.data.size)
        return None


def sample_state() -> tuple[OrderedDict[str, _Tensor], dict[str, np.ndarray], list[_Storage]]:
    """A weight matrix, its transpose (a strided view of the same storage), a counter and a bias."""
    weights = _Storage("0", np.arange(12, dtype=np.float32))
    counter = _Storage("1", np.array([7], dtype=np.int64))
    state = OrderedDict(
        [
            ("layer.weight", _Tensor(weights, 0, (3, 4), (4, 1))),
            ("layer.weight_t", _Tensor(weights, 0, (4, 3), (1, 4))),
            ("layer.bias", _Tensor(weights, 8, (4,), (1,))),
            ("norm.num_batches_tracked", _Tensor(counter, 0, (), ())),
        ]
    )
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    expected = {
        "layer.weight": matrix,
        "layer.weight_t": matrix.T,
        "layer.bias": np.arange(8, 12, dtype=np.float32),
        "norm.num_batches_tracked": np.array(7, dtype=np.int64),
    }
    return state, expected, [weights, counter]


def check(loaded: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(loaded) == list(expected)
    for name, array in expected.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array)


def test_zip_format(tmp_path: Path, fake_torch: types.ModuleType) -> None:
    state, expected, storages = sample_state()
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("model/data.pkl", "w") as stream:
            _Pickler(stream, fake_torch).dump(state)
        for storage in storages:
            archive.writestr(f"model/data/{storage.key}", storage.data.tobytes())
    check(load_state_dict(path), expected)


def test_legacy_format(tmp_path: Path, fake_torch: types.ModuleType) -> None:
    state, expected, storages = sample_state()
    path = tmp_path / "model.pth"
    with path.open("wb") as stream:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, stream, protocol=2)
        _Pickler(stream, fake_torch).dump(state)
        pickle.dump([storage.key for storage in storages], stream, protocol=2)
        for storage in storages:
            stream.write(struct.pack("<q", storage.data.size) + storage.data.tobytes())
    check(load_state_dict(path), expected)


class _Exploit:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this would have been os.system",))


def test_a_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"weight": _Exploit()}, protocol=2))
    with pytest.raises(WeightsFormatError, match=r"refusing to load __builtin__\.print"):
        load_state_dict(path)
    # The legacy format's header pickles are restricted too.
    path.write_bytes(pickle.dumps(_Exploit(), protocol=2))
    with pytest.raises(WeightsFormatError, match=r"refusing to load __builtin__\.print"):
        load_state_dict(path)


def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path: Path, fake_torch: types.ModuleType) -> None:
    storage = _Storage("0", np.arange(4, dtype=np.float32))
    path = tmp_path / "model.pth"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("model/data.pkl", "w") as stream:
            _Pickler(stream, fake_torch).dump({"weight": _Tensor(storage, 2, (100,), (1,))})
        archive.writestr("model/data/0", storage.data.tobytes())
    with pytest.raises(WeightsFormatError, match="reaches outside its storage"):
        load_state_dict(path)


def test_not_a_pytorch_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_bytes(pickle.dumps("just a string") + b"more")
    with pytest.raises(WeightsFormatError, match="bad magic number"):
        load_state_dict(path)
    path.write_bytes(b"\x00\x01 garbage")
    with pytest.raises(WeightsFormatError, match="not a readable PyTorch file"):
        load_state_dict(path)
