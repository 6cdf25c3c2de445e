"""``assistant bench relay``: what the Gemini relay costs per session, and how many one core holds.

The setup is the deployment: ``assistant serve --backend gemini`` runs as its
own process (pinned to one CPU when the machine has two or more), its
Gemini is an ``EchoUpstream`` on loopback (TLS, the real wire protocol,
reached through the SDK's own settings), and N clients stream microphone
audio in real time, 20 ms per message, each on its own websocket. The
upstream sends every chunk straight back as reply audio, so each message
makes the whole trip: client -> server -> SDK -> upstream -> SDK -> server
-> client.

What is measured, per chunk:

- added latency: the time the relay took in both directions, the uplink
  (client sent -> upstream received) plus the downlink (upstream sent ->
  client received). The upstream stamps its own times into the echo, so
  its processing is left out;
- lost chunks: sent, but no echo came back (the server sheds audio when a
  queue overflows);
- send lag: how late the client could send against its 20 ms schedule
  (a server that stops reading pushes back through TCP).

And per step: the server process's CPU time (all its threads) and resident
memory, as a whole and per session, and the load generator's own CPU and
event-loop lag, which tell whether a failing step failed the server or
the generator.

Each step starts a fresh server: one throw-away session warms it up (lazy
imports, the first TLS handshake), then its memory is read, N sessions
connect, stream for a settling period, then for the measured window.

**Real time** holds at N sessions when, over the window, p99 added latency
is at most ``--max-p99-ms`` (50 ms: unloaded, it is 1-3 ms; a saturated
server's queues grow without bound), no chunk was lost, and p99 send lag
is at most one chunk (20 ms). The ramp doubles N from 1 until real time
breaks, then bisects between the last N that held and the first that broke.
A step that broke while the load generator's own event loop was behind and
the server had CPU to spare failed the generator, not the server (on a
shared machine, usually a neighbour's burst): it is run again, twice at
most, before the ramp takes it as the generator's limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from websockets.asyncio.client import ClientConnection, connect

from assistant.bench.options import DEFAULT_MAX_P99_MS, DEFAULT_MAX_SEND_LAG_MS
from assistant.bench.plot import plot_relay
from assistant.bench.report import (
    BenchUnavailable,
    Distribution,
    Machine,
    format_table,
    publish,
    seed_everything,
)
from assistant.bench.upstream import EchoMode, EchoUpstream, Stamp, make_certificate
from assistant.server.eventloop import LoopChoice

CHUNK_S = 0.02
CHUNK_SAMPLES = 320  # 20 ms at 16 kHz
STAMP_BASE64 = (Stamp.SIZE + 2) // 3 * 4  # the base64 characters that hold a chunk's stamp
MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
SERVER_START_TIMEOUT_S = 60.0
ECHO_GRACE_S = 1.0  # after the last chunk: echoes still on their way are waited for this long
LOOP_TICK_S = 0.01
ENDPOINT = re.compile(r"Live endpoint\s+(ws://\S+)")
GENERATOR_LAG_LIMIT_MS = 10.0  # the load generator's own event loop may not fall further behind
SERVER_FULL = 0.9  # of its one core: the server, not the generator, is what ran out


@dataclass(frozen=True, slots=True)
class Relay:
    """One program of the comparison on one event loop."""

    program: str  # "gemini" (assistant serve --backend gemini), "naive" (the naive proxy) or "pipe" (the floor)
    loop: LoopChoice
    label: str  # how the table names it


# What relays in the comparison, in the order it runs. The first is the server as it runs by default (the
# ramp's too), the second the yardstick as the Pastra guide writes it; the next two swap their loops, so
# the table tells the relay's own lead from the loop's. The last reads no message at all (``byte_pipe``):
# the floor under any relay that reads its messages, on the server's loop.
RELAYS = {
    "gemini": Relay("gemini", "uvloop", "assistant serve --backend gemini"),
    "naive": Relay("naive", "asyncio", "naive proxy (json.loads + json.dumps)"),
    "gemini-asyncio": Relay("gemini", "asyncio", "  the same, --loop asyncio"),
    "naive-uvloop": Relay("naive", "uvloop", "  the naive proxy on uvloop"),
    "pipe": Relay("pipe", "uvloop", "  bytes through, nothing read (floor)"),
}
# The program each yardstick row runs, as its own process with the same options.
YARDSTICKS = {"naive": "assistant.bench.naive_proxy", "pipe": "assistant.bench.byte_pipe"}
COMPARE_SESSIONS = 50  # the target point: CPU per session-second and p99 added latency here
# A step the load generator failed (a neighbour's burst on a shared machine) is run again this often.
GENERATOR_RETRIES = 2


@dataclass(frozen=True, slots=True)
class Limits:
    """What "real time" means for one step (see the module docstring)."""

    max_p99_ms: float = DEFAULT_MAX_P99_MS
    max_send_lag_ms: float = DEFAULT_MAX_SEND_LAG_MS


@dataclass(frozen=True, slots=True)
class Plan:
    """How long each step runs and which session counts are tried."""

    duration_s: float = 10.0
    settle_s: float = 2.0
    max_sessions: int = 256
    sessions: tuple[int, ...] = ()  # explicit counts: no search
    compare_sessions: int = COMPARE_SESSIONS  # the relay against the naive proxy at this count (0: not at all)
    ramp: bool = True

    @classmethod
    def quick(cls) -> Plan:
        """For CI: three short steps, the same whatever the machine's load (no search), and a comparison at 4."""
        return cls(duration_s=2.0, settle_s=0.5, max_sessions=4, sessions=(1, 2, 4), compare_sessions=4)


