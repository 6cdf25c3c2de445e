"""``assistant bench latency``: voice-to-voice latency, per turn and per stage.

Latency is measured as a user feels it: from the moment they stop speaking
(the last voiced sample of the prompt, "silence onset") to the first
audible sample of the reply at the client. The prompts are spoken at run
time (espeak-ng and the Piper voice taking turns), streamed in real time
through a real websocket session to an in-process ``LiveServer``, and the
reply is received the way any client receives it. A first, uncounted turn
warms the stack up (first inference of each model); the figures are the
turns after it.

Two targets, one harness:

- ``local``: the offline stack. Tool requests run the server's real tool
  registry, built as ``assistant serve`` builds it (built-ins and plugins;
  memory in a scratch file), so a tool turn measures the real path. Stages
  come from the backend's own timeline (same clock, same process):
  end-of-turn decision, final transcript, first dialogue text, first reply
  audio sent, then the transport to the client. With speculation, the first
  text often comes before the end-of-turn decision: that is the point.
- ``gemini``: the Gemini backend (google-genai SDK) relaying to an
  ``EchoUpstream`` in ``turns`` mode on loopback, which decides the end of
  the turn after ``silence_ms`` of quiet and speaks the utterance back at
  once. Stages: the last voiced audio reaching the upstream (uplink),
  its end-of-turn decision, its first reply audio, and the transport back
  (downlink). What the relay adds is uplink plus downlink; the rest is the
  stand-in's silence wait, where real Gemini would spend its own time.

``--seed`` fixes the order of the prompts, the quiet between turns and the
generation seed sent in the setup; replies use temperature 0, so a run
repeats (the local backend does not take a seed yet; greedy decoding makes
it repeat anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect

from assistant.bench.plot import plot_latency
from assistant.bench.report import (
    BenchUnavailable,
    Distribution,
    Machine,
    ModelInfo,
    describe_models,
    format_table,
    publish,
    seed_everything,
)
from assistant.bench.speech import Microphone, spoken_prompt
from assistant.protocol import decode_server_message
from assistant.server import LiveServer, ServerConfig
from assistant.session import MemoryResumptionStore
from assistant.session.tools import WatchedTools

AUDIBLE_LEVEL = 500  # int16 amplitude of the first sample that counts as the reply
QUIET_BETWEEN_S = (0.8, 1.6)  # seeded quiet before each prompt, so turns start at varied phases
TURN_TIMEOUT_S = 60.0
REST_ANSWER_S = 8.0  # after a false cut-in: how long the rest of the sentence may take to get its own reply
MAX_REPLY_TOKENS = 48
GEMINI_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str
    kind: str  # what should answer: a tool's name, or "chat"
    then: str = ""  # said after a mid-sentence pause of PAUSE_S: the turn must not end in that pause


PAUSE_S = 0.25  # a hesitation: longer than the shortest silence that may end a turn, shorter than the default


WARM_UP = Prompt("Hello there.", "chat")
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
# Paused prompts, counted apart: a turn that ends before the words after the pause is a false cut-in.
# The first half of the second already sounds like a whole request; the others do not.
PAUSED_PROMPTS = (
    Prompt("What time is it in", "get_current_time", then="Tokyo?"),
    Prompt("Set a timer for five minutes", "set_timer", then="and call it tea."),
    Prompt("Remember that my sister's", "remember", then="birthday is in May."),
    Prompt("What's twelve times", "calculate", then="seven?"),
)


@dataclass(frozen=True, slots=True)
class Stage:
    """One row of the breakdown: a milestone on the target's timeline, in ms from silence onset."""

    name: str
    milestone: str
    meaning: str


