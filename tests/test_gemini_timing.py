"""The Gemini backend's rules about time, on virtual time: the goAway deadline and the reconnect backoff.

The backend reads time through its injected ``clock`` and waits through its
``sleep`` (``GeminiBackend``); here both are the loop's, on virtual time
(``tests.support.virtual_time``), and Gemini is the in-process
``MemoryGemini``. A move that waits seven seconds, or a backoff that waits
four, takes no real time, and each lands at exactly the second the rule
says. (``test_gemini_conversations`` carries the same conversations over
real sockets, through the SDK on both sides.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from assistant.backends.gemini.backend import GeminiBackend
from assistant.backends.gemini.options import GeminiSettings
from assistant.backends.gemini.stream import GeminiStream
from assistant.protocol import Interrupted, OutputTranscript, ServerMessage, Setup, TextInput, TurnComplete
from assistant.protocol.models import GoAway, SessionResumptionUpdate
from assistant.session import BackendError, SessionRequest
from audio.files import loop_time
from tests.support.memory_gemini import MemoryGemini
from tests.support.virtual_time import virtual_time

pytestmark = virtual_time

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


@dataclass
class Opened:
    gemini: MemoryGemini
    stream: GeminiStream
    started: float  # loop time when the first connection was asked for
    slept: list[float]  # what the backend asked its ``sleep`` for, in order


@asynccontextmanager
async def gemini_stream(refusals: int = 0, **settings: float) -> AsyncIterator[Opened]:
    """A ``GeminiStream`` on ``MemoryGemini`` with the loop's clock and a ``sleep`` that records its waits."""
    gemini = MemoryGemini(refusals)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    backend = GeminiBackend(
        GeminiSettings(**settings),  # type: ignore[arg-type]
        client=gemini,  # type: ignore[arg-type]
        clock=loop_time,
        sleep=sleep,
    )
    started = loop_time()
    stream = await backend.open(SessionRequest(session_id="s", setup=Setup(model=f"models/{MODEL}")))
    assert isinstance(stream, GeminiStream)
    try:
        yield Opened(gemini, stream, started, slept)
    finally:
        await stream.close()


def handle(name: str) -> ServerMessage:
    return ServerMessage(session_resumption_update=SessionResumptionUpdate(new_handle=name, resumable=True))


# -- goAway: the next turn boundary, or when time runs short -------------------


@pytest.mark.parametrize(
    ("time_left", "moves_after"),
    [
        (12.0, 7.0),  # the margin (5 s) before Gemini's deadline
        (4.0, 2.0),  # half the time left when that is shorter than the margin
    ],
)
async def test_a_turn_running_past_a_go_away_is_cut_when_time_runs_short(time_left: float, moves_after: float) -> None:
    async with gemini_stream(go_away_margin_s=5.0) as opened:
        first = opened.gemini.live.connections[0]
        await opened.stream.send(TextInput("two"))
        first.say(ServerMessage.output_transcript("Reply t"), ServerMessage(go_away=GoAway.after(time_left)))
        received = opened.stream.receive()
        assert await anext(received) == OutputTranscript("Reply t")
        reading = asyncio.ensure_future(anext(received))  # reads the goAway now, then waits for more
        await asyncio.sleep(moves_after / 2)  # more of the reply comes: the deadline stays where it was
        first.say(ServerMessage.output_transcript("wo"))
        assert await reading == OutputTranscript("wo")
        assert isinstance(await anext(received), Interrupted)  # the reply stops where the client heard it
        assert loop_time() - opened.started == pytest.approx(moves_after)
        moving = asyncio.ensure_future(anext(received))
        second = await opened.gemini.live.opened(2)
        assert second.opened_at - opened.started == pytest.approx(moves_after)
        assert second.session.texts() == ["two"]  # the user's words, asked again
        second.say(ServerMessage.output_transcript("Reply two."))
        assert await moving == OutputTranscript("Reply two.")
        await received.aclose()


