"""Client-chosen names reach only what the operator published; no client string becomes a path.

A persona, voice, model or knowledge collection name comes from the client
(``?persona=``, the ``x-assistant-persona`` header, ``setup``, or the model
repeating what a user said in a tool call). The property test sets sessions
up with hostile strings through the real ``Session`` over the in-process
pipe, with an audit hook (``tests/support/audit.py``) recording every file
the process opens or lists meanwhile, and checks each against the published
set: the persona folders, the shipped personas, installed packages'
metadata (entry points) and the server's data dir.

The module runs in a pytest process of its own (``test_names_published.py``
starts it): an audit hook is process-wide and cannot be removed, and in the
process of the whole suite these hypothesis tests ran past their timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

import assistant.personas
from assistant.knowledge import KnowledgeService
from assistant.personas import PersonaProfiles
from assistant.personas.model import PERSONA_NAME
from assistant.protocol import CloseCode, FunctionCall, FunctionResponse, ServerMessage, ToolResponses
from assistant.session import MemoryResumptionStore, ServerTools, Session
from assistant.session.pipe import PipeClosed, pipe
from assistant.tools.discovery import ToolSources, load_tools
from tests.conftest import ServerFactory
from tests.support.audit import Recording, recording
from tests.support.pipe_client import PipeClient
from tests.support.scripted import ScriptedBackend, ScriptedSession, idle
from tests.test_server_raw import closed_with, recv_json, url

COACH = 'display_name = "Coach"\ninstruction = "You are a running coach."\ntools = []\n'
GARDENER = """
instruction = "You are a gardener."
tools = ["search_knowledge"]

[knowledge]
collection = "garden"
"""
SECRET = 'instruction = "THE SECRET PERSONA: nobody published me."\n'
BUILTIN_DIR = Path(assistant.personas.__file__).parent / "builtin"

# Strings an attacker would try, as whole names and as prefixes of random text.
HOSTILE = [
    "/etc/passwd",
    "/etc/shadow",
    "/dev/zero",
    "/proc/self/environ",
    "../../x.toml",
    "../secret/secret.toml",
    "secret.toml",
    "~/.ssh/id_rsa",
    "..",
    ".",
    "coach.toml",
    "coach/../coach",
    "coach\n",
    "coach\x00",
    "\x00",
    "..\\..\\x.toml",
    "file:///etc/passwd",
    "%2e%2e%2fsecret",
    "-w/tmp/x",
    "--help",
    "espeak:../../../../tmp/x",
    "espeak:-w/tmp/x",
    "x" * 5000,
]
hostile_strings = (
    st.sampled_from(HOSTILE)
    | st.text(max_size=200)
    | st.builds(lambda head, tail: head + tail, st.sampled_from(HOSTILE), st.text(max_size=20))
    | st.from_regex(PERSONA_NAME, fullmatch=True)  # well-formed names that name nothing published
)


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A user persona folder, an operator's ``--persona-dir``, and a secret persona beside them, unpublished."""
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(tmp_path / "config"))
    user_dir = tmp_path / "config" / "personas"
    persona_dir = tmp_path / "published"
    secret_dir = tmp_path / "secret"
    for folder in (user_dir, persona_dir, secret_dir):
        folder.mkdir(parents=True)
    (user_dir / "coach.toml").write_text(COACH)
    (persona_dir / "gardener.toml").write_text(GARDENER)
    (persona_dir / "broken.toml").write_text('instruction = "x"\nvoise = "Kore"\n')
    (secret_dir / "secret.toml").write_text(SECRET)
    monkeypatch.chdir(persona_dir)  # so "../secret/secret.toml" would reach the secret from here
    yield {"user": user_dir, "persona_dir": persona_dir, "secret": secret_dir / "secret.toml"}


def unpublished(record: Recording, roots: list[Path]) -> list[str]:
    """What the process opened or listed outside the published roots and installed packages' metadata.

    Package metadata (``*.dist-info``) and the ``sys.path`` entries are where
    ``importlib.metadata`` finds the ``assistant.personas`` entry points.
    """
    real_roots = [root.resolve() for root in roots]
    search_path = {os.path.realpath(entry or ".") for entry in sys.path}

    def published(path: str, listing: bool) -> bool:
        real = Path(os.path.realpath(path))
        metadata = real if listing else real.parent
        return (
            any(real.is_relative_to(root) for root in real_roots)
            or str(real) in search_path
            or metadata.suffix in {".dist-info", ".egg-info"}
        )

    return [p for p in sorted(set(record.opened)) if not published(p, False)] + [
        p for p in sorted(set(record.listed)) if not published(p, True)
    ]


def search(collection: str) -> FunctionCall:
    """The call a model makes when it repeats a collection name a user said."""
    return FunctionCall(id="k1", name="search_knowledge", args={"query": "compost", "collection": collection})