LOCAL_STAGES = (
    Stage("end of turn", "turn_end", "the backend decided the user had finished"),
    Stage("final transcript", "final_transcript", "the last Whisper pass over the turn finished"),
    Stage("first token", "first_token", "the dialogue's first words (router template or LLM token)"),
    Stage("first audio sent", "first_audio", "Piper's first audio left the backend"),
)
GEMINI_STAGES = (
    Stage("speech at upstream", "speech_received", "the last voiced chunk reached the upstream (uplink)"),
    Stage("end of turn", "turn_end", "the upstream decided the user had finished (its silence wait)"),
    Stage("first audio sent", "first_audio", "the upstream sent its first reply audio"),
)
TRANSPORT = "transport"  # first audio sent -> first audible sample at the client
VOICE_TO_VOICE = "voice to voice"


@dataclass
class TurnResult:
    prompt: str
    voice: str
    route: str
    transcript: str = ""
    reply: str = ""
    stages_ms: dict[str, float] = field(default_factory=dict)  # from silence onset
    milestones_ms: dict[str, float] = field(default_factory=dict)  # every milestone's first time, from silence onset
    voice_to_voice_ms: float | None = None
    transport_ms: float | None = None
    tool_ms: float | None = None  # the server tool's own run time, when one ran
    end_rule: str = ""  # what ended the turn: "words+voice", "words" (eager) or "silence"
    paused: bool = False  # a prompt with a mid-sentence pause
    cut_in: bool = False  # the turn ended in that pause, before the rest was said
    rest_unanswered: bool = False  # after the cut-in, what the user said next got no reply of its own


