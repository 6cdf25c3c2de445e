"""Personas served: chosen per connection, listed for clients, their corpora indexed when first chosen.

A real ``LiveServer`` with ``PersonaProfiles`` and the scripted backend; the
personas are files in a user folder made here, one of them with a packaged
corpus that indexes slowly, to see what a session is told meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from assistant.cli import main
from assistant.cli.talk import with_persona
from assistant.knowledge import KnowledgeService, Passage
from assistant.knowledge.corpora import BUILTIN_CORPORA
from assistant.personas import PersonaProfiles
from assistant.protocol import FunctionCall, FunctionResponse, ServerMessage, TextInput, ToolResponses
from assistant.session import UnknownProfile
from assistant.tools.discovery import ToolSources, load_tools
from tests.conftest import ServerFactory
from tests.support.scripted import ScriptedBackend, ScriptedSession
from tests.test_server_raw import closed_with, echo, recv_json, url

GARDENER = """
display_name = "Gardener"
description = "Knows the garden notes."
instruction = "You are a patient gardener. Call search_knowledge first."
voice = "Kore"
tools = ["search_knowledge"]

[knowledge]
collection = "garden"
corpus = "slow-garden"
passages = 1
"""
COACH = 'display_name = "Coach"\ninstruction = "You are a running coach."\ntools = []\n'


class SlowGarden:
    """A packaged corpus whose indexing waits until the test lets it go on."""

    name = "slow-garden"
    title = "Garden notes"
    release = threading.Event()

    def fingerprint(self) -> str:
        return "garden-1"

    def passages(self) -> Iterator[Passage]:
        assert self.release.wait(30), "the test never let indexing finish"
        yield Passage("Turn the compost every fortnight.", "Compost")
        yield Passage("Tomatoes want six hours of sun.", "Tomatoes")


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "personas"
    folder.mkdir()
    (folder / "gardener.toml").write_text(GARDENER)
    (folder / "coach.toml").write_text(COACH)
    monkeypatch.setitem(BUILTIN_CORPORA, "slow-garden", f"{__name__}:SlowGarden")
    SlowGarden.release.clear()
    return folder


async def test_the_catalog_lists_what_clients_may_choose(live_server: ServerFactory, user_dir: Path) -> None:
    profiles = PersonaProfiles(KnowledgeService(), "coach", user_dir=user_dir)
    (user_dir / "broken.toml").write_text('instruction = "x"\nvoise = "Kore"\n')
    async with live_server(ScriptedBackend(echo), profiles=profiles, persona_catalog=profiles.catalog) as server:
        listing = await asyncio.to_thread(_get_json, f"http://127.0.0.1:{server.port}/personas.json")
    assert listing["default"] == "coach" and listing["none"] == "none"
    by_name = {persona["name"]: persona for persona in listing["personas"]}
    assert by_name["gardener"] == {"name": "gardener", "title": "Gardener", "description": "Knows the garden notes."}
    assert by_name["thiruvalluvar"]["title"] == "Thiruvalluvar"  # shipped personas are there too
    assert "broken" not in by_name  # an invalid file is logged, not offered


def _get_json(address: str) -> dict:
    with urllib.request.urlopen(address, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"
        result: dict = json.loads(response.read())
        return result


async def test_each_connection_chooses_its_persona(live_server: ServerFactory, user_dir: Path) -> None:
    profiles = PersonaProfiles(KnowledgeService(), "coach", user_dir=user_dir)
    backend = ScriptedBackend(echo)
    async with live_server(backend, profiles=profiles) as server:
        for query in ("", "?persona=none", "?persona=nobody"):
            async with connect(url(server, query=query)) as ws:
                await ws.send(json.dumps({"setup": {"model": "m"}}))
                if query.endswith("nobody"):
                    code, reason = await closed_with(ws)
                    assert code == 1008 and reason.startswith("no persona named 'nobody'; available: ")
                    assert "coach" in reason and "thiruvalluvar" in reason
                else:
                    assert "setupComplete" in await recv_json(ws)
    default, plain = (session.request.setup for session in backend.sessions)
    assert default.system_instruction is not None and default.system_instruction.text() == "You are a running coach."
    assert plain.system_instruction is None  # "none": the plain assistant, though the server has a default


async def test_a_default_persona_that_does_not_exist_stops_the_server_at_start(user_dir: Path) -> None:
    with pytest.raises(UnknownProfile, match="no persona named 'nobody'"):
        await PersonaProfiles(KnowledgeService(), "nobody", user_dir=user_dir).start()


async def test_a_persona_first_chosen_while_its_corpus_indexes_hears_so_then_finds_it(
    live_server: ServerFactory, user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("assistant.tools.builtin.search_knowledge.READY_WAIT_S", 0.2)
    knowledge = KnowledgeService()
    profiles = PersonaProfiles(knowledge, user_dir=user_dir)
    tools = await load_tools(ToolSources(builtins=True, entry_points=False, knowledge=knowledge))
    responses: list[FunctionResponse] = []

    async def gardener(s: ScriptedSession) -> None:
        assert [d.name for d in s.request.setup.function_declarations()] == ["search_knowledge"]
        for number in (1, 2):
            await s.expect(TextInput)
            s.emit(
                ServerMessage.calls([FunctionCall(id=f"g{number}", name="search_knowledge", args={"query": "compost"})])
            )
            responses.extend((await s.expect(ToolResponses, timeout=30)).responses)
            if number == 1:
                SlowGarden.release.set()
                await knowledge.prepare("garden", "slow-garden")  # the same indexing, now done
            s.emit(ServerMessage.turn_done())
        await s.closed.wait()

    try:
        async with live_server(ScriptedBackend(gardener), tools=tools, profiles=profiles) as server:
            async with connect(url(server, query="?persona=gardener")) as ws:
                await ws.send(json.dumps({"setup": {"model": "m"}}))
                await recv_json(ws)
                for _ in range(2):
                    await ws.send(json.dumps({"realtimeInput": {"text": "when is compost ready?"}}))
                    while "turnComplete" not in json.dumps(await recv_json(ws, timeout=30)):
                        pass
    finally:
        await tools.aclose()
        await knowledge.aclose()
    waiting, ready = (response.response for response in responses)
    assert waiting == {
        "error": "the garden collection is still being indexed (only the first time it is used, a minute or two); "
        "ask again in a moment"
    }
    assert ready is not None
    [passage] = ready["output"]["passages"]  # the persona's passages = 1
    assert passage["text"] == "Turn the compost every fortnight." and passage["source"] == "Garden notes, Compost"


def test_serve_with_an_unknown_persona_says_what_exists(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("assistant.cli.serve.create_backend", lambda name, settings: ScriptedBackend(echo))
    status = main(["serve", "--persona", "nobody", "--port", "0", "--resumption-store", "memory"])
    assert status == 2
    assert "assistant: no persona named 'nobody'; available: " in capsys.readouterr().err


def test_serve_publishes_persona_dirs_from_the_option_and_the_config_file(
    tmp_path: Path, user_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("assistant.cli.serve.create_backend", lambda name, settings: ScriptedBackend(echo))
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path / "empty-config"))
    served = ["serve", "--port", "0", "--resumption-store", "memory", "--persona", "nobody"]
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "baker.toml").write_text('instruction = "You bake."\n')
    config = tmp_path / "config.toml"
    config.write_text('[personas]\ndirs = ["more"]\n')  # relative to the config file
    assert main([*served, "--config", str(config), "--persona-dir", str(user_dir)]) == 2
    available = capsys.readouterr().err.partition("available: ")[2]
    assert {"baker", "coach", "gardener", "thiruvalluvar"} <= set(available.strip().split(", "))
    assert main([*served, "--persona-dir", str(tmp_path / "missing")]) == 2
    assert f"persona folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err


def test_serve_persona_may_be_a_file_the_operator_names(tmp_path: Path) -> None:
    from assistant.cli.serve import published_personas

    (tmp_path / "config.toml").write_text("")
    args = argparse.Namespace(config=tmp_path / "config.toml", persona_dirs=[], persona=str(tmp_path / "baker.toml"))
    with pytest.raises(UnknownProfile, match=f"persona file {tmp_path / 'baker.toml'} does not exist"):
        published_personas(args)
    (tmp_path / "baker.toml").write_text('instruction = "You bake."\n')
    assert published_personas(args) == ("baker", [tmp_path / "baker.toml"])
    args.persona = "baker"
    assert published_personas(args) == ("baker", [])


def test_talk_asks_a_server_for_its_persona_in_the_url() -> None:
    address = "ws://127.0.0.1:8765/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
    assert with_persona(address, None) == address
    assert with_persona(address, "thiruvalluvar") == f"{address}?persona=thiruvalluvar"
    assert with_persona(f"{address}?key=k&persona=old", "coach") == f"{address}?key=k&persona=coach"