async def set_up(
    profiles: PersonaProfiles,
    *,
    persona: str | None,
    model: str = "models/gemini-live-2.5-flash",
    voice: str | None = None,
    calls: list[FunctionCall] | None = None,
    tools: ServerTools | None = None,
) -> tuple[int | None, str, list[FunctionResponse]]:
    """Set a session up over the pipe as a client would, then let the model make ``calls``.

    The close code and reason (None: it opened), and the answers to the calls.
    """
    responses: list[FunctionResponse] = []

    async def script(s: ScriptedSession) -> None:
        if calls:
            s.emit(ServerMessage.calls(calls))
            while len(responses) < len(calls):
                responses.extend((await s.expect(ToolResponses, timeout=30)).responses)
            s.emit(ServerMessage.turn_done())
        await s.closed.wait()

    backend = ScriptedBackend(script)
    server_end, client_end = pipe()
    session = Session(
        server_end, backend, store=MemoryResumptionStore(), tools=tools, profiles=profiles, requested_profile=persona
    )
    task = asyncio.create_task(session.run())
    client = PipeClient(client_end)
    setup: dict[str, object] = {"model": model}
    if voice is not None:
        setup["generationConfig"] = {"speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}}}
    await client.send({"setup": setup})
    try:
        first = await client.recv()
    except PipeClosed as closed:
        await task
        await backend.aclose()
        return closed.code, closed.reason, responses
    assert first.setup_complete is not None
    if calls:
        while not (await client.recv(timeout=30)).is_turn_complete:
            pass
    await client_end.close(1000, "bye")
    await asyncio.wait_for(task, 10)
    await backend.aclose()
    return None, "", responses


def test_hostile_names_open_nothing_the_operator_did_not_publish(
    published: dict[str, Path], private_data_dir: Path
) -> None:
    knowledge = KnowledgeService()
    profiles = PersonaProfiles(knowledge, "coach", folders=[published["persona_dir"]])
    roots = [published["user"], published["persona_dir"], BUILTIN_DIR, private_data_dir]

    async def prepare() -> ServerTools:
        await profiles.start()
        tools = await load_tools(ToolSources(builtins=True, entry_points=False, knowledge=knowledge))
        # Warm up: modules imported on first use and the store's files are opened before recording.
        assert (await set_up(profiles, persona="gardener", calls=[search("garden")], tools=tools))[0] is None
        return tools

    tools = asyncio.run(prepare())

    # The hook records: a published persona's file is seen when it is chosen.
    with recording() as record:
        assert asyncio.run(set_up(profiles, persona="gardener"))[0] is None
    assert str(published["persona_dir"] / "gardener.toml") in record.opened

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        persona=hostile_strings,
        model=hostile_strings,
        voice=hostile_strings,
        collection=hostile_strings,
        tool=hostile_strings.filter(lambda name: not tools.handles(name)),
    )
    def check(persona: str, model: str, voice: str, collection: str, tool: str) -> None:
        calls = [search(collection), FunctionCall(id="t1", name=tool, args={"path": collection})]
        with recording() as record:
            code, reason, _ = asyncio.run(set_up(profiles, persona=persona, model=model, voice=voice))
            _, _, answers = asyncio.run(set_up(profiles, persona="gardener", voice=voice, calls=calls, tools=tools))
        assert unpublished(record, roots) == []
        assert not record.spawned
        if code is not None:
            assert code == CloseCode.POLICY_VIOLATION
            assert "available: " in reason and "coach" in reason
            assert "SECRET" not in reason and str(published["secret"].parent) not in reason
        # No such collection (none is indexed here) and no such tool: errors, nothing read.
        assert [sorted(answer.response or {}) for answer in answers] == [["error"], ["error"]]

    try:
        check()
    finally:
        asyncio.run(tools.aclose())
        asyncio.run(knowledge.aclose())


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret/secret.toml", "secret.toml", "/dev/zero", "coach\n"])
async def test_a_name_that_is_a_path_closes_1008_listing_the_published_names(
    published: dict[str, Path], live_server: ServerFactory, name: str
) -> None:
    profiles = PersonaProfiles(KnowledgeService(), folders=[published["persona_dir"]])
    async with live_server(ScriptedBackend(idle), profiles=profiles) as server:
        async with connect(url(server, query=f"?persona={quote(name)}")) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            code, reason = await closed_with(ws)
    assert code == 1008
    assert reason.startswith("persona names are 1-64 lower-case letters, digits, '-' or '_'; available: ")
    assert "coach" in reason and "gardener" in reason and "thiruvalluvar" in reason
    assert "secret" not in reason and "passwd" not in reason


async def test_an_unknown_name_in_the_header_closes_1008_naming_it(
    published: dict[str, Path], live_server: ServerFactory
) -> None:
    profiles = PersonaProfiles(KnowledgeService(), folders=[published["persona_dir"]])
    async with live_server(ScriptedBackend(idle), profiles=profiles) as server:
        async with connect(url(server), additional_headers={"x-assistant-persona": "Secret"}) as ws:
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            code, reason = await closed_with(ws)
        async with connect(url(server, query="?persona=Gardener")) as ws:  # names are matched in lower case
            await ws.send(json.dumps({"setup": {"model": "m"}}))
            assert "setupComplete" in await recv_json(ws)
    assert (code, reason.partition(";")[0]) == (1008, "no persona named 'secret'")