@dataclass
class StepResult:
    """One step of the ramp: N sessions for ``duration_s``."""

    sessions: int
    chunks_sent: int
    chunks_echoed: int
    chunks_lost: int
    added_latency_ms: Distribution | None
    uplink_ms: Distribution | None
    downlink_ms: Distribution | None
    round_trip_ms: Distribution | None
    send_lag_ms: Distribution | None
    server_cpu_cores: float  # CPU seconds per second: 1.0 is one core busy
    server_cpu_per_session: float
    server_rss_mib_before: float
    server_rss_mib: float
    server_rss_mib_per_session: float
    generator_cpu_cores: float
    generator_loop_lag_ms: Distribution | None
    failures: list[str] = field(default_factory=list)  # why real time did not hold; empty: it held
    generator_limited: bool = False
    attempts: int = 1  # runs of this step (one more for each the load generator failed)
    relay: str = "gemini"  # what relayed: a key of RELAYS

    @property
    def cpu_ms_per_session_second(self) -> float:
        """Server CPU milliseconds spent per second of one session's audio (both directions)."""
        return self.server_cpu_per_session * 1000

    @property
    def real_time(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["real_time"] = self.real_time
        return data


def judge(step: StepResult, limits: Limits, pinned: bool) -> None:
    """Fill in ``failures`` (the criterion, spelled out) and whether the generator was the limit.

    A failing step blames the load generator when its own event loop fell
    behind while the server still had CPU to spare (pinned to its own core:
    a server near 100% of it was the limit, whatever the generator did).
    """
    failures = []
    if step.added_latency_ms is None:
        failures.append("no chunk came back")
    elif step.added_latency_ms.p99 > limits.max_p99_ms:
        failures.append(f"p99 added latency {step.added_latency_ms.p99:.0f} ms > {limits.max_p99_ms:g} ms")
    if step.chunks_lost:
        failures.append(f"{step.chunks_lost} of {step.chunks_sent} chunks lost")
    if step.send_lag_ms is not None and step.send_lag_ms.p99 > limits.max_send_lag_ms:
        failures.append(f"p99 send lag {step.send_lag_ms.p99:.0f} ms > {limits.max_send_lag_ms:g} ms")
    step.failures = failures
    lag = step.generator_loop_lag_ms
    generator_behind = lag is not None and lag.p99 > GENERATOR_LAG_LIMIT_MS
    server_full = pinned and step.server_cpu_cores >= SERVER_FULL
    step.generator_limited = bool(failures) and generator_behind and not server_full


# -- the server process ------------------------------------------------------------------


@dataclass
class ServerProcess:
    """``assistant serve --backend gemini`` in its own process, its Gemini the echo upstream."""

    process: asyncio.subprocess.Process
    url: str
    log: list[str]
    reader: asyncio.Task[None]

    def cpu_seconds(self) -> float:
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def rss_mib(self) -> float:
        import psutil

        return float(psutil.Process(self.process.pid).memory_info().rss) / 2**20


@contextlib.asynccontextmanager
async def serve_gemini(
    upstream: EchoUpstream,
    data_dir: Path,
    cpu: int | None,
    log_level: str = "warning",
    extra_args: Sequence[str] = (),
) -> AsyncIterator[ServerProcess]:
    """Start the server as a user would, pointed at ``upstream``; stop it when the block ends.

    ``extra_args`` are more ``assistant serve`` options (the flood test's caps).
    """
    env = {
        **os.environ,
        "GEMINI_API_KEY": upstream.api_key,
        "SSL_CERT_FILE": str(upstream.certificate.cert),
        "ASSISTANT_DATA_DIR": str(data_dir),
    }
    for name in ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI", "ASSISTANT_API_KEY"):
        env.pop(name, None)
    command = (
        *(sys.executable, "-m", "assistant", "serve", "--backend", "gemini", "--port", "0"),
        *("--gemini-base-url", upstream.base_url, "--resumption-store", "memory", "--log-level", log_level),
        *extra_args,
    )
    async with _serving(command, env, cpu) as server:
        yield server


@contextlib.asynccontextmanager
async def serve_yardstick(
    module: str, upstream: EchoUpstream, cpu: int | None, loop: LoopChoice
) -> AsyncIterator[ServerProcess]:
    """A yardstick (the naive proxy, the byte pipe) in its own process, pointed at ``upstream``."""
    command = (
        *(sys.executable, "-m", module, "--upstream", upstream.base_url),
        *("--api-key", upstream.api_key, "--certificate", str(upstream.certificate.cert), "--loop", loop),
    )
    async with _serving(command, dict(os.environ), cpu) as server:
        yield server


@contextlib.asynccontextmanager
async def _serving(command: Sequence[str], env: dict[str, str], cpu: int | None) -> AsyncIterator[ServerProcess]:
    """Run ``command`` (pinned to ``cpu``) until it prints its Live endpoint; stop it when the block ends."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
    )
    log: list[str] = []
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read_log() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            log.append(line)
            del log[:-200]
            match = ENDPOINT.search(line)
            if match and not ready.done():
                ready.set_result(match.group(1))
        if not ready.done():
            ready.set_exception(BenchUnavailable(f"{command[2]} {command[3]} exited:\n" + "\n".join(log)))

    reader = asyncio.create_task(read_log())
    try:
        url = await asyncio.wait_for(ready, SERVER_START_TIMEOUT_S)
        yield ServerProcess(process, url, log, reader)
    finally:
        if process.returncode is None:
            process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            process.kill()
            await process.wait()
        await reader


# -- the clients ---------------------------------------------------------------------------


@dataclass
class ChunkTimes:
    due: float
    sent: float
    upstream_received: float | None = None
    upstream_sent: float | None = None
    echoed: float | None = None


class StreamingClient:
    """One client: setup, then a 20 ms chunk on schedule, each stamped; echoes matched by stamp."""

    def __init__(
        self,
        number: int,
        url: str,
        audio: np.ndarray,
        phase_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.number = number
        self.url = url
        self.audio = audio
        self.phase_s = phase_s
        self.clock = clock
        self.chunks: list[ChunkTimes] = []
        self.socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.socket = await connect(self.url, max_size=None, compression=None)
        setup = {"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["AUDIO"]}}}
        await self.socket.send(json.dumps(setup))
        reply = json.loads(await self.socket.recv())
        if "setupComplete" not in reply:
            raise BenchUnavailable(f"the server answered setup with {reply}")
        self._reader = asyncio.create_task(self._read())

    def _chunk(self, sequence: int) -> str:
        start = sequence * CHUNK_SAMPLES % (len(self.audio) - CHUNK_SAMPLES)
        pcm = bytearray(self.audio[start : start + CHUNK_SAMPLES].tobytes())
        pcm[: Stamp.SIZE] = Stamp(self.number, sequence).pack()
        data = base64.b64encode(pcm).decode()
        return orjson.dumps({"realtimeInput": {"audio": {"data": data, "mimeType": "audio/pcm;rate=16000"}}}).decode()

    async def stream(self, start: float, stop: float) -> None:
        """Send chunk after chunk on the 20 ms grid from ``start`` (plus this client's phase) to ``stop``."""
        assert self.socket is not None
        sequence = 0
        while True:
            due = start + self.phase_s + sequence * CHUNK_S
            if due >= stop:
                return
            message = self._chunk(sequence)
            delay = due - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self.chunks.append(ChunkTimes(due, self.clock()))
            await self.socket.send(message)
            sequence += 1

    async def _read(self) -> None:
        assert self.socket is not None
        async for raw in self.socket:
            received = self.clock()
            message = orjson.loads(raw)
            parts = message.get("serverContent", {}).get("modelTurn", {}).get("parts", [])
            for part in parts:
                data = part.get("inlineData", {}).get("data")
                stamp = Stamp.read(base64.b64decode(data[:STAMP_BASE64])) if data else None
                if stamp is not None and stamp.session == self.number and stamp.sequence < len(self.chunks):
                    chunk = self.chunks[stamp.sequence]
                    chunk.upstream_received, chunk.upstream_sent = stamp.received_at, stamp.sent_at
                    chunk.echoed = received

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


class LoopLag:
    """How late this process's event loop wakes a 10 ms timer: the load generator's own health."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            expected = time.monotonic() + LOOP_TICK_S
            await asyncio.sleep(LOOP_TICK_S)
            self.lags_ms.append(max(0.0, (time.monotonic() - expected) * 1000))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def noise_audio(rng: np.random.Generator, seconds: float = 2.0) -> np.ndarray:
    """Seeded noise at about -30 dBFS: the relay never looks inside, so content only has to be honest in size."""
    return (rng.standard_normal(int(seconds * 16_000)) * 1000).clip(-32768, 32767).astype("<i2")


# -- one step, and the ramp -----------------------------------------------------------------


@dataclass
class Placement:
    """Which CPUs the server and the load generator run on."""

    server_cpu: int | None
    generator_cpus: list[int]

    @classmethod
    def choose(cls, pin: bool) -> Placement:
        usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not pin or len(usable) < 2:
            return cls(None, usable)
        return cls(usable[-1], usable[:-1])

    def describe(self) -> str:
        if self.server_cpu is None:
            return "server and load generator share the machine's CPUs (not pinned)"
        others = ",".join(str(cpu) for cpu in self.generator_cpus)
        return f"server pinned to CPU {self.server_cpu}; load generator on CPU {others}"


class RelayBench:
    """The ramp: one fresh server per step, the same upstream for all of them."""

    def __init__(
        self, plan: Plan, limits: Limits, seed: int, placement: Placement, folder: Path, log_level: str
    ) -> None:
        self.plan = plan
        self.limits = limits
        self.seed = seed
        self.placement = placement
        self.folder = folder
        self.log_level = log_level
        self.steps: list[StepResult] = []
        self.comparison: list[StepResult] = []  # each row of RELAYS in order, at ``plan.compare_sessions``

    async def run(self, progress: Callable[[StepResult], None]) -> list[StepResult]:
        certificate = make_certificate(self.folder)
        async with EchoUpstream(certificate, EchoMode.STREAM) as upstream:
            if self.plan.compare_sessions:
                for relay in RELAYS:
                    step = await self.step(upstream, self.plan.compare_sessions, relay)
                    progress(step)
                    self.comparison.append(step)
            for sessions in self.sizes() if self.plan.ramp else ():
                for attempt in range(1, GENERATOR_RETRIES + 2):
                    step = await self.step(upstream, sessions)
                    step.attempts = attempt
                    progress(step)
                    if not step.generator_limited:
                        break
                self.steps.append(step)
        return self.steps

    def sizes(self) -> Iterator[int]:
        """Explicit counts, or: double until real time breaks, then bisect."""
        if self.plan.sessions:
            yield from self.plan.sessions
            return
        held, broke, size = 0, 0, 1
        while size <= self.plan.max_sessions:
            yield size
            if not self.steps[-1].real_time:
                broke = size
                break
            held, size = size, size * 2
        if not broke or self.steps[-1].generator_limited:
            return
        while broke - held > max(1, held // 8):
            size = (held + broke) // 2
            yield size
            last = self.steps[-1]
            if last.generator_limited:
                return
            held, broke = (size, broke) if last.real_time else (held, size)

    def serve(self, upstream: EchoUpstream, sessions: int, relay: str) -> contextlib.AbstractAsyncContextManager[
        ServerProcess
    ]:
        program = RELAYS[relay]
        if program.program in YARDSTICKS:
            return serve_yardstick(YARDSTICKS[program.program], upstream, self.placement.server_cpu, program.loop)
        data_dir = self.folder / f"data-{sessions}"
        data_dir.mkdir(exist_ok=True)
        return serve_gemini(upstream, data_dir, self.placement.server_cpu, self.log_level, ("--loop", program.loop))

    async def step(self, upstream: EchoUpstream, sessions: int, relay: str = "gemini") -> StepResult:
        rng = np.random.default_rng([self.seed, sessions])
        audio = noise_audio(rng)
        async with self.serve(upstream, sessions, relay) as server:
            warm = StreamingClient(10_000, server.url, audio, 0.0)
            await warm.open()
            now = time.monotonic()
            await warm.stream(now, now + 0.5)
            await warm.close()
            await asyncio.sleep(0.2)
            rss_before = server.rss_mib()
            clients = [
                StreamingClient(number, server.url, audio, float(rng.uniform(0, CHUNK_S)))
                for number in range(sessions)
            ]
            await asyncio.gather(*(client.open() for client in clients))
            loop_lag = LoopLag()
            loop_lag.start()
            start = time.monotonic() + 0.1
            window_start = start + self.plan.settle_s
            window_end = window_start + self.plan.duration_s
            streams = asyncio.gather(*(client.stream(start, window_end) for client in clients))
            await asyncio.sleep(max(0.0, window_start - time.monotonic()))
            cpu_start, generator_start, wall_start = server.cpu_seconds(), time.process_time(), time.monotonic()
            lag_start = len(loop_lag.lags_ms)
            await streams
            cpu_end, generator_end, wall_end = server.cpu_seconds(), time.process_time(), time.monotonic()
            rss = server.rss_mib()
            lags = loop_lag.lags_ms[lag_start:]
            await asyncio.sleep(ECHO_GRACE_S)
            await loop_lag.stop()
            await asyncio.gather(*(client.close() for client in clients))
        chunks = [chunk for client in clients for chunk in client.chunks if window_start <= chunk.due < window_end]
        wall = wall_end - wall_start
        step = self._result(sessions, chunks, (cpu_end - cpu_start) / wall, (generator_end - generator_start) / wall,
                            rss_before, rss, lags)
        step.relay = relay
        return step

    def _result(
        self,
        sessions: int,
        chunks: list[ChunkTimes],
        server_cpu: float,
        generator_cpu: float,
        rss_before: float,
        rss: float,
        lags: list[float],
    ) -> StepResult:
        echoed = [c for c in chunks if c.echoed is not None and c.upstream_received is not None]
        uplink = [(c.upstream_received - c.sent) * 1000 for c in echoed]  # type: ignore[operator]
        downlink = [(c.echoed - c.upstream_sent) * 1000 for c in echoed]  # type: ignore[operator]
        step = StepResult(
            sessions=sessions,
            chunks_sent=len(chunks),
            chunks_echoed=len(echoed),
            chunks_lost=len(chunks) - len(echoed),
            added_latency_ms=Distribution.of(up + down for up, down in zip(uplink, downlink, strict=True)),
            uplink_ms=Distribution.of(uplink),
            downlink_ms=Distribution.of(downlink),
            round_trip_ms=Distribution.of((c.echoed - c.sent) * 1000 for c in echoed),  # type: ignore[operator]
            send_lag_ms=Distribution.of((c.sent - c.due) * 1000 for c in chunks),
            server_cpu_cores=round(server_cpu, 4),
            server_cpu_per_session=round(server_cpu / sessions, 5),
            server_rss_mib_before=round(rss_before, 1),
            server_rss_mib=round(rss, 1),
            server_rss_mib_per_session=round((rss - rss_before) / sessions, 3),
            generator_cpu_cores=round(generator_cpu, 4),
            generator_loop_lag_ms=Distribution.of(lags),
        )
        judge(step, self.limits, pinned=self.placement.server_cpu is not None)
        return step


@dataclass(frozen=True, slots=True)
class Capacity:
    """The answer to "how many sessions does one core hold in real time"."""

    sessions: int | None  # the largest N that held (None: not even one)
    first_broken: int | None  # the smallest N that broke (None: never broke within the plan)
    limited_by: str  # "server", "load generator" or "plan" (the plan's cap was reached first)
    cpu_per_session: float | None  # marginal CPU per session (least squares over steps that held), cores
    rss_mib_per_session: float | None  # marginal resident memory per session, MiB

    def describe(self) -> str:
        if self.sessions is None:
            return "real time did not hold for a single session"
        if self.limited_by == "plan":
            return f"at least {self.sessions} sessions (every step held; raise --max-sessions to search further)"
        if self.limited_by == "load generator":
            return f"at least {self.sessions} sessions (the load generator saturated at {self.first_broken})"
        return f"{self.sessions} sessions (real time broke at {self.first_broken})"


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x, or None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = np.array([x for x, _ in points]), np.array([y for _, y in points])
    return float(np.polyfit(xs, ys, 1)[0])


def capacity(steps: list[StepResult]) -> Capacity:
    held = [step for step in steps if step.real_time]
    broken = [step for step in steps if not step.real_time]
    best = max((step.sessions for step in held), default=None)
    first_broken = min((step.sessions for step in broken), default=None)
    generator = any(step.generator_limited and step.sessions == first_broken for step in broken)
    limited_by = "plan" if first_broken is None else "load generator" if generator else "server"
    cpu = slope([(step.sessions, step.server_cpu_cores) for step in held])
    rss = slope([(step.sessions, step.server_rss_mib - step.server_rss_mib_before) for step in held])
    if cpu is None and held:
        cpu = held[0].server_cpu_per_session
    if rss is None and held:
        rss = held[0].server_rss_mib_per_session
    return Capacity(best, first_broken, limited_by, cpu, rss)


def step_row(step: StepResult) -> list[Any]:
    added, send = step.added_latency_ms, step.send_lag_ms
    return [
        step.sessions,
        added.p50 if added else None,
        added.p99 if added else None,
        added.max if added else None,
        step.uplink_ms.p50 if step.uplink_ms else None,
        step.downlink_ms.p50 if step.downlink_ms else None,
        send.p99 if send else None,
        f"{step.chunks_lost}/{step.chunks_sent}",
        f"{step.server_cpu_cores * 100:.0f}%",
        f"{step.server_cpu_per_session * 100:.2f}%",
        step.server_rss_mib,
        step.server_rss_mib_per_session,
        step.generator_loop_lag_ms.p99 if step.generator_loop_lag_ms else None,
        "yes" if step.real_time else "no" + (" (generator)" if step.generator_limited else ""),
    ]


STEP_HEADERS = (
    "sessions",
    "added p50",
    "p99",
    "max",
    "up p50",
    "down p50",
    "send lag p99",
    "lost",
    "server CPU",
    "per session",
    "RSS MiB",
    "MiB/session",
    "gen lag p99",
    "real time",
)


def plan_from_args(args: argparse.Namespace) -> Plan:
    plan = Plan.quick() if args.quick else Plan()
    if args.duration is not None:
        plan = replace(plan, duration_s=args.duration)
    if args.max_sessions is not None:
        plan = replace(plan, max_sessions=args.max_sessions, sessions=())
    if args.sessions:
        plan = replace(plan, sessions=tuple(args.sessions))
    if args.compare_sessions is not None:
        plan = replace(plan, compare_sessions=args.compare_sessions)
    if args.compare_only:
        plan = replace(plan, ramp=False)
    return plan


@dataclass(frozen=True, slots=True)
class Comparison:
    """The relay against the naive proxy at one session count, measured in the same run.

    ``ratio`` sets the server as it runs by default against the proxy as the
    guide writes it; ``same_loop`` sets them against each other on one loop
    at a time (where both ran on it), which leaves the loop's share out.
    ``ceiling`` is the naive proxy against the byte pipe (where it ran): the
    most times cheaper than the naive proxy that any relay reading its
    messages could be on this machine.
    """

    sessions: int
    relay_cpu_ms: float  # server CPU ms per session-second
    naive_cpu_ms: float
    ratio: float  # naive / relay: how many times cheaper the relay is (below 1: dearer)
    same_loop: dict[str, float] = field(default_factory=dict)  # loop -> naive / relay, both on that loop
    floor_cpu_ms: float | None = None  # the byte pipe's CPU ms per session-second
    ceiling: float | None = None  # naive / floor

    @classmethod
    def of(cls, steps: list[StepResult]) -> Comparison | None:
        by_relay = {step.relay: step for step in steps}
        relay, naive = by_relay.get("gemini"), by_relay.get("naive")
        if relay is None or naive is None:
            return None
        ratio = _ratio(naive, relay)
        if ratio is None:
            return None
        by_program_loop = {(RELAYS[step.relay].program, RELAYS[step.relay].loop): step for step in steps}
        same_loop: dict[str, float] = {}
        for loop in ("asyncio", "uvloop"):
            naive_on, relay_on = by_program_loop.get(("naive", loop)), by_program_loop.get(("gemini", loop))
            if naive_on is not None and relay_on is not None and (loop_ratio := _ratio(naive_on, relay_on)) is not None:
                same_loop[loop] = loop_ratio
        floor = by_relay.get("pipe")
        return cls(
            relay.sessions,
            round(relay.cpu_ms_per_session_second, 3),
            round(naive.cpu_ms_per_session_second, 3),
            ratio,
            same_loop,
            round(floor.cpu_ms_per_session_second, 3) if floor is not None else None,
            _ratio(naive, floor) if floor is not None else None,
        )


def _ratio(naive: StepResult, relay: StepResult) -> float | None:
    """How many times cheaper ``relay`` (or the floor) was than ``naive``; None where its CPU did not register."""
    if not relay.cpu_ms_per_session_second:
        return None
    return round(naive.cpu_ms_per_session_second / relay.cpu_ms_per_session_second, 3)


def comparison_row(step: StepResult) -> list[Any]:
    added = step.added_latency_ms
    return [
        RELAYS[step.relay].label,
        round(step.cpu_ms_per_session_second, 2),
        added.p50 if added else None,
        added.p95 if added else None,
        added.p99 if added else None,
        f"{step.chunks_lost}/{step.chunks_sent}",
        f"{step.server_cpu_cores * 100:.0f}%",
    ]


COMPARISON_HEADERS = ("relay", "CPU ms per session-s", "added p50", "p95", "p99", "lost", "server CPU")


def run(args: argparse.Namespace) -> int:
    """Ramp, print the table, write JSON and a plot (figures are reported, never judged: status 0)."""
    try:
        import psutil  # noqa: F401  (the server's CPU and memory are read through it)
    except ModuleNotFoundError:
        print("assistant bench relay needs psutil: pip install 'live-assistant[bench]'", file=sys.stderr)
        return 2
    plan = plan_from_args(args)
    limits = Limits(args.max_p99_ms, args.max_send_lag_ms)
    seed_everything(args.seed)
    placement = Placement.choose(pin=not args.no_pin)
    machine = Machine.now()
    print(f"assistant bench relay: {placement.describe()}; {plan.duration_s:g} s per step\n", flush=True)

    def progress(step: StepResult) -> None:
        added = f"{step.added_latency_ms.p99:.1f} ms" if step.added_latency_ms else "-"
        verdict = "holds" if step.real_time else f"breaks: {'; '.join(step.failures)}"
        again = " (the load generator fell behind)" if step.generator_limited else ""
        relay = "" if step.relay == "gemini" else f" ({RELAYS[step.relay].label.strip()})"
        print(
            f"  {step.sessions:4d} sessions{relay}: p99 added {added}, server CPU {step.server_cpu_cores * 100:.0f}% "
            f"({step.cpu_ms_per_session_second:.1f} ms per session-second): real time {verdict}{again}",
            flush=True,
        )

    saved_affinity = os.sched_getaffinity(0) if placement.server_cpu is not None else None
    try:
        if saved_affinity is not None:
            os.sched_setaffinity(0, set(placement.generator_cpus))
        with tempfile.TemporaryDirectory(prefix="assistant-bench-relay-") as folder:
            bench = RelayBench(plan, limits, args.seed, placement, Path(folder), args.log_level)
            steps = asyncio.run(bench.run(progress))
    except BenchUnavailable as exc:
        print(f"assistant bench relay: {exc}", file=sys.stderr)
        return 2
    finally:
        if saved_affinity is not None:
            os.sched_setaffinity(0, saved_affinity)
    machine.finish()
    result = capacity(steps)
    compared = Comparison.of(bench.comparison)
    if bench.comparison:
        print(f"\nat {plan.compare_sessions} sessions, {plan.duration_s:g} s, the same upstream and core:")
        print(format_table(COMPARISON_HEADERS, [comparison_row(step) for step in bench.comparison]))
    if compared is not None:
        print(
            f"relay CPU {compared.relay_cpu_ms:.2f} ms per session-second, naive proxy {compared.naive_cpu_ms:.2f}: "
            f"the relay is {compared.ratio:.2f}x as cheap"
        )
        if compared.same_loop:
            print(
                "on the same loop, naive / relay: "
                + ", ".join(f"{loop} {ratio:.2f}x" for loop, ratio in compared.same_loop.items())
            )
        if compared.floor_cpu_ms is not None and compared.ceiling is not None:
            print(
                f"floor (bytes through, nothing read) {compared.floor_cpu_ms:.2f} ms per session-second: no relay "
                f"that reads its messages is more than {compared.ceiling:.2f}x as cheap as the naive proxy here"
            )
    if steps:
        print()
        print(format_table(STEP_HEADERS, [step_row(step) for step in steps]))
    print(
        "\nms per 20 ms chunk; added = uplink (client -> upstream) + downlink (upstream -> client); "
        "CPU in % of one core"
    )
    if steps:
        print(f"largest N one core holds in real time: {result.describe()}")
    if steps and result.cpu_per_session is not None and result.rss_mib_per_session is not None:
        print(
            f"per session: {result.cpu_per_session * 100:.2f}% of a core, {result.rss_mib_per_session:.2f} MiB "
            "(least-squares slope over the steps that held)"
        )
    print(
        f"real time: p99 added latency <= {limits.max_p99_ms:g} ms, no chunk lost, "
        f"p99 send lag <= {limits.max_send_lag_ms:g} ms"
    )
    print(machine.describe())
    report = {
        "benchmark": "relay",
        "seed": args.seed,
        "quick": args.quick,
        "machine": machine.to_json(),
        "placement": asdict(placement),
        "plan": asdict(plan),
        "limits": asdict(limits),
        "upstream": "assistant.bench.upstream.EchoUpstream (stream mode) over TLS on loopback",
        "steps": [step.to_json() for step in steps],
        "capacity": asdict(result),
        "comparison": [step.to_json() for step in bench.comparison],
        "compared": asdict(compared) if compared is not None else None,
    }
    publish(args, report, plot_relay if steps else None)  # the plot draws the ramp
    return 0
