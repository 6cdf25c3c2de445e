"""A Gemini Live stand-in on loopback that echoes audio: the relay benchmarks' upstream.

This is a benchmark fixture, not a backend: ``assistant serve`` cannot
select it. ``assistant bench relay`` and ``assistant bench latency --backend
gemini`` point the real Gemini backend (google-genai SDK) at it, so what
they measure is the relay itself: the server, the SDK and the sockets,
with an upstream that answers at once. Real Gemini adds its own network
and model time on top.

It speaks the wire protocol as Gemini does, so the SDK cannot tell:

- TLS on 127.0.0.1 with a certificate made at run time (``make_certificate``;
  the SDK trusts it through ``SSL_CERT_FILE`` or ``async_client_args``), on
  the Live paths of v1alpha, v1beta and v1 (other paths get 404);
- the key in the ``x-goog-api-key`` header, else a 1007 close with
  Gemini's reason; ``setup`` first, answered by ``setupComplete``;
- every server message one binary frame of lowerCamelCase JSON with
  standard base64, written by ``assistant.protocol.encode_message``;
  client frames parsed as the server parses them (either casing).

Two ways to answer (``EchoMode``):

- ``stream``: each 16 kHz input chunk comes straight back as 24 kHz model
  audio. A chunk that starts with a ``Stamp`` (the relay benchmark's
  sequence tag) comes back with the same tag and the times the upstream
  received and sent it, so the benchmark splits each round trip into
  uplink and downlink without trusting message order.
- ``turns``: like a live model, it waits for the speaker to pause
  (``silence_ms`` of audio with no voiced sample, as ``assistant.bench.speech``
  defines one, counted in audio time, so it is the same on a busy
  machine), then speaks the utterance back at once (without the pause),
  then ``generationComplete``, ``turnComplete`` and a resumption handle.
  ``observe`` is told when the last voiced chunk arrived, when it decided
  the turn was over and when the first reply audio left, for the latency
  benchmark's stages.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import secrets
import ssl
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from assistant.bench.speech import voiced_samples
from assistant.protocol import (
    INPUT_AUDIO_RATE,
    OUTPUT_AUDIO_RATE,
    ActivityEnd,
    AudioChunk,
    AudioStreamEnd,
    ClientEvent,
    CloseCode,
    ProtocolError,
    ReplyAudio,
    ServerMessage,
    SessionResumptionUpdate,
    SetupComplete,
    client_events,
    decode_client_frame,
    encode_event,
    encode_message,
    parse_client_message,
)
from assistant.server.app import LIVE_PATH
from audio.resample import StreamResampler

logger = logging.getLogger("assistant.bench.upstream")

DEFAULT_KEY = "bench-upstream-key"
BAD_KEY_REASON = "API key not valid. Please pass a valid API key."
SETUP_TIMEOUT_S = 10.0
DEFAULT_SILENCE_MS = 500
REPLY_CHUNK_S = 0.04  # reply audio goes out in pieces of this length, as Gemini sends it

Observer = Callable[[str, float], None]


class EchoMode(StrEnum):
    STREAM = "stream"  # every chunk straight back
    TURNS = "turns"  # each utterance back once the speaker pauses


@dataclass(frozen=True, slots=True)
class Stamp:
    """The tag at the start of a relay benchmark chunk, and the upstream's times for it.

    Written into the first ``SIZE`` bytes of the audio itself (seven samples
    of noise nobody listens to), since audio is all that crosses the relay.
    """

    session: int
    sequence: int
    received_at: float = 0.0  # time.monotonic() when the upstream read the chunk
    sent_at: float = 0.0  # ... and when it sent the echo

    MAGIC = b"BNCH"
    _LAYOUT = struct.Struct("<4sIIdd")
    SIZE = _LAYOUT.size

    def pack(self) -> bytes:
        return self._LAYOUT.pack(self.MAGIC, self.session, self.sequence, self.received_at, self.sent_at)

    @classmethod
    def read(cls, pcm: bytes) -> Stamp | None:
        """The stamp ``pcm`` starts with, or None for plain audio."""
        if len(pcm) < cls.SIZE or not pcm.startswith(cls.MAGIC):
            return None
        _, session, sequence, received_at, sent_at = cls._LAYOUT.unpack_from(pcm)
        return cls(session, sequence, received_at, sent_at)


@dataclass(frozen=True, slots=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, as PEM files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def make_certificate(folder: Path) -> Certificate:
    """A fresh P-256 certificate, valid for a day, for loopback only (``cryptography`` package)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "upstream-cert.pem", folder / "upstream-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Certificate(cert_path, key_path)


@dataclass
class UpstreamStats:
    """What the upstream saw, over all connections."""

    connections: int = 0
    audio_chunks_in: int = 0
    audio_chunks_out: int = 0
    turns: int = 0
    refused: int = 0
    closed_with: list[tuple[int | None, str]] = field(default_factory=list)