def first_audible(pcm: bytes, rate: int) -> float | None:
    """Seconds into ``pcm`` of its first audible sample (None: all silence)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > AUDIBLE_LEVEL)
    return None if loud.size == 0 else float(loud[0]) / rate


class Timeline:
    """Milestones a target reports (name, time.monotonic()), and the tool calls the server ran."""

    def __init__(self) -> None:
        self.milestones: list[tuple[str, float]] = []
        self.tool_calls: list[tuple[str, float]] = []  # (name, seconds)

    def mark(self, name: str, at: float) -> None:
        self.milestones.append((name, at))

    def clear(self) -> None:
        self.milestones.clear()
        self.tool_calls.clear()

    def first(self) -> dict[str, float]:
        """The first time each milestone was reached."""
        return dict(reversed(self.milestones))


@dataclass
class Target:
    """A running server to talk to, what it is made of, and how to read its timeline."""

    url: str
    stages: tuple[Stage, ...]
    speakers: list[tuple[str, Any]]  # (name, Synthesizer) of the prompts' voices
    models: list[ModelInfo]
    settings: dict[str, Any]
    setup_model: str
    answer: str  # what answers when no tool runs: "chat" (the dialogue) or "echo" (the stand-in)
    align: Callable[[np.ndarray, str], list[float]] | None = None  # when each word ends (paused prompts need it)


@contextlib.asynccontextmanager
async def local_target(args: argparse.Namespace, timeline: Timeline, scratch: Path) -> AsyncIterator[Target]:
    """The local backend behind a ``LiveServer`` with the server tools ``assistant serve`` would offer."""
    from assistant.backends.local import LocalBackend, settings_from_args
    from assistant.backends.local.models import LoadProgress, log_progress
    from assistant.backends.local.tts import EspeakVoice, Synthesizer
    from assistant.config import load_config
    from assistant.knowledge.service import KnowledgeService
    from assistant.tools.discovery import ToolSources, load_tools

    config = settings_from_args(args)
    models: list[ModelInfo] = []

    def progress(step: LoadProgress) -> None:
        log_progress(step)
        if step.done:
            models.append(ModelInfo.of(step.component, step.model, step.source))

    backend = LocalBackend(config, progress=progress, observe=lambda _session, name, at: timeline.mark(name, at))
    sources = ToolSources.from_config(load_config(args.config), modules=args.tools, builtins=args.builtin_tools)
    knowledge = KnowledgeService(scratch / "knowledge")
    await knowledge.open_async()  # as `assistant serve` does at startup (PersonaProfiles.start)
    registry = await load_tools(replace(sources, knowledge=knowledge))
    for problem in registry.problems:
        print(f"assistant bench: skipped {problem.source}: {problem.message}", file=sys.stderr)
    server = LiveServer(
        ServerConfig(port=0),
        backend,
        store=MemoryResumptionStore(),
        tools=WatchedTools(
            registry, on_end=lambda call, response, seconds: timeline.tool_calls.append((call.name, seconds))
        ),
    )
    await server.start()
    try:
        assert backend.parts is not None
        speakers: list[tuple[str, Synthesizer]] = [("espeak", EspeakVoice(words_per_minute=160))]
        if not isinstance(backend.parts.voices.default, EspeakVoice):
            speakers.append(("piper", backend.parts.voices.default))
        settings = {**asdict(config), "server_tools": sorted(d.name for d in registry.declarations())}
        recognizer = backend.parts.recognizer
        yield Target(server.live_url, LOCAL_STAGES, speakers, models, settings, "local", "chat", recognizer.word_ends)
    finally:
        await server.stop()
        await registry.aclose()
        await knowledge.aclose()


@contextlib.asynccontextmanager
async def gemini_target(args: argparse.Namespace, timeline: Timeline, scratch: Path) -> AsyncIterator[Target]:
    """The Gemini backend behind a ``LiveServer``, its upstream the echo stand-in in turn mode."""
    from google import genai
    from google.genai import types

    from assistant.backends.gemini.backend import GeminiBackend
    from assistant.backends.gemini.options import GeminiSettings
    from assistant.backends.local.tts import DEFAULT_PIPER_VOICE, EspeakVoice, load_voices
    from assistant.bench.upstream import DEFAULT_SILENCE_MS, EchoMode, EchoUpstream, make_certificate

    certificate = make_certificate(scratch)
    async with EchoUpstream(certificate, EchoMode.TURNS, observe=timeline.mark) as upstream:
        settings = GeminiSettings(api_key=upstream.api_key, base_url=upstream.base_url)
        client = genai.Client(
            api_key=upstream.api_key,
            http_options=types.HttpOptions(
                base_url=upstream.base_url,
                api_version=settings.resolved_api_version,
                async_client_args={"ssl": certificate.client_context()},
            ),
        )
        server = LiveServer(ServerConfig(port=0), GeminiBackend(settings, client=client), store=MemoryResumptionStore())
        await server.start()
        voices = load_voices(DEFAULT_PIPER_VOICE)
        try:
            speakers: list[tuple[str, Any]] = [("espeak", EspeakVoice(words_per_minute=160))]
            if not isinstance(voices.default, EspeakVoice):
                speakers.append(("piper", voices.default))
            described = {
                "upstream": "assistant.bench.upstream.EchoUpstream, turns mode, TLS on loopback",
                "upstream_silence_ms": DEFAULT_SILENCE_MS,
                "gemini": asdict(settings) | {"api_key": "(the stand-in's)"},
            }
            yield Target(server.live_url, GEMINI_STAGES, speakers, [], described, GEMINI_MODEL, "echo")
        finally:
            await server.stop()
            voices.close()


class LatencyBench:
    """One websocket session, a warm-up turn, then prompts one after another, a timeline per turn."""

    def __init__(self, target: Target, timeline: Timeline, prompts: list[Prompt], seed: int) -> None:
        self.target = target
        self.timeline = timeline
        # paused prompts need to know where words end in the audio: the local target's recogniser says
        self.prompts = [prompt for prompt in prompts if not prompt.then or target.align is not None]
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.clock = time.monotonic

    async def run(self) -> tuple[TurnResult, list[TurnResult]]:
        async with connect(self.target.url, max_size=None) as socket:
            setup = {
                "setup": {
                    "model": self.target.setup_model,
                    "generationConfig": {
                        "responseModalities": ["AUDIO"],
                        "maxOutputTokens": MAX_REPLY_TOKENS,
                        "temperature": 0,
                        "seed": self.seed,
                    },
                    "inputAudioTranscription": {},
                    "outputAudioTranscription": {},
                }
            }
            await socket.send(json.dumps(setup))
            decode_server_message(await socket.recv())  # setupComplete

            async def send_audio(chunk: bytes) -> None:
                blob = {"data": base64.b64encode(chunk).decode(), "mimeType": "audio/pcm;rate=16000"}
                await socket.send(json.dumps({"realtimeInput": {"audio": blob}}))

            microphone = Microphone(send_audio, self.clock)
            mic = asyncio.create_task(microphone.run())
            try:
                warm_up = await self._say(socket, microphone, WARM_UP, 0)
                turns = [await self._say(socket, microphone, prompt, i + 1) for i, prompt in enumerate(self.prompts)]
            finally:
                mic.cancel()
        return warm_up, turns

    async def _say(self, socket: ClientConnection, microphone: Microphone, prompt: Prompt, index: int) -> TurnResult:
        voice_name, voice = self.target.speakers[index % len(self.target.speakers)]
        loop = asyncio.get_running_loop()
        if prompt.then and self.target.align is not None:
            pcm, rest = await loop.run_in_executor(None, paused_prompt, prompt, voice, self.target.align)
        else:
            pcm, rest = await loop.run_in_executor(None, spoken_prompt, prompt.text, voice), b""
        await asyncio.sleep(float(self.rng.uniform(*QUIET_BETWEEN_S)))
        self.timeline.clear()
        return await self._turn(socket, microphone, prompt, voice_name, pcm, rest)

    async def _turn(
        self, socket: ClientConnection, microphone: Microphone, prompt: Prompt, voice: str, pcm: bytes, rest: bytes
    ) -> TurnResult:
        """One prompt, and the reply to all of it (``rest``: what comes after a pause, for paused prompts)."""
        text = f"{prompt.text} ... {prompt.then}" if prompt.then else prompt.text
        result = TurnResult(text, voice, route=self.target.answer, paused=bool(rest))
        spoken = microphone.say(pcm + rest)
        first_audio_at: float | None = None
        replied_to_half = False  # a reply to the first half of a paused prompt came (a false cut-in)
        deadline = self.clock() + TURN_TIMEOUT_S
        while self.clock() < deadline:
            wait = deadline - self.clock()
            if replied_to_half and spoken.done():
                wait = min(wait, spoken.result().ended + REST_ANSWER_S - self.clock())
            try:
                raw = await asyncio.wait_for(socket.recv(), max(0.0, wait))
            except TimeoutError:
                if replied_to_half and spoken.done():
                    result.rest_unanswered = True  # the server heard nothing in the rest: reported, not fatal
                    break
                raise BenchUnavailable(f"no reply to {text!r} within {TURN_TIMEOUT_S:.0f} s") from None
            received = self.clock()
            message = decode_server_message(raw)
            content = message.server_content
            if message.tool_call is not None:
                raise BenchUnavailable(f"the server asked the client to run {message.tool_call.function_calls}")
            if rest and not spoken.done() and (message.is_interrupted or message.is_turn_complete):
                replied_to_half = True
            if message.is_interrupted:
                first_audio_at = None  # a reply to half the prompt, cut off: the reply to all of it counts
            for blob in message.audio_parts():
                offset = first_audible(blob.data, 24_000)
                if first_audio_at is None and offset is not None:
                    first_audio_at = received + offset
            if content and content.input_transcription and content.input_transcription.text:
                result.transcript += content.input_transcription.text
            if content and content.output_transcription and content.output_transcription.text:
                result.reply += content.output_transcription.text
            if message.is_turn_complete and first_audio_at is not None and (spoken.done() or not rest):
                break
        utterance = await spoken
        onset = utterance.ended
        ends = [at for name, at in self.timeline.milestones if name == "turn_end"]
        result.cut_in = bool(rest) and any(at < onset for at in ends)  # the turn ended before the user did
        reached = self.timeline.first()
        result.end_rule = end_rule(reached)
        result.milestones_ms = {name: (at - onset) * 1000 for name, at in sorted(reached.items(), key=lambda i: i[1])}
        for stage in self.target.stages:
            if stage.milestone in reached:
                result.stages_ms[stage.name] = result.milestones_ms[stage.milestone]
        if self.timeline.tool_calls:
            result.route = ",".join(name for name, _ in self.timeline.tool_calls)
            result.tool_ms = sum(seconds for _, seconds in self.timeline.tool_calls) * 1000
        if first_audio_at is not None:
            result.voice_to_voice_ms = (first_audio_at - onset) * 1000
            if "first_audio" in reached:
                result.transport_ms = (first_audio_at - reached["first_audio"]) * 1000
        return result


def paused_prompt(prompt: Prompt, voice: Any, align: Callable[[np.ndarray, str], list[float]]) -> tuple[bytes, bytes]:
    """The whole sentence spoken at once, then split after ``prompt.text`` with ``PAUSE_S`` of silence inserted.

    Spoken at once, the first half keeps the rising or level voice of a
    sentence that goes on; synthesised alone it would end like a sentence.
    The cut is the quietest 10 ms from 100 ms before to 20 ms after where the recogniser's
    alignment says the last word of the first half ends.
    """
    sentence = f"{prompt.text} {prompt.then}"
    pcm = spoken_prompt(sentence, voice)
    audio = np.frombuffer(pcm, dtype="<i2")
    ends = align(audio.astype(np.float32) / 32768, sentence)
    first_words = len(prompt.text.split())
    if len(ends) < first_words:
        raise BenchUnavailable(f"could not align the words of {sentence!r}")
    step = 160  # 10 ms
    aligned = int(ends[first_words - 1] * 16_000)
    starts = range(max(0, aligned - 10 * step), min(len(audio) - step, aligned + 2 * step), step)
    cut = min(starts, key=lambda at: float(np.abs(audio[at : at + step].astype(np.int32)).mean()), default=aligned)
    pause = np.zeros(int(PAUSE_S * 16_000), dtype="<i2")
    return audio[:cut].tobytes(), pause.tobytes() + audio[cut:].tobytes()


def end_rule(reached: dict[str, float]) -> str:
    """Which rule ended the turn: the words and the voice agreeing, the words alone, or the silence."""
    ended = reached.get("turn_end", float("inf"))
    words = reached.get("words_complete", float("inf")) <= ended
    voice = reached.get("voice_finished", float("inf")) <= ended
    return "words+voice" if words and voice else "words" if words else "silence"


def stage_values(turns: list[TurnResult], stages: tuple[Stage, ...]) -> dict[str, list[float]]:
    """Every stage's figures over the turns, in table order (stages that never happened left out)."""
    rows: dict[str, list[float]] = {stage.name: [] for stage in stages}
    rows[TRANSPORT], rows[VOICE_TO_VOICE] = [], []
    for turn in turns:
        for stage in stages:
            if stage.name in turn.stages_ms:
                rows[stage.name].append(turn.stages_ms[stage.name])
        if turn.transport_ms is not None:
            rows[TRANSPORT].append(turn.transport_ms)
        if turn.voice_to_voice_ms is not None:
            rows[VOICE_TO_VOICE].append(turn.voice_to_voice_ms)
    return {name: values for name, values in rows.items() if values}