async def test_a_published_persona_with_a_bad_file_is_refused_without_its_details(
    published: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    profiles = PersonaProfiles(KnowledgeService(), folders=[published["persona_dir"]])
    code, reason, _ = await set_up(profiles, persona="broken")
    assert code == 1008
    assert reason == "persona 'broken' cannot be used: its definition is invalid (see the server log)"
    assert "voise: unknown key" in caplog.text and str(published["persona_dir"]) in caplog.text  # for the operator


class SilentVoice:
    """The default voice in these tests: says nothing, so a test sees which voice was chosen."""

    name = "silent"
    sample_rate = 22_050

    def synthesize(self, text: str) -> object:
        raise AssertionError("not spoken in these tests")


@settings(max_examples=200, deadline=None)
@given(name=hostile_strings, espeak_prefix=st.booleans())
def test_a_voice_name_selects_only_a_published_voice_and_starts_nothing(name: str, espeak_prefix: bool) -> None:
    from assistant.backends.local.tts import Voices, espeak_voices

    espeak_voices()  # the published list, read once at start-up
    voices = Voices(SilentVoice(), [])  # type: ignore[arg-type]
    asked = f"espeak:{name}" if espeak_prefix else name
    with recording() as record:
        chosen = voices.select(asked)
    assert record.opened == [] and record.spawned == []
    if chosen is voices.default:
        return
    voice = asked.strip().lower().partition(":")[2] or "en-us"  # only "espeak[:published]" gets espeak-ng
    assert voice in espeak_voices() and chosen.name == f"espeak:{voice}"


def test_espeak_speaks_text_that_looks_like_an_option(tmp_path: Path) -> None:
    from assistant.backends.local.tts import EspeakVoice, SpeechUnavailable, Voices

    target = tmp_path / "x.wav"
    voices = Voices(SilentVoice(), [])  # type: ignore[arg-type]
    tamil = voices.select("espeak:ta")  # a persona's read-aloud voice: published, so used
    assert isinstance(tamil, EspeakVoice) and voices.select("ESPEAK:TA") is tamil
    with recording() as record:
        audio = tamil.synthesize(f"-w{target} hello")
    [argv] = record.spawned
    assert argv[-2:] == ["--", f"-w{target} hello"]
    assert not target.exists() and not Path(f"{target} hello").exists()
    assert len(audio) > 0.3 * tamil.sample_rate  # spoken: "minus w ... hello" takes a while
    for bad in ("../../../../tmp/x", "-w/tmp/x", "/etc/passwd"):
        with pytest.raises(SpeechUnavailable, match="has no voice"):
            EspeakVoice(bad)


def test_time_zones_are_names_from_the_zone_database_not_paths() -> None:
    from assistant.tools.base import ToolError
    from assistant.tools.builtin.current_time import resolve_zone

    assert resolve_zone("Asia/Tokyo")[0] == "Asia/Tokyo"
    assert resolve_zone("new york")[0] == "America/New_York"
    for name in ("/etc/localtime", "../../../../etc/localtime", "posixrules/../UTC", "Europe/../UTC"):
        with recording() as record, pytest.raises(ToolError, match="unknown time zone"):
            resolve_zone(name)
        assert record.opened == []


@pytest.mark.parametrize("name", ["/etc/passwd", "espeak:../../../../tmp/x", "espeak:-w/tmp/x", "Puck", "x" * 5000])
def test_a_local_session_speaks_with_the_default_voice_for_an_unknown_name(name: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from assistant.backends.local.stream import LocalStream, SessionParts
    from assistant.backends.local.tts import EspeakVoice, Voices, espeak_voices
    from assistant.protocol import Setup
    from assistant.session import SessionRequest

    espeak_voices()  # read at start-up
    voices = Voices(SilentVoice(), [])  # type: ignore[arg-type]
    with ThreadPoolExecutor(1) as executor:
        parts = SessionParts(
            recognizer=None,  # type: ignore[arg-type]  # not used to open a session
            asr_executor=executor,
            tts_executor=executor,
            voices=voices,
            new_dialogue=lambda: None,  # type: ignore[arg-type,return-value]
            new_vad=lambda: None,  # type: ignore[arg-type,return-value]
            default_silence_ms=500,
            eager_end_ms=200,
            clock=lambda: 0.0,
            sleep=asyncio.sleep,
        )

        def open_with(voice: str) -> LocalStream:
            speech = {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}}
            setup = Setup.model_validate({"model": "m", "generationConfig": {"speechConfig": speech}})
            return LocalStream(parts, SessionRequest(session_id="s", setup=setup), None)

        with recording() as record:
            session = open_with(name)
        assert session.voice is voices.default
        assert record.opened == [] and record.spawned == []
        tamil = open_with("espeak:ta").voice
        assert isinstance(tamil, EspeakVoice) and tamil.voice == "ta"
