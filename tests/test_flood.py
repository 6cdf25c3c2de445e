"""Fifty flooding clients cannot take the server's memory past its caps, and others keep their turns.

The deployment as a user runs it: ``assistant serve --backend gemini`` in
its own process, with small caps on the command line, its Gemini the
benchmarks' echo upstream (TLS, the real wire protocol, the real SDK in the
server). Then, all at once:

- 4 clients send 200 messages of 4 MiB between them: two send
  ``clientContent`` text and never end the turn (before the caps, four
  clients sending 25 such messages each took the server from 146 MB to
  618 MB), two send camera frames (a JPEG padded to 4 MiB);
- 45 clients send bursts of audio and 64 KiB text turns as fast as TCP lets them;
- 1 client talks (15 turns of audio, as fast as it can) and never reads a
  byte, on a socket with a 4 KiB receive buffer;
- 2 clients hold ordinary conversations, turn after turn.

The server's resident memory is sampled throughout; its peak must stay
under what it had before, plus each session's caps (queues both ways, the
history, the Gemini backend's replay, and the frames a connection may have
in flight), plus a fixed overhead. The figures are printed for the record.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from assistant.bench.relay import MODEL, ServerProcess, serve_gemini
from assistant.bench.upstream import EchoMode, EchoUpstream, make_certificate
from assistant.server.app import WEBSOCKET_QUEUE_FRAMES

pytest.importorskip("psutil")
pytest.importorskip("cryptography")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

MIB = 1024 * 1024
QUEUE_BYTES = 256 * 1024
HISTORY_BYTES = 512 * 1024
REPLAY_BYTES = HISTORY_BYTES  # the Gemini backend's replay of text since the last turn has the same cap
MAX_MESSAGE_BYTES = 6 * MIB  # a 4 MiB frame is 5.3 MiB in base64
BIG_MESSAGE = 4 * MIB
BIG_CLIENTS, BIG_MESSAGES = 4, 200  # half text turns, half camera frames
SMALL_CLIENTS, SMALL_TEXT, SMALL_TURNS, SMALL_AUDIO_CHUNKS = 45, 64 * 1024, 8, 100
# A frame being read, one queued by websockets, one parsed and waiting for room in the session's queue.
FRAMES_IN_FLIGHT = WEBSOCKET_QUEUE_FRAMES + 2
PER_SESSION_OVERHEAD = 1 * MIB  # its upstream TLS connection, the SDK's session, tasks and small objects
FIXED_OVERHEAD = 96 * MIB  # allocator slack and the copies one message makes while it is parsed and forwarded
# 15 turns come back as 2 minutes of reply audio (5.5 MiB) that nobody reads: more than the kernel buffers.
UNREAD_TURNS, UNREAD_TURN_S = 15, 8.0
VICTIM_TURNS = 3
TURN_TIMEOUT_S = 30.0
SAMPLE_S = 0.02
ENDED = re.compile(r"\] ended .*dropped in (.+), out (.+)$")

SETUP = json.dumps({"setup": {"model": MODEL, "generationConfig": {"responseModalities": ["AUDIO"]}}})


def audio_message(pcm: bytes) -> str:
    data = base64.b64encode(pcm).decode()
    return json.dumps({"realtimeInput": {"audio": {"data": data, "mimeType": "audio/pcm;rate=16000"}}})


def text_turn(size: int, tag: int) -> str:
    turns = [{"role": "user", "parts": [{"text": f"{tag:04} " + "x" * size}]}]
    return json.dumps({"clientContent": {"turns": turns, "turnComplete": False}})


def camera_frame(size: int, tag: int) -> str:
    """A real 640x480 JPEG followed by padding up to ``size`` bytes (decoders stop at its end)."""
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (640, 480), (tag % 256, 90, 160)).save(picture, "JPEG")
    data = picture.getvalue() + tag.to_bytes(4, "big") * ((size - len(picture.getvalue())) // 4)
    return json.dumps({"realtimeInput": {"video": {"data": base64.b64encode(data).decode(), "mimeType": "image/jpeg"}}})


@dataclass
class Utterance:
    """One spoken turn in 20 ms messages: noise loud enough to count as voice, then a pause."""

    voiced_s: float
    rng: np.random.Generator
    messages: list[str] = field(init=False)

    def __post_init__(self) -> None:
        voice = (self.rng.standard_normal(int(self.voiced_s * 16_000)) * 6_000).astype("<i2")
        pcm = voice.tobytes() + bytes(int(0.6 * 16_000) * 2)  # the echo upstream ends a turn after 300 ms quiet
        self.messages = [audio_message(pcm[start : start + 640]) for start in range(0, len(pcm), 640)]


async def open_client(url: str, sock: socket.socket | None = None) -> ClientConnection:
    client = await connect(url, max_size=None, compression=None, open_timeout=30, sock=sock)
    await client.send(SETUP)
    assert "setupComplete" in json.loads(await client.recv())
    return client


class Sampler:
    """The server's resident memory every 20 ms, in a task."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.peak_mib = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()

    async def _run(self) -> None:
        while True:
            self.peak_mib = max(self.peak_mib, self.server.rss_mib())
            self.samples += 1
            await asyncio.sleep(SAMPLE_S)


