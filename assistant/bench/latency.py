"""``assistant bench latency``: voice-to-voice latency of the local stack, per turn and per stage.

Latency is measured as a user feels it: from the moment they stop speaking
(the last voiced sample of the prompt, "silence onset") to the first
audible sample of the reply at the client. The prompts are spoken at run
time (espeak-ng and the Piper voice taking turns), streamed in real time
through a real websocket session to an in-process ``LiveServer``, and the
reply is received the way any client receives it. Client-declared tools
(the time, a calculator, timers, memory) are answered at once by the
benchmark, so tool turns measure the stack, not a tool.

Stages come from the backend's own timeline (same clock, same process):
end-of-turn decision, final transcript, first dialogue text, first reply
audio sent, and the transport to the client. With speculation, the first
text often comes before the end-of-turn decision: that is the point.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import base64
import json
import math
import operator
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from assistant.backends.local import LocalBackend, LocalConfig
from assistant.backends.local.tts import EspeakVoice, Synthesizer
from assistant.bench.speech import Microphone, spoken_prompt
from assistant.protocol import FunctionCall, decode_server_message
from assistant.server import LiveServer, ServerConfig
from assistant.session import MemoryResumptionStore

AUDIBLE_LEVEL = 500  # int16 amplitude of the first sample that counts as the reply
QUIET_BETWEEN_S = 1.0
TURN_TIMEOUT_S = 60.0
MAX_REPLY_TOKENS = 48


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    kind: str  # what should answer: a tool's name, or "chat"


PROMPTS = (
    Prompt("What time is it?", "get_current_time"),
    Prompt("What's twelve times seven?", "calculate"),
    Prompt("Tell me a joke.", "chat"),
    Prompt("Set a timer for five minutes.", "set_timer"),
    Prompt("How are you today?", "chat"),
    Prompt("What's the date today?", "get_current_time"),
    Prompt("Remember that my sister's birthday is in May.", "remember"),
    Prompt("Why is the sky blue?", "chat"),
)
QUICK_PROMPTS = PROMPTS[:3]
TOOLS = [
    {"name": "get_current_time", "description": "The current local time and date."},
    {
        "name": "calculate",
        "description": "Evaluate an arithmetic expression.",
        "parameters": {"type": "OBJECT", "properties": {"expression": {"type": "STRING"}}, "required": ["expression"]},
    },
    {
        "name": "set_timer",
        "description": "Start a countdown timer.",
        "parameters": {
            "type": "OBJECT",
            "properties": {"seconds": {"type": "NUMBER"}, "label": {"type": "STRING"}},
            "required": ["seconds"],
        },
        "behavior": "NON_BLOCKING",
    },
    {
        "name": "remember",
        "description": "Store a fact about the user.",
        "parameters": {"type": "OBJECT", "properties": {"fact": {"type": "STRING"}}, "required": ["fact"]},
    },
]
# (name in the report, milestone in the backend's timeline)
STAGES = (
    ("end of turn", "turn_end"),
    ("final transcript", "final_transcript"),
    ("first token", "first_token"),
    ("first audio sent", "first_audio"),
)


@dataclass
class TurnResult:
    prompt: str
    voice: str
    route: str
    transcript: str = ""
    reply: str = ""
    stages_ms: dict[str, float] = field(default_factory=dict)  # from silence onset
    voice_to_voice_ms: float | None = None
    transport_ms: float | None = None


def answer(call: FunctionCall) -> dict[str, Any]:
    """The benchmark's own quick answers to the client-declared tools."""
    now = datetime.now().astimezone()
    if call.name == "get_current_time":
        time_of_day = now.strftime("%I:%M %p").lstrip("0")
        return {"output": {"iso": now.isoformat(), "time": time_of_day, "date": now.strftime("%A, %d %B %Y")}}
    if call.name == "calculate":
        expression = str(call.args.get("expression", ""))
        try:
            return {"output": {"expression": expression, "result": evaluate(expression)}}
        except (ValueError, ZeroDivisionError, SyntaxError) as exc:
            return {"error": f"cannot calculate {expression}: {exc}"}
    if call.name == "set_timer":
        label = call.args.get("label", "timer")
        return {"output": {"status": "started", "label": label, "seconds": call.args.get("seconds")}}
    if call.name == "remember":
        return {"output": {"stored": call.args.get("fact", ""), "id": "1"}}
    return {"error": f"the benchmark has no tool {call.name}"}


