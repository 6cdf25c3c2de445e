"""Where each model runs: the CPU, or a CUDA GPU when the machine has one.

``--device auto`` (the default) puts every stage on the GPU that its runtime
can reach and leaves the rest on the CPU, so one flag serves a laptop and a
GPU server. Each runtime has its own way of seeing a GPU (CTranslate2's CUDA
build, onnxruntime-gpu's provider, a CUDA build of llama.cpp, torch), so the
question is asked per runtime, without importing anything the stage does not
already need. ``--device cuda`` is a promise: a runtime that cannot reach a
GPU then stops the server with what to install, instead of running slowly
on the CPU without saying so.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from typing import Any, Literal

from assistant.backends.local.models import ModelMissing

DEVICES = ("auto", "cpu", "cuda")
Device = Literal["cpu", "cuda"]
OPENMP_WAIT = "OMP_WAIT_POLICY"  # read once by each OpenMP runtime, when it loads
_quieted_openmp = False  # OPENMP_WAIT is this package's choice, not the user's


def quiet_openmp() -> None:
    """OpenMP runtimes that load from now on sleep when idle, unless the user chose a wait policy.

    Whisper (CTranslate2) and llama.cpp bring their own OpenMP runtimes, whose
    idle threads spin by default. With three models sharing two cores,
    spinning threads starve the ones with work: measured here, llama.cpp fell
    from 22 to 2 tokens/s. Called before either library loads (they load lazily).
    """
    global _quieted_openmp
    if OPENMP_WAIT not in os.environ:
        os.environ[OPENMP_WAIT] = "PASSIVE"
        _quieted_openmp = True


@contextlib.contextmanager
def briefly_spinning_openmp() -> Iterator[None]:
    """Load llama.cpp inside: its OpenMP runtime spins a moment before it sleeps, as by default.

    llama.cpp meets an OpenMP barrier after every operation of a token; a
    runtime that sleeps at each one made SmolLM2-135M three times slower on
    two cores (11 -> 36 ms a token), while the default spins only a moment
    after its work and then sleeps too. CTranslate2 keeps ``quiet_openmp``'s
    policy: in three alternating full latency runs each, p95 voice to voice
    went from 766-797 to 555-658 ms. A policy the user set is left alone.
    """
    if not _quieted_openmp or os.environ.get(OPENMP_WAIT) != "PASSIVE":
        yield
        return
    del os.environ[OPENMP_WAIT]
    try:
        yield
    finally:
        os.environ[OPENMP_WAIT] = "PASSIVE"


def _pick(requested: str, runtime: str, gpu_seen: bool, remedy: str) -> Device:
    """The device for one runtime: ``requested`` when possible, the reason when ``cuda`` is not."""
    if requested not in DEVICES:
        raise ValueError(f"device {requested!r}: choose one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return "cpu"
    if gpu_seen:
        return "cuda"
    if requested == "cuda":
        raise ModelMissing(f"--device cuda: {runtime} sees no CUDA GPU; {remedy}")
    return "cpu"


def _count(module: str, attribute: str) -> int:
    """A runtime's CUDA device count, 0 when the runtime (or its CUDA build) is absent."""
    try:
        counter = getattr(importlib.import_module(module), attribute)
        return int(counter())
    except (ImportError, AttributeError, RuntimeError, OSError):
        return 0


def ctranslate2_device(requested: str) -> tuple[Device, str]:
    """Device and compute type for faster-whisper: float16 on a GPU, int8 on the CPU."""
    device = _pick(
        requested,
        "CTranslate2",
        _count("ctranslate2", "get_cuda_device_count") > 0,
        "install the NVIDIA driver with CUDA 12 cuBLAS and cuDNN 9 (pip install nvidia-cublas-cu12 nvidia-cudnn-cu12)",
    )
    return device, "float16" if device == "cuda" else "int8"


def onnxruntime_providers(requested: str) -> list[str]:
    """onnxruntime execution providers, CUDA first when the onnxruntime-gpu build has it."""
    try:
        available = importlib.import_module("onnxruntime").get_available_providers()
    except ImportError:
        available = []
    device = _pick(
        requested,
        "onnxruntime",
        "CUDAExecutionProvider" in available,
        "replace onnxruntime with onnxruntime-gpu",
    )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]


def llama_gpu_layers(requested: str) -> int:
    """Layers llama.cpp offloads: all of them (-1) with a GPU build, none on the CPU."""
    try:
        supports = bool(importlib.import_module("llama_cpp").llama_supports_gpu_offload())
    except (ImportError, AttributeError, OSError):
        supports = False
    device = _pick(
        requested,
        "llama-cpp-python",
        supports,
        'rebuild it with CUDA: CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall llama-cpp-python',
    )
    return -1 if device == "cuda" else 0


def torch_device(requested: str) -> Device:
    """The device for transformers models."""
    return _pick(
        requested,
        "torch",
        _count("torch.cuda", "device_count") > 0,
        "install a CUDA build of torch (https://pytorch.org/get-started/locally/)",
    )


def torch_runtime(requested: str, threads: int, what: str) -> tuple[Any, Device]:
    """torch and the device a transformers model runs on (with ``threads`` CPU threads when on the CPU)."""
    try:
        torch = importlib.import_module("torch")
        importlib.import_module("transformers")
    except ModuleNotFoundError as exc:
        raise ModelMissing(
            f"{what} needs torch and transformers ({exc.name} is missing): pip install 'live-assistant[transformers]'"
        ) from exc
    device = torch_device(requested)
    if device == "cpu":
        torch.set_num_threads(threads)
    return torch, device