async def flood_big(url: str, messages: int, message: str) -> None:
    """Send ``message`` again and again: each copy is parsed into new objects, as a fresh one would be."""
    client = await open_client(url)
    with contextlib.suppress(ConnectionClosed):
        for _ in range(messages):
            await client.send(message)
    await client.close()


async def flood_small(url: str, rng: np.random.Generator) -> None:
    client = await open_client(url)
    utterance = Utterance(SMALL_AUDIO_CHUNKS * 0.02, rng)
    with contextlib.suppress(ConnectionClosed):
        for turn in range(SMALL_TURNS):
            await client.send(text_turn(SMALL_TEXT, turn))
            for message in utterance.messages[: SMALL_AUDIO_CHUNKS // SMALL_TURNS]:
                await client.send(message)
    await client.close()


async def never_read(url: str, rng: np.random.Generator, stop: asyncio.Event) -> tuple[int, int]:
    """Talk turn after turn and read nothing; returns the bytes sent and the client's port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    local_port = sock.getsockname()[1]
    client = await open_client(url, sock)
    client.transport.pause_reading()  # from here on, nothing is read: the server's replies pile up
    utterance, sent = Utterance(UNREAD_TURN_S, rng), 0
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        for _ in range(UNREAD_TURNS):
            for message in utterance.messages:
                async with asyncio.timeout(5):
                    await client.send(message)
                sent += len(message)
    await stop.wait()
    client.transport.abort()  # (the server may have closed it first: no pong to its keepalive pings)
    return sent, local_port


async def converse(url: str, rng: np.random.Generator) -> list[float]:
    """Ordinary turns; returns how long each took from the end of speech to turnComplete."""
    client = await open_client(url)
    utterance, took = Utterance(1.0, rng), []
    for _ in range(VICTIM_TURNS):
        for message in utterance.messages:
            await client.send(message)
        spoke = time.monotonic()
        audio = 0
        async with asyncio.timeout(TURN_TIMEOUT_S):
            while True:
                reply = json.loads(await client.recv())
                content = reply.get("serverContent", {})
                audio += len(content.get("modelTurn", {}).get("parts", []))
                if content.get("turnComplete"):
                    break
        assert audio > 0, "the turn completed without a reply"
        took.append(time.monotonic() - spoke)
    await client.close()
    return took


async def ended_line(server: ServerProcess, port: int, timeout_s: float = 15.0) -> str:
    """The log line that ends the session of the client on ``port`` (the server logs its peer), if it came.

    The session ends once its Gemini connection has closed, which waits up to
    5 s for an upstream that the stalled session had stopped reading.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                for line in server.log:
                    if f"127.0.0.1:{port} " in line and "] ended" in line:
                        return line
                await asyncio.sleep(0.1)
    return ""


@contextlib.asynccontextmanager
async def flood_server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    certificate = make_certificate(tmp_path)
    caps = ["--max-queue-bytes", str(QUEUE_BYTES), "--max-history-bytes", str(HISTORY_BYTES)]
    caps += ["--max-message-bytes", str(MAX_MESSAGE_BYTES)]
    async with EchoUpstream(certificate, EchoMode.TURNS, silence_ms=300) as upstream:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        async with serve_gemini(upstream, data_dir, cpu=None, log_level="info", extra_args=caps) as server:
            yield server


async def test_fifty_flooding_clients_stay_within_the_caps_and_others_keep_their_turns(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    async with flood_server(tmp_path) as server:
        await converse(server.url, rng)  # warm up: lazy imports, the first TLS handshakes
        await asyncio.sleep(0.5)
        before = server.rss_mib()
        started, cpu_started, generator_started = time.monotonic(), server.cpu_seconds(), time.process_time()
        stop_talking = asyncio.Event()
        with Sampler(server) as sampler:
            talker = asyncio.create_task(never_read(server.url, rng, stop_talking))
            big = [text_turn(BIG_MESSAGE, 1), camera_frame(BIG_MESSAGE, 2)]
            floods = [flood_big(server.url, BIG_MESSAGES // BIG_CLIENTS, big[n % 2]) for n in range(BIG_CLIENTS)]
            floods += [flood_small(server.url, np.random.default_rng(n)) for n in range(SMALL_CLIENTS)]
            flooding = asyncio.gather(*floods)
            victims = await asyncio.gather(converse(server.url, rng), converse(server.url, rng))
            await flooding
            flooded_at, generator_cpu_s = time.monotonic() - started, time.process_time() - generator_started
            stop_talking.set()
            sent_unread, port = await talker
            flood_cpu_s = server.cpu_seconds() - cpu_started
            unread_end = await ended_line(server, port)
        after = server.rss_mib()
    sessions = BIG_CLIENTS + SMALL_CLIENTS + 1 + 2
    caps = sessions * (2 * QUEUE_BYTES + HISTORY_BYTES + REPLAY_BYTES + PER_SESSION_OVERHEAD)
    in_flight = FRAMES_IN_FLIGHT * (
        sum(len(big[n % 2]) for n in range(BIG_CLIENTS)) + (sessions - BIG_CLIENTS) * SMALL_TEXT
    )
    bound = before + (caps + in_flight + FIXED_OVERHEAD) / MIB
    flooded = (BIG_MESSAGES * BIG_MESSAGE + SMALL_CLIENTS * SMALL_TURNS * SMALL_TEXT) / MIB
    shed = ENDED.search(unread_end)
    print(
        f"\nflood: {sessions} sessions, {flooded:.0f} MiB of text and frames sent in {flooded_at:.1f} s "
        f"(this process, clients and upstream, used {generator_cpu_s:.1f} s CPU), "
        f"{sent_unread / MIB:.1f} MiB sent by the client that never reads; the server used {flood_cpu_s:.1f} s CPU\n"
        f"server RSS: before {before:.0f} MiB, peak {sampler.peak_mib:.0f} MiB ({sampler.samples} samples), "
        f"after {after:.0f} MiB; bound {bound:.0f} MiB = before + caps {caps / MIB:.0f} "
        f"+ in flight {in_flight / MIB:.0f} + fixed {FIXED_OVERHEAD / MIB:.0f}\n"
        f"caps per session: queues 2 x {QUEUE_BYTES // 1024} KiB, history {HISTORY_BYTES // 1024} KiB, "
        f"replay {REPLAY_BYTES // 1024} KiB; websocket frames in flight {FRAMES_IN_FLIGHT} x message\n"
        f"victims' turns (end of speech to turnComplete, s): {[[round(t, 2) for t in v] for v in victims]}\n"
        + (
            f"the session that was never read: dropped in {shed.group(1)}, out {shed.group(2)}"
            if shed
            else "the session that was never read had not ended yet"
        )
    )
    assert sampler.peak_mib <= bound
    assert all(len(turns) == VICTIM_TURNS for turns in victims)
