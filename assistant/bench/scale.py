"""``assistant bench scale``: N conversations through HAProxy across two processes sharing Redis.

The setup is the deployment of ``deploy/haproxy.cfg``: a private
``redis-server`` on a free loopback port, two ``assistant serve --backend
gemini --store redis://...`` processes, HAProxy before them, and the relay
benchmark's ``EchoUpstream`` (turns mode) as their Gemini. N clients hold a
conversation each, through the balancer only: a short utterance, the end of
the audio stream, the reply, the server's new resumption handle, a pause,
and again.

Half-way through, one process is killed (SIGKILL, as when its machine
fails). Its clients see the connection drop and reconnect through the
balancer with their newest handle; the other process resumes them from
Redis. What is counted:

- sessions held: conversations that went on to the end (every resumption
  accepted; a refused handle would start the conversation afresh);
- lost turns: utterances whose reply never came (in flight at the kill);
- the time from the drop to the resumed conversation's ``setupComplete``.

Then the same clients run against one process with the one-machine store
(SQLite) and no balancer, and no kill. Per turn, the time from the reply's
``turnComplete`` to the server's ``sessionResumptionUpdate`` is the server
saving the conversation in its store (with Redis: a round trip to
redis-server, with SQLite: a local write), so the ratio of the two is the
store's added latency; the whole turn (end of audio to ``turnComplete``) is
reported beside it. Only turns that began and ended on one connection count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from assistant.bench.relay import CHUNK_SAMPLES, MODEL, ServerProcess, serve_gemini
from assistant.bench.report import BenchUnavailable, Distribution, Machine, format_table, publish, seed_everything
from assistant.bench.upstream import EchoMode, EchoUpstream, make_certificate
from assistant.server import DEFAULT_LIVE_PATH

REDIS_SERVER = "redis-server"
HAPROXY = "haproxy"
HAPROXY_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
START_TIMEOUT_S = 20.0
UTTERANCE_CHUNKS = 10  # 200 ms of voiced audio per turn
PAUSE_S = 0.3  # between a reply and the next utterance
TURN_TIMEOUT_S = 10.0  # a reply slower than this counts as lost
RECONNECT_DELAY_S = 0.2  # between later attempts to reach the balancer again
RESUME_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Plan:
    """How many conversations, for how long, and when the kill comes (a fraction of the time)."""

    sessions: int = 8
    duration_s: float = 20.0
    kill_at: float = 0.5

    @classmethod
    def quick(cls) -> Plan:
        return cls(sessions=4, duration_s=6.0)


@dataclass
class Conversation:
    """What one client saw over the run."""

    turns: int = 0
    lost_turns: int = 0
    turn_ms: list[float] = field(default_factory=list)  # end of audio -> turnComplete
    handle_ms: list[float] = field(default_factory=list)  # turnComplete -> the server's new handle
    resumptions: int = 0
    resume_ms: list[float] = field(default_factory=list)  # connection lost -> setupComplete on another
    refused_handles: int = 0  # a resumption the server did not accept: the conversation started afresh
    gave_up: bool = False  # no process took it back within RESUME_ATTEMPTS tries


@dataclass
class Outcome:
    """One run's figures."""

    setup: str
    sessions: int
    sessions_held: int
    turns: int
    lost_turns: int
    resumptions: int
    turn_ms: Distribution | None
    handle_ms: Distribution | None
    resume_ms: Distribution | None

    @classmethod
    def of(cls, setup: str, conversations: list[Conversation]) -> Outcome:
        return cls(
            setup=setup,
            sessions=len(conversations),
            sessions_held=sum(1 for c in conversations if c.refused_handles == 0 and not c.gave_up),
            turns=sum(c.turns for c in conversations),
            lost_turns=sum(c.lost_turns for c in conversations),
            resumptions=sum(c.resumptions for c in conversations),
            turn_ms=Distribution.of(ms for c in conversations for ms in c.turn_ms),
            handle_ms=Distribution.of(ms for c in conversations for ms in c.handle_ms),
            resume_ms=Distribution.of(ms for c in conversations for ms in c.resume_ms),
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_for_port(port: int, process: asyncio.subprocess.Process, name: str) -> None:
    """Until ``port`` on loopback takes connections; BenchUnavailable when ``process`` exits first."""
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            if process.returncode is not None:
                raise BenchUnavailable(f"{name} exited with status {process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


@contextlib.asynccontextmanager
async def background(*argv: str, env: dict[str, str] | None = None) -> AsyncIterator[asyncio.subprocess.Process]:
    """A helper server (redis-server, HAProxy) for the length of a block, its output discarded."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


def tool(name: str) -> str:
    """The program ``name`` (redis-server, haproxy: both Debian packages of that name), or BenchUnavailable."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise BenchUnavailable(f"{name} is missing: install the Debian package {name} (scripts/debian-test.txt)")
    return found


@contextlib.asynccontextmanager
async def redis(folder: Path) -> AsyncIterator[str]:
    """A private redis-server on a free loopback port, without persistence; its URL."""
    port = free_port()
    argv = [tool(REDIS_SERVER), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    async with background(*argv) as process:
        await wait_for_port(port, process, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"


@contextlib.asynccontextmanager
async def haproxy(servers: list[int]) -> AsyncIterator[int]:
    """HAProxy with ``deploy/haproxy.cfg`` unchanged, balancing ``servers``; its port."""
    if not HAPROXY_CONFIG.is_file():
        raise BenchUnavailable(f"{HAPROXY_CONFIG} is missing: run the benchmark from a source checkout")
    port = free_port()
    env = {
        **os.environ,
        "ASSISTANT_LB_BIND": f"127.0.0.1:{port}",
        **{f"ASSISTANT_{n}": f"127.0.0.1:{server}" for n, server in enumerate(servers, 1)},
    }
    async with background(tool(HAPROXY), "-db", "-f", str(HAPROXY_CONFIG), env=env) as process:
        await wait_for_port(port, process, "haproxy")
        yield port


def port_of(server: ServerProcess) -> int:
    return int(server.url.split(":")[2].split("/")[0])


# -- the clients ----------------------------------------------------------------------------


def utterance(rng: np.random.Generator) -> list[str]:
    """Loud noise the upstream takes for speech, in 20 ms messages, then the end of the audio stream."""
    messages = []
    for _ in range(UTTERANCE_CHUNKS):
        pcm = (rng.standard_normal(CHUNK_SAMPLES) * 8000).clip(-32768, 32767).astype("<i2").tobytes()
        audio = {"data": base64.b64encode(pcm).decode(), "mimeType": "audio/pcm;rate=16000"}
        messages.append(json.dumps({"realtimeInput": {"audio": audio}}))
    messages.append(json.dumps({"realtimeInput": {"audioStreamEnd": True}}))
    return messages


async def converse(url: str, stop_at: float, messages: list[str], seen: Conversation) -> None:
    """One conversation until ``stop_at``: turn after turn, resuming with the newest handle after a drop."""
    handle: str | None = None
    dropped_at: float | None = None
    attempts = 0
    while time.monotonic() < stop_at:
        in_flight = False
        try:
            async with connect(url, max_size=None, compression=None, open_timeout=5) as ws:
                setup = {"model": MODEL, "sessionResumption": {"handle": handle} if handle else {}}
                await ws.send(json.dumps({"setup": setup}))
                await next_with(ws, "setupComplete", None)
                if dropped_at is not None:
                    seen.resumptions += 1
                    seen.resume_ms.append((time.monotonic() - dropped_at) * 1000)
                    dropped_at, attempts = None, 0
                while time.monotonic() < stop_at:
                    in_flight = True
                    for message in messages:
                        await ws.send(message)
                    ended = time.monotonic()
                    completed, _ = await next_with(ws, "serverContent", "turnComplete")
                    handled, update = await next_with(ws, "sessionResumptionUpdate", "newHandle")
                    in_flight = False
                    handle = update["newHandle"]
                    seen.turns += 1
                    seen.turn_ms.append((completed - ended) * 1000)
                    seen.handle_ms.append((handled - completed) * 1000)
                    await asyncio.sleep(PAUSE_S)
                return
        except (ConnectionClosed, OSError, TimeoutError, InvalidStatus) as error:
            if isinstance(error, ConnectionClosed) and error.rcvd is not None and error.rcvd.code == 1007:
                seen.refused_handles += 1  # the server did not accept the handle: the conversation is lost
                handle = None
            if dropped_at is None:
                dropped_at = time.monotonic()
                seen.lost_turns += int(in_flight)
            attempts += 1
            if attempts > RESUME_ATTEMPTS:
                seen.gave_up = True
                return
            if attempts > 1:  # the first attempt at once, as the page does on a drop
                await asyncio.sleep(RECONNECT_DELAY_S)


async def next_with(ws: ClientConnection, kind: str, field_name: str | None) -> tuple[float, dict[str, Any]]:
    """Read until a ``kind`` message (with ``field_name`` in it, when given): when it came, and its body."""
    async with asyncio.timeout(TURN_TIMEOUT_S):
        while True:
            message = json.loads(await ws.recv())
            body = message.get(kind)
            if isinstance(body, dict) and (field_name is None or field_name in body):
                return time.monotonic(), body


# -- the two runs ---------------------------------------------------------------------------


async def clients(url: str, plan: Plan, seed: int, kill: ServerProcess | None = None) -> list[Conversation]:
    rng = np.random.default_rng(seed)
    messages = utterance(rng)
    conversations = [Conversation() for _ in range(plan.sessions)]
    start = time.monotonic()
    stop_at = start + plan.duration_s
    tasks = [asyncio.create_task(converse(url, stop_at, messages, c)) for c in conversations]
    if kill is not None:
        await asyncio.sleep(plan.duration_s * plan.kill_at)
        kill.process.kill()
    await asyncio.gather(*tasks)
    return conversations


async def balanced_run(folder: Path, upstream: EchoUpstream, plan: Plan, seed: int, log_level: str) -> Outcome:
    """Two processes on one Redis behind HAProxy; one is killed part-way through."""
    async with redis(folder) as url, contextlib.AsyncExitStack() as stack:
        store = ("--store", url)
        servers = await asyncio.gather(
            *(
                stack.enter_async_context(serve_gemini(upstream, folder / name, None, log_level, store))
                for name in ("one", "two")
            )
        )
        port = await stack.enter_async_context(haproxy([port_of(server) for server in servers]))
        lb_url = f"ws://127.0.0.1:{port}{DEFAULT_LIVE_PATH}"
        conversations = await clients(lb_url, plan, seed, kill=servers[1])
    return Outcome.of("2 processes, Redis, HAProxy; one killed", conversations)


async def single_run(folder: Path, upstream: EchoUpstream, plan: Plan, seed: int, log_level: str) -> Outcome:
    """One process with the one-machine store (SQLite), no balancer, no kill: the comparison."""
    sqlite = ("--resumption-store", "sqlite", "--resumption-db", str(folder / "sessions.sqlite3"))
    async with serve_gemini(upstream, folder / "single", None, log_level, sqlite) as server:
        conversations = await clients(server.url, plan, seed)
    return Outcome.of("1 process, SQLite", conversations)


async def measure(folder: Path, plan: Plan, seed: int, log_level: str) -> list[Outcome]:
    async with EchoUpstream(make_certificate(folder), EchoMode.TURNS) as upstream:
        for name in ("one", "two", "single"):
            (folder / name).mkdir()
        balanced = await balanced_run(folder, upstream, plan, seed, log_level)
        single = await single_run(folder, upstream, plan, seed, log_level)
    return [balanced, single]


HEADERS = (
    "setup",
    "sessions",
    "held",
    "turns",
    "lost",
    "resumed",
    "turn p50",
    "p95",
    "handle p50",
    "p95",
    "resume p50",
    "p95",
)


def row(outcome: Outcome) -> list[Any]:
    turn, handle, resume = outcome.turn_ms, outcome.handle_ms, outcome.resume_ms
    return [
        outcome.setup,
        outcome.sessions,
        outcome.sessions_held,
        outcome.turns,
        outcome.lost_turns,
        outcome.resumptions,
        turn.p50 if turn else None,
        turn.p95 if turn else None,
        handle.p50 if handle else None,
        handle.p95 if handle else None,
        resume.p50 if resume else None,
        resume.p95 if resume else None,
    ]


def ratio(balanced: Distribution | None, single: Distribution | None, attribute: str) -> float | None:
    if balanced is None or single is None or getattr(single, attribute) <= 0:
        return None
    return round(float(getattr(balanced, attribute)) / float(getattr(single, attribute)), 2)


def run(args: argparse.Namespace) -> int:
    """Both runs, the table, the ratios; JSON with ``--json`` (figures are reported, never judged: status 0)."""
    plan = Plan.quick() if args.quick else Plan()
    if args.sessions is not None:
        plan = Plan(args.sessions, plan.duration_s, plan.kill_at)
    if args.duration is not None:
        plan = Plan(plan.sessions, args.duration, plan.kill_at)
    seed_everything(args.seed)
    machine = Machine.now()
    print(
        f"assistant bench scale: {plan.sessions} conversations for {plan.duration_s:g} s, through HAProxy to two "
        f"processes sharing Redis (one killed after {plan.duration_s * plan.kill_at:g} s), then one process "
        "with SQLite\n",
        flush=True,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="assistant-bench-scale-") as folder:
            outcomes = asyncio.run(measure(Path(folder), plan, args.seed, args.log_level))
    except BenchUnavailable as exc:
        print(f"assistant bench scale: {exc}", file=sys.stderr)
        return 2
    machine.finish()
    balanced, single = outcomes
    ratios = {
        f"handle_{name}": ratio(balanced.handle_ms, single.handle_ms, name) for name in ("p50", "p95")
    } | {f"turn_{name}": ratio(balanced.turn_ms, single.turn_ms, name) for name in ("p50", "p95")}
    print(format_table(HEADERS, [row(outcome) for outcome in outcomes]))
    print(
        "\nms; turn = end of the audio -> turnComplete; handle = turnComplete -> the server's new resumption "
        "handle (the store's save); resume = connection lost -> setupComplete on the other process"
    )
    print(
        f"store's added latency per turn (Redis behind HAProxy / SQLite alone): handle p50 x{ratios['handle_p50']}, "
        f"p95 x{ratios['handle_p95']}; whole turn p50 x{ratios['turn_p50']}, p95 x{ratios['turn_p95']} "
        "(the balanced run also splits the load over two processes)"
    )
    print(machine.describe())
    report = {
        "benchmark": "scale",
        "seed": args.seed,
        "quick": args.quick,
        "machine": machine.to_json(),
        "plan": asdict(plan),
        "upstream": "assistant.bench.upstream.EchoUpstream (turns mode) over TLS on loopback",
        "balancer": str(HAPROXY_CONFIG.name),
        "runs": [asdict(outcome) for outcome in outcomes],
        "ratios": ratios,
    }
    publish(args, report)
    return 0