def summarise(values: dict[str, list[float]]) -> dict[str, Distribution]:
    return {name: summary for name, data in values.items() if (summary := Distribution.of(data)) is not None}


def turn_table(turns: list[TurnResult], stages: tuple[Stage, ...]) -> str:
    headers = ["prompt", "voice", "route", "ended by", *(stage.name for stage in stages), TRANSPORT, "v2v ms"]
    rows = [
        [
            turn.prompt[:44],
            turn.voice,
            turn.route,
            f"{turn.end_rule} (cut in)" if turn.cut_in else turn.end_rule,
            *(turn.stages_ms.get(stage.name) for stage in stages),
            turn.transport_ms,
            turn.voice_to_voice_ms,
        ]
        for turn in turns
    ]
    return format_table(headers, rows)


def summary_table(summary: dict[str, Distribution]) -> str:
    rows = [[name, row.p50, row.p95, row.max, row.n] for name, row in summary.items()]
    return format_table(["ms from silence onset", "p50", "p95", "max", "n"], rows)


async def measure(args: argparse.Namespace, prompts: list[Prompt]) -> tuple[Target, TurnResult, list[TurnResult]]:
    timeline = Timeline()
    factory = gemini_target if args.backend == "gemini" else local_target
    with tempfile.TemporaryDirectory(prefix="assistant-bench-latency-") as folder:
        async with factory(args, timeline, Path(folder)) as target:
            warm_up, turns = await LatencyBench(target, timeline, prompts, args.seed).run()
    return target, warm_up, turns


