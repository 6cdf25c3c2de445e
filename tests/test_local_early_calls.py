"""A reply prepared while the user pauses offers its calls early; read-only ones answer before the turn ends.

"What time is it?": the words are a complete request, so a reply is
prepared during the pause; its ``get_time`` call goes to the session at once
(``EarlyToolCalls``), and with the answer the reply says the time behind its
gate. When the turn ends, the words go out without waiting for the tool or
the voice. The session's side (which calls run early, what the client and
the history see) is tested in test_session_core; here the test plays the
session over a real ``LocalStream`` on the fakes of test_local_parity.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from assistant.backends.local.conversation import CallTools, Say
from assistant.backends.local.stream import LocalStream
from assistant.protocol import (
    AudioChunk,
    EarlyToolCalls,
    FunctionCall,
    FunctionResponse,
    ServerMessage,
    ToolCalls,
    ToolCancellation,
    ToolResponses,
    decode_server_message,
    encode_event,
)
from tests.test_local_parity import HearsHello, LoudIsSpeech, SoundsComplete, executor, open_session, text_of, tone
from tests.test_local_run_on import FRAME_S, say

__all__ = ["executor"]  # the fixture this module uses from the parity tests

SETUP = {"tools": [{"functionDeclarations": [{"name": "get_time"}]}]}
NOON = {"time": "noon"}


class AsksTheTime(HearsHello):
    def transcribe(self, audio: np.ndarray, prefix: str = "", context: str = "") -> str:
        return " What time is it?"


class PlaysTheSession:
    """Reads the stream as the session would: answers ``get_time`` calls, early or not, and keeps the rest."""

    def __init__(self, session: LocalStream, answer_early: bool = True) -> None:
        self.session = session
        self.answer_early = answer_early
        self.early: list[str] = []
        self.dropped: list[str] = []
        self.held: list[FunctionResponse] = []  # early answers not sent yet
        self.answered: set[str] = set()
        self.messages: list[ServerMessage] = []

    async def run(self, turns: int) -> None:
        async for event in self.session.receive():
            match event:
                case EarlyToolCalls(calls):
                    self.early += [call.id or "" for call in calls]
                    answers = [FunctionResponse(id=c.id, name=c.name, response=NOON) for c in calls]
                    if self.answer_early:
                        await self._answer(answers)
                    else:
                        self.held += answers
                    continue
                case ToolCancellation(ids) if set(ids) <= set(self.early):
                    self.dropped += ids  # the session forgets them; the client never hears of them
                    continue
                case ToolCalls(calls):
                    await self._answer(
                        [
                            FunctionResponse(id=c.id, name=c.name, response=NOON)
                            for c in calls
                            if c.id not in self.answered
                        ]
                    )
            message = decode_server_message(encode_event(event))
            self.messages.append(message)
            if message.is_turn_complete:
                turns -= 1
                if not turns:
                    return

    async def _answer(self, responses: list[FunctionResponse]) -> None:
        self.answered.update(response.id or "" for response in responses)
        if responses:
            await self.session.send(ToolResponses(responses))


def timeline(session: LocalStream) -> dict[str, int]:
    """The first time each milestone was reached, on a clock that ticks at every reading."""
    ticks = itertools.count()
    reached: dict[str, int] = {}
    session.parts = dataclasses.replace(
        session.parts,
        clock=lambda: float(next(ticks)),
        observe=lambda _session, name, at: reached.setdefault(name, int(at)),
    )
    return reached


async def test_a_read_only_answer_is_spoken_behind_the_gate_before_the_turn_ends(executor: ThreadPoolExecutor) -> None:
    call = FunctionCall(id="t1", name="get_time")
    dialogue = SoundsComplete([[CallTools([call])]], after_call=[Say("It's noon. ")])
    session = open_session(executor, dialogue, SETUP, LoudIsSpeech(), AsksTheTime())
    reached = timeline(session)
    client = PlaysTheSession(session)
    reading = asyncio.create_task(client.run(turns=1))
    await say(session, 0.6)
    await asyncio.wait_for(reading, 3.0)
    await session.close()
    assert client.early == ["t1"] and client.dropped == []
    assert reached["tool_response"] < reached["turn_end"] and reached["first_token"] < reached["turn_end"]
    calls = [i for i, m in enumerate(client.messages) if m.tool_call]
    assert len(calls) == 1 and client.messages[calls[0]].tool_call.function_calls[0].id == "t1"  # type: ignore[union-attr]
    assert text_of(client.messages[calls[0] :]).strip() == "It's noon."


async def test_calls_the_session_does_not_run_early_wait_for_the_turn_to_end(executor: ThreadPoolExecutor) -> None:
    dialogue = SoundsComplete([[CallTools([FunctionCall(id="t1", name="get_time")])]], after_call=[Say("Done. ")])
    session = open_session(executor, dialogue, SETUP, LoudIsSpeech(), AsksTheTime())
    reached = timeline(session)
    client = PlaysTheSession(session, answer_early=False)  # as for a tool that changes something
    reading = asyncio.create_task(client.run(turns=1))
    await say(session, 0.6)
    await asyncio.wait_for(reading, 3.0)
    await session.close()
    assert client.early == ["t1"] and reached["tool_response"] > reached["turn_end"]
    assert text_of(client.messages).strip() == "Done."


async def test_going_on_drops_the_early_calls_and_a_late_answer_to_them_is_not_announced(
    executor: ThreadPoolExecutor,
) -> None:
    first, second = FunctionCall(id="t1", name="get_time"), FunctionCall(id="t2", name="get_time")
    dialogue = SoundsComplete([[CallTools([first])], [CallTools([second])]], after_call=[Say("It's noon. ")])
    session = open_session(executor, dialogue, SETUP, LoudIsSpeech(), AsksTheTime())
    client = PlaysTheSession(session, answer_early=False)
    reading = asyncio.create_task(client.run(turns=1))
    for start in range(0, len(speech := tone(0.6, loud=True)), 1024):
        await session.send(AudioChunk(speech[start : start + 1024]))
    while not client.early:  # the pause, its transcript and the speculative reply's early call
        await session.send(AudioChunk(tone(FRAME_S, loud=False)))
        await asyncio.sleep(0.01)
    client.answer_early = True
    await say(session, 0.4)  # the user goes on, then finishes
    await asyncio.wait_for(reading, 3.0)
    assert client.dropped == ["t1"]
    await session.send(ToolResponses(client.held))  # t1's answer, in flight when the user went on
    await asyncio.sleep(0.05)
    await session.close()
    assert client.early == ["t1", "t2"]
    assert text_of(client.messages).strip() == "It's noon."
    assert all("result" not in turn.text() for turn in session.conversation.turns)  # no announcement
