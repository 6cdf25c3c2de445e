"""The ``assistant`` command line."""

from __future__ import annotations

import argparse

import pytest

from assistant import backends
from assistant.backends import BackendSpec, BackendUnavailable, resolve_backend_name
from assistant.cli import build_parser, main
from assistant.cli.serve import page_url, server_config
from tests.support.scripted import ScriptedBackend, idle


def test_auto_backend_follows_the_environment() -> None:
    assert resolve_backend_name("auto", {}) == "local"
    assert resolve_backend_name("auto", {"GEMINI_API_KEY": "x"}) == "gemini"
    assert resolve_backend_name("auto", {"GOOGLE_API_KEY": "x"}) == "gemini"
    assert resolve_backend_name("auto", {"GOOGLE_GENAI_USE_VERTEXAI": "true"}) == "gemini"
    assert resolve_backend_name("local", {"GEMINI_API_KEY": "x"}) == "local"
    with pytest.raises(BackendUnavailable, match="unknown backend 'nope'"):
        resolve_backend_name("nope", {})


def test_serve_with_a_backend_that_is_not_installed_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = BackendSpec("local", "assistant.backends.not_built_yet", "local", "test")
    monkeypatch.setitem(backends.BACKENDS, "local", missing)
    status = main(["serve", "--backend", "local", "--port", "0", "--resumption-store", "memory"])
    assert status == 2
    err = capsys.readouterr().err
    assert "the local backend is not installed" in err
    assert "pip install 'live-assistant[local]'" in err


def test_serve_refuses_half_a_tls_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("assistant.cli.serve.create_backend", lambda name, settings: ScriptedBackend(idle))
    status = main(["serve", "--tls-cert", "cert.pem", "--port", "0", "--resumption-store", "memory"])
    assert status == 2
    assert "cannot serve: TLS needs both --tls-cert and --tls-key" in capsys.readouterr().err


def serve_args(*argv: str, monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    monkeypatch.delenv("ASSISTANT_API_KEY", raising=False)
    return build_parser().parse_args(["serve", *argv])


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "assistant.lan"])
def test_serve_beyond_loopback_makes_an_access_key(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = server_config(serve_args("--host", host, monkeypatch=monkeypatch))
    second = server_config(serve_args("--host", host, monkeypatch=monkeypatch))
    assert first.api_key and second.api_key and first.api_key != second.api_key  # from secrets, per run
    assert len(first.api_key) >= 32


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_serve_on_loopback_may_stay_keyless(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert server_config(serve_args("--host", host, monkeypatch=monkeypatch)).api_key is None


def test_serve_key_options(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    given = serve_args("--host", "0.0.0.0", "--api-key", "mine", "--allow-host", "box.lan", monkeypatch=monkeypatch)
    config = server_config(given)
    assert config.api_key == "mine" and config.allowed_hosts == ["box.lan"]
    assert "box.lan" in config.access_policy().allowed_hosts and "0.0.0.0" not in config.access_policy().allowed_hosts
    open_to_all = server_config(serve_args("--host", "0.0.0.0", "--no-auth", monkeypatch=monkeypatch))
    assert open_to_all.api_key is None
    assert "WARNING: --no-auth on 0.0.0.0: anyone who can reach port 8765" in capsys.readouterr().err
    with pytest.raises(ValueError, match="contradict"):
        server_config(serve_args("--no-auth", "--api-key", "x", monkeypatch=monkeypatch))
    limits = server_config(
        serve_args("--max-sessions", "8", "--max-sessions-per-key", "2", monkeypatch=monkeypatch)
    )
    assert (limits.max_sessions, limits.max_sessions_per_key) == (8, 2)
    with pytest.raises(SystemExit):
        serve_args("--max-sessions", "0", monkeypatch=monkeypatch)


def test_page_url_carries_the_key_for_the_operator() -> None:
    assert page_url("http", "0.0.0.0", 8765, "k") == "http://127.0.0.1:8765/?key=k"
    assert page_url("https", "::1", 443, None) == "https://[::1]:443/"


def test_serve_help_says_how_to_run_it_safely(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--allow-host", "--no-auth", "--max-sessions", "ephemeral tokens", "DNS rebinding", "reverse proxy"):
        assert words in text


def test_backends_are_built_from_typed_settings_that_carry_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line ends at ``settings_from_args``: each option lands in the backend's frozen settings."""
    from assistant.backends.gemini import GeminiSettings
    from assistant.backends.local import LocalBackend, LocalConfig

    local_options = ["--backend", "local", "--asr-model", "base.en", "--llm-model", "none", "--asr-url", "tcp://h:1"]
    local_options += ["--llm-url", "http://h/v1", "--llm-api-key", "k", "--tts-url", "tcp://h:2"]
    local_options += ["--speech-api-key", "s", "--dialogue", "model", "--voice", "espeak", "--silence-ms", "700"]
    local_options += ["--eager-end-ms", "0", "--device", "cpu", "--local-threads", "3", "--allow-download"]
    local_options += ["--local-decode-threads", "2"]
    settings = backends.settings_from_args("local", serve_args(*local_options, monkeypatch=monkeypatch))
    assert settings == LocalConfig(
        asr_model="base.en",
        chat_model="none",
        llm_url="http://h/v1",
        llm_api_key="k",
        asr_url="tcp://h:1",
        tts_url="tcp://h:2",
        speech_api_key="s",
        dialogue="model",
        voice="espeak",
        silence_ms=700,
        eager_end_ms=0,
        threads=3,
        decode_threads=2,
        device="cpu",
        allow_download=True,
    )
    backend = backends.create_backend("local", settings)
    assert isinstance(backend, LocalBackend) and backend.config is settings

    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)
    gemini_options = ["--gemini-model", "m", "--gemini-voice", "Kore", "--gemini-max-fps", "0.5"]
    gemini_options += ["--gemini-no-context-compression", "--gemini-reconnect-attempts", "0"]
    gemini = backends.settings_from_args("gemini", serve_args(*gemini_options, monkeypatch=monkeypatch))
    expected = GeminiSettings(model="m", voice="Kore", max_fps=0.5, context_compression=False, reconnect_attempts=0)
    assert gemini == expected