def run(args: argparse.Namespace) -> int:
    """Measure, print the tables, write JSON and a plot; non-zero when a prompt got no audible reply."""
    rng = seed_everything(args.seed)
    chosen = QUICK_PROMPTS if args.quick else PROMPTS * args.rounds
    prompts = [chosen[i] for i in rng.permutation(len(chosen))]
    if not args.quick:
        prompts += [PAUSED_PROMPTS[i] for i in rng.permutation(len(PAUSED_PROMPTS))]
    machine = Machine.now()
    try:
        target, warm_up, turns = asyncio.run(measure(args, prompts))
    except BenchUnavailable as exc:
        print(f"assistant bench latency: {exc}", file=sys.stderr)
        return 2
    machine.finish()
    timed = [turn for turn in turns if not turn.paused]
    paused = [turn for turn in turns if turn.paused]
    values = stage_values(timed, target.stages)
    summary = summarise(values)
    cut_ins = [turn.prompt for turn in paused if turn.cut_in]
    unanswered = [turn.prompt for turn in paused if turn.rest_unanswered]
    print(f"assistant bench latency --backend {args.backend}   ({len(turns)} turns after a warm-up turn)\n")
    print(turn_table(turns, target.stages))
    print()
    print(summary_table(summary))
    rules = {rule: sum(turn.end_rule == rule for turn in timed) for rule in ("words+voice", "words", "silence")}
    print("turns ended by: " + ", ".join(f"{rule} {count}" for rule, count in rules.items()))
    if paused:
        print(
            f"prompts with a {PAUSE_S * 1000:.0f} ms mid-sentence pause (not in the figures above): {len(paused)}, "
            f"false cut-ins {len(cut_ins)}" + (f" ({'; '.join(cut_ins)})" if cut_ins else "")
        )
        if unanswered:
            print(f"after the cut-in, the rest got no reply of its own: {'; '.join(unanswered)}")
    warm = f"{warm_up.voice_to_voice_ms:.0f} ms" if warm_up.voice_to_voice_ms is not None else "no audible reply"
    print(f"\nwarm-up turn (not counted): {warm}")
    if target.models:
        print(describe_models(target.models))
    print(machine.describe())
    report = {
        "benchmark": "latency",
        "backend": args.backend,
        "seed": args.seed,
        "quick": args.quick,
        "machine": machine.to_json(),
        "models": [asdict(model) for model in target.models],
        "settings": target.settings,
        "silence_onset": "the last voiced sample of the prompt, as the microphone recorded it",
        "stages": [asdict(stage) for stage in target.stages]
        + [
            {"name": TRANSPORT, "meaning": "first reply audio sent -> its first audible sample at the client"},
            {"name": VOICE_TO_VOICE, "meaning": "silence onset -> first audible reply sample at the client"},
        ],
        "warm_up": asdict(warm_up),
        "turns": [asdict(turn) for turn in turns],
        "summary_ms": {name: asdict(row) for name, row in summary.items()},
        "ended_by": rules,
        "pause_ms": PAUSE_S * 1000,
        "false_cut_ins": len(cut_ins),
        "rests_unanswered": len(unanswered),
        "paused_prompts": len(paused),
    }
    publish(args, report, plot_latency)
    missing = [turn.prompt for turn in turns if turn.voice_to_voice_ms is None and not turn.rest_unanswered]
    if missing:
        print(f"no audible reply to: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0
