"""The ``assistant`` command line."""

from __future__ import annotations

import pytest

from assistant import backends
from assistant.backends import BackendSpec, BackendUnavailable, resolve_backend_name
from assistant.cli import main
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
    monkeypatch.setattr("assistant.cli.serve.create_backend", lambda name, args: ScriptedBackend(idle))
    status = main(["serve", "--tls-cert", "cert.pem", "--port", "0", "--resumption-store", "memory"])
    assert status == 2
    assert "cannot serve: TLS needs both --tls-cert and --tls-key" in capsys.readouterr().err