_OPERATORS: dict[type, Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
}


def evaluate(expression: str) -> float:
    """Arithmetic only (no names but sqrt): the benchmark never runs arbitrary code."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sqrt" and node.args:
            return math.sqrt(value(node.args[0]))
        raise ValueError("not arithmetic")

    result = value(ast.parse(expression, mode="eval").body)
    return int(result) if float(result).is_integer() else result


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: small samples stay honest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summarise(turns: list[TurnResult]) -> dict[str, dict[str, float]]:
    rows: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    rows["transport"] = []
    rows["voice to voice"] = []
    for turn in turns:
        for name, _ in STAGES:
            if name in turn.stages_ms:
                rows[name].append(turn.stages_ms[name])
        if turn.transport_ms is not None:
            rows["transport"].append(turn.transport_ms)
        if turn.voice_to_voice_ms is not None:
            rows["voice to voice"].append(turn.voice_to_voice_ms)
    return {
        name: {
            "p50": percentile(values, 0.5),
            "p95": percentile(values, 0.95),
            "max": max(values),
            "mean": statistics.fmean(values),
            "n": len(values),
        }
        for name, values in rows.items()
        if values
    }


def table(turns: list[TurnResult], summary: dict[str, dict[str, float]]) -> str:
    lines = [f"{'prompt':<48} {'voice':<8} {'route':<17} {'v2v ms':>7}"]
    for turn in turns:
        v2v = f"{turn.voice_to_voice_ms:7.0f}" if turn.voice_to_voice_ms is not None else "      -"
        lines.append(f"{turn.prompt[:48]:<48} {turn.voice:<8} {turn.route:<17} {v2v}")
    lines += ["", "ms from silence onset   p50     p95     max   n"]
    for name, row in summary.items():
        lines.append(f"{name:<20} {row['p50']:7.0f} {row['p95']:7.0f} {row['max']:7.0f} {row['n']:3.0f}")
    return "\n".join(lines)


def first_audible(pcm: bytes, rate: int) -> float | None:
    """Seconds into ``pcm`` of its first audible sample (None: all silence)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > AUDIBLE_LEVEL)
    return None if loud.size == 0 else float(loud[0]) / rate