class EchoUpstream:
    """The server (an async context manager); ``base_url`` is what the SDK is given."""

    def __init__(
        self,
        certificate: Certificate,
        mode: EchoMode = EchoMode.STREAM,
        *,
        api_key: str = DEFAULT_KEY,
        silence_ms: int = DEFAULT_SILENCE_MS,
        observe: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.certificate = certificate
        self.mode = mode
        self.api_key = api_key
        self.silence_ms = silence_ms
        self.observe = observe
        self.clock = clock
        self.stats = UpstreamStats()
        self._server: Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "upstream not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def __aenter__(self) -> EchoUpstream:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            ssl=self.certificate.server_context(),
            process_request=self._process_request,
            compression=None,
            max_size=None,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not LIVE_PATH.match(request.path.partition("?")[0]):
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _handle(self, websocket: ServerConnection) -> None:
        request = websocket.request
        assert request is not None
        self.stats.connections += 1
        try:
            first = await asyncio.wait_for(websocket.recv(), SETUP_TIMEOUT_S)
            if request.headers.get("x-goog-api-key") != self.api_key:
                self.stats.refused += 1
                await websocket.close(CloseCode.INVALID_ARGUMENT, BAD_KEY_REASON)
                return
            if parse_client_message(first).setup is None:
                await websocket.close(CloseCode.INVALID_ARGUMENT, "Request contains an invalid argument.")
                return
            await websocket.send(encode_message(ServerMessage(setup_complete=SetupComplete())))
            if self.mode is EchoMode.STREAM:
                await self._stream(websocket)
            else:
                await self._turns(websocket)
        except ProtocolError as error:
            await websocket.close(CloseCode.INVALID_ARGUMENT, error.reason)
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            self.stats.closed_with.append((websocket.close_code, websocket.close_reason or ""))

    async def _stream(self, websocket: ServerConnection) -> None:
        async for event in events_of(websocket):
            if not isinstance(event, AudioChunk):
                continue
            received = self.clock()
            self.stats.audio_chunks_in += 1
            echo = bytearray(stretch(event.pcm, event.sample_rate, OUTPUT_AUDIO_RATE))
            stamp = Stamp.read(event.pcm)
            if stamp is not None and len(echo) >= Stamp.SIZE:
                sent = Stamp(stamp.session, stamp.sequence, received, self.clock())
                echo[: Stamp.SIZE] = sent.pack()
            await websocket.send(encode_event(ReplyAudio.from_pcm(bytes(echo))))
            self.stats.audio_chunks_out += 1

    async def _turns(self, websocket: ServerConnection) -> None:
        resampler = StreamResampler(INPUT_AUDIO_RATE, OUTPUT_AUDIO_RATE)
        utterance: list[bytes] = []
        silence_s = 0.0
        last_speech_at, voiced_chunks = 0.0, 0
        async for event in events_of(websocket):
            ended = isinstance(event, (ActivityEnd, AudioStreamEnd))
            if isinstance(event, AudioChunk):
                self.stats.audio_chunks_in += 1
                speech = voiced_samples(np.frombuffer(event.pcm, dtype="<i2")).size > 0
                if speech or utterance:
                    utterance.append(event.pcm)
                if speech:
                    last_speech_at, voiced_chunks = self.clock(), len(utterance)
                silence_s = 0.0 if speech else silence_s + event.duration_s
                ended = bool(utterance) and silence_s * 1000 >= self.silence_ms
            if ended and utterance:
                self._observe("speech_received", last_speech_at)
                self._observe("turn_end")
                reply = resampler.process(b"".join(utterance[:voiced_chunks])) + resampler.flush()
                resampler = StreamResampler(INPUT_AUDIO_RATE, OUTPUT_AUDIO_RATE)
                utterance, silence_s = [], 0.0
                await self._reply(websocket, reply)

    async def _reply(self, websocket: ServerConnection, pcm: bytes) -> None:
        """The utterance spoken back in 40 ms pieces, then the turn's closing messages."""
        piece = int(REPLY_CHUNK_S * OUTPUT_AUDIO_RATE) * 2
        for start in range(0, len(pcm), piece):
            if start == 0:
                self._observe("first_audio")
            await websocket.send(encode_message(ServerMessage.model_audio(pcm[start : start + piece])))
            self.stats.audio_chunks_out += 1
        handle = SessionResumptionUpdate(new_handle=f"bench-{secrets.token_hex(4)}", resumable=True)
        for message in (
            ServerMessage.generation_done(),
            ServerMessage.turn_done(),
            ServerMessage(session_resumption_update=handle),
        ):
            await websocket.send(encode_message(message))
        self.stats.turns += 1

    def _observe(self, milestone: str, at: float | None = None) -> None:
        if self.observe is not None:
            self.observe(milestone, self.clock() if at is None else at)


def stretch(pcm: bytes, rate: int, new_rate: int) -> bytes:
    """``pcm`` at ``new_rate`` by linear interpolation: a tenth of soxr's cost per 20 ms chunk.

    The stream echo is never listened to, and the stand-in must cost its
    load generator less than the relay it measures.
    """
    samples = np.frombuffer(pcm, dtype="<i2")
    count = len(samples) * new_rate // rate
    positions = np.arange(count) * (rate / new_rate)
    return np.interp(positions, np.arange(len(samples)), samples).astype("<i2").tobytes()


async def events_of(websocket: ServerConnection) -> AsyncIterator[ClientEvent]:
    """The client events of a connection, frame after frame, until it closes."""
    while True:
        try:
            frame = await websocket.recv()
        except ConnectionClosed:
            return
        message = decode_client_frame(frame)  # a plain microphone chunk skips the models: the generator's cost
        if isinstance(message, AudioChunk):
            yield message
            continue
        for event in client_events(message):
            yield event
