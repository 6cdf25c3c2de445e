"""Which event loop ``assistant serve`` runs on (``--loop``)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from assistant.cli import main
from assistant.server.eventloop import LoopUnavailable, loop_factory, loop_name, run


async def running_loop_name() -> str:
    return loop_name(asyncio.get_running_loop())


def test_auto_and_uvloop_run_on_uvloop_and_asyncio_on_asyncio() -> None:
    assert run(running_loop_name(), "auto") == "uvloop"
    assert run(running_loop_name(), "uvloop") == "uvloop"
    assert run(running_loop_name(), "asyncio") == "asyncio"


def test_without_uvloop_auto_falls_back_and_an_explicit_uvloop_says_why_it_cannot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError, as where it is missing
    assert loop_factory("auto") is None
    assert run(running_loop_name(), "auto") == "asyncio"
    main_coroutine = running_loop_name()
    with pytest.raises(LoopUnavailable, match="--loop uvloop needs uvloop"):
        run(main_coroutine, "uvloop")
    assert main_coroutine.cr_frame is None  # closed, not left to warn that it was never awaited


def test_serve_with_loop_uvloop_where_it_is_missing_exits_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    monkeypatch.delenv("ASSISTANT_API_KEY", raising=False)
    status = main(["serve", "--loop", "uvloop", "--port", "0", "--resumption-store", "memory"])
    assert status == 2
    err = capsys.readouterr().err
    assert "assistant: --loop uvloop needs uvloop, which is not installed here" in err
    assert "Traceback" not in err