async def test_a_go_away_moves_at_the_next_turn_boundary_with_its_handle() -> None:
    async with gemini_stream(go_away_margin_s=5.0, handle_wait_s=1.0) as opened:
        first = opened.gemini.live.connections[0]
        first.say(ServerMessage.output_transcript("Reply "), ServerMessage(go_away=GoAway.after(50)))
        received = opened.stream.receive()
        assert await anext(received) == OutputTranscript("Reply ")
        await asyncio.sleep(3.0)  # the turn goes on for three seconds of the fifty
        first.say(ServerMessage.output_transcript("two."), ServerMessage.turn_done(), handle("h-2"))
        assert await anext(received) == OutputTranscript("two.")
        assert isinstance(await anext(received), TurnComplete)  # whole: nothing cut, nothing asked again
        moving = asyncio.ensure_future(anext(received))
        second = await opened.gemini.live.opened(2)
        assert second.opened_at - opened.started == pytest.approx(3.0)  # at the boundary, not at 45 s
        assert second.presented_handle == "h-2"
        assert second.session.texts() == []
        second.say(ServerMessage.output_transcript("Reply three."))
        assert await moving == OutputTranscript("Reply three.")
        await received.aclose()


async def test_without_a_go_away_a_connection_is_read_without_a_deadline() -> None:
    async with gemini_stream() as opened:
        received = opened.stream.receive()
        reading = asyncio.ensure_future(anext(received))
        await asyncio.sleep(3600)
        assert not reading.done() and len(opened.gemini.live.attempts) == 1
        opened.gemini.live.connections[0].say(ServerMessage.output_transcript("late"))
        assert await reading == OutputTranscript("late")
        await received.aclose()


# -- reconnects: the first at once, then doubling waits up to a cap, then give up --


async def test_connecting_backs_off_doubling_up_to_the_cap() -> None:
    async with gemini_stream(refusals=5, reconnect_attempts=6, backoff_initial_s=0.25, backoff_max_s=1.0) as opened:
        assert opened.slept == [0.25, 0.5, 1.0, 1.0]
        tries = [at - opened.started for at in opened.gemini.live.attempts]
        assert tries == pytest.approx([0.0, 0.0, 0.25, 0.75, 1.75, 2.75])
        assert len(opened.gemini.live.connections) == 1


async def test_connecting_gives_up_after_the_last_reconnect() -> None:
    gemini = MemoryGemini(refusals=100)
    backend = GeminiBackend(
        GeminiSettings(reconnect_attempts=3, backoff_initial_s=0.5, backoff_max_s=4.0),
        client=gemini,  # type: ignore[arg-type]
        clock=loop_time,
    )
    started = loop_time()
    with pytest.raises(BackendError, match="lost Gemini and 3 reconnects failed: cannot reach Gemini"):
        await backend.open(SessionRequest(session_id="s", setup=Setup(model=f"models/{MODEL}")))
    assert [at - started for at in gemini.live.attempts] == pytest.approx([0.0, 0.0, 0.5, 1.5])


async def test_a_dropped_connection_is_replaced_at_once_and_a_finished_turn_resets_the_backoff() -> None:
    async with gemini_stream(reconnect_attempts=5, backoff_initial_s=0.25, backoff_max_s=4.0) as opened:
        live = opened.gemini.live
        received = opened.stream.receive()
        for number in (1, 2):  # two drops in a row: the second waits the first backoff
            live.connections[number - 1].drop(ConnectionResetError("reset by peer"))
            moving = asyncio.ensure_future(anext(received))
            await live.opened(number + 1)
            live.connections[number].say(ServerMessage.output_transcript(f"on {number + 1}"), ServerMessage.turn_done())
            assert await moving == OutputTranscript(f"on {number + 1}")
            assert isinstance(await anext(received), TurnComplete)
        assert opened.slept == []  # each drop followed a finished turn: the count started over
        live.connections[2].drop(ConnectionResetError("reset by peer"))
        moving = asyncio.ensure_future(anext(received))
        await live.opened(4)
        live.connections[3].drop(ConnectionResetError("reset by peer"))
        await live.opened(5)
        assert opened.slept == [0.25]  # the second failure in a row waits; the first did not
        assert live.attempts[-1] - live.attempts[-2] == pytest.approx(0.25)
        live.connections[4].say(ServerMessage.output_transcript("on 5"))
        assert await moving == OutputTranscript("on 5")
        await received.aclose()