class LatencyBench:
    """One websocket session, prompts one after another, a timeline per turn."""

    def __init__(self, config: LocalConfig, prompts: tuple[Prompt, ...], clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.prompts = prompts
        self.clock = clock
        self.milestones: list[tuple[str, float]] = []
        self.backend = LocalBackend(config, observe=lambda session, name, at: self.milestones.append((name, at)))

    def speakers(self) -> list[tuple[str, Synthesizer]]:
        speakers: list[tuple[str, Synthesizer]] = [("espeak", EspeakVoice(words_per_minute=160))]
        assert self.backend.parts is not None
        piper = self.backend.parts.voices.default
        if not isinstance(piper, EspeakVoice):
            speakers.append(("piper", piper))
        return speakers

    async def run(self) -> list[TurnResult]:
        server = LiveServer(ServerConfig(port=0), self.backend, store=MemoryResumptionStore())
        await server.start()
        try:
            async with connect(server.live_url, max_size=None) as socket:
                return await self._session(socket)
        finally:
            await server.stop()

    async def _session(self, socket: Any) -> list[TurnResult]:
        setup = {
            "setup": {
                "model": "local",
                "generationConfig": {"responseModalities": ["AUDIO"], "maxOutputTokens": MAX_REPLY_TOKENS},
                "inputAudioTranscription": {},
                "outputAudioTranscription": {},
                "tools": [{"functionDeclarations": TOOLS}],
            }
        }
        await socket.send(json.dumps(setup))
        decode_server_message(await socket.recv())  # setupComplete
        speakers = self.speakers()

        async def send_audio(chunk: bytes) -> None:
            blob = {"data": base64.b64encode(chunk).decode(), "mimeType": "audio/pcm;rate=16000"}
            message = {"realtimeInput": {"audio": blob}}
            await socket.send(json.dumps(message))

        microphone = Microphone(send_audio, self.clock)
        mic = asyncio.create_task(microphone.run())
        results = []
        try:
            for index, prompt in enumerate(self.prompts):
                voice_name, voice = speakers[index % len(speakers)]
                pcm = await asyncio.get_running_loop().run_in_executor(None, spoken_prompt, prompt.text, voice)
                await asyncio.sleep(QUIET_BETWEEN_S)
                self.milestones.clear()
                results.append(await self._turn(socket, microphone, prompt, voice_name, pcm))
        finally:
            mic.cancel()
        return results

    async def _turn(self, socket: Any, microphone: Microphone, prompt: Prompt, voice: str, pcm: bytes) -> TurnResult:
        result = TurnResult(prompt.text, voice, route="chat")
        spoken = microphone.say(pcm)
        first_audio_at: float | None = None
        deadline = self.clock() + TURN_TIMEOUT_S
        while self.clock() < deadline:
            raw = await asyncio.wait_for(socket.recv(), TURN_TIMEOUT_S)
            received = self.clock()
            message = decode_server_message(raw)
            content = message.server_content
            if message.tool_call is not None:
                result.route = ",".join(call.name for call in message.tool_call.function_calls)
                responses = [
                    {"id": call.id, "name": call.name, "response": answer(call)}
                    for call in message.tool_call.function_calls
                ]
                await socket.send(json.dumps({"toolResponse": {"functionResponses": responses}}))
            for blob in message.audio_parts():
                offset = first_audible(blob.data, 24_000)
                if first_audio_at is None and offset is not None:
                    first_audio_at = received + offset
            if content and content.input_transcription and content.input_transcription.text:
                result.transcript += content.input_transcription.text
            if content and content.output_transcription and content.output_transcription.text:
                result.reply += content.output_transcription.text
            if message.is_turn_complete and first_audio_at is not None:
                break
        utterance = await spoken
        onset = utterance.ended
        reached = dict(reversed(self.milestones))  # the first time each milestone was reached
        for name, milestone in STAGES:
            if milestone in reached:
                result.stages_ms[name] = (reached[milestone] - onset) * 1000
        if first_audio_at is not None:
            result.voice_to_voice_ms = (first_audio_at - onset) * 1000
            if "first_audio" in reached:
                result.transport_ms = (first_audio_at - reached["first_audio"]) * 1000
        return result


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_average_1m": round(load[0], 2), "load_average_5m": round(load[1], 2)}


def run_latency(args: argparse.Namespace) -> int:
    """Measure, print the table, write the JSON; non-zero when a prompt got no audible reply."""
    from assistant.backends.local import config_from_args

    config = config_from_args(args)
    prompts = QUICK_PROMPTS if args.quick else PROMPTS * args.rounds
    before = machine()
    turns = asyncio.run(LatencyBench(config, prompts).run())
    summary = summarise(turns)
    print(table(turns, summary))
    print(f"\nmachine: {before['cpus']} CPUs, load average {before['load_average_1m']} (1 min) at the start")
    if args.json:
        report = {
            "benchmark": "latency",
            "machine": {"start": before, "end": machine()},
            "config": asdict(config),
            "silence_onset": "the last voiced sample of the prompt, as the microphone recorded it",
            "turns": [asdict(turn) for turn in turns],
            "summary_ms": summary,
        }
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    missing = [turn.prompt for turn in turns if turn.voice_to_voice_ms is None]
    if missing:
        print(f"no audible reply to: {', '.join(missing)}")
        return 1
    return 0
