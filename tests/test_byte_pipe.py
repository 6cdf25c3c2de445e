"""The byte pipe, the floor row of ``assistant bench relay``: bytes across unread, the upstream's key added."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from websockets.asyncio.client import connect

from assistant.bench.byte_pipe import MAX_HEAD_BYTES, listen
from assistant.bench.upstream import Certificate, EchoMode, EchoUpstream, Stamp
from assistant.bench.upstream import make_certificate as make_upstream_certificate
from assistant.server.app import DEFAULT_LIVE_PATH
from assistant.server.eventloop import LoopChoice, run

MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_upstream_certificate(tmp_path_factory.mktemp("upstream"))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])  # the bench runs it on uvloop, whose transports differ
def test_a_client_reaches_the_upstream_through_the_pipe_with_its_key_added(
    certificate: Certificate, loop: LoopChoice
) -> None:
    run(echo_through_the_pipe(certificate), loop)


async def echo_through_the_pipe(certificate: Certificate) -> None:
    async with EchoUpstream(certificate, EchoMode.STREAM) as upstream:
        async with await listen(upstream.base_url, upstream.api_key, str(certificate.cert)) as pipe:
            port = pipe.sockets[0].getsockname()[1]
            # No key from the client: the upstream closes without one (1007), so an answer means the pipe added it.
            async with connect(f"ws://127.0.0.1:{port}{DEFAULT_LIVE_PATH}", compression=None) as client:
                await client.send(json.dumps({"setup": {"model": MODEL}}))
                assert "setupComplete" in json.loads(await client.recv())
                pcm = Stamp(3, 7).pack() + bytes(640 - Stamp.SIZE)
                chunk = {"realtimeInput": {"audio": {"data": base64.b64encode(pcm).decode(), "mimeType": "audio/pcm"}}}
                await client.send(json.dumps(chunk))
                echo = json.loads(await client.recv())
    part = echo["serverContent"]["modelTurn"]["parts"][0]
    stamp = Stamp.read(base64.b64decode(part["inlineData"]["data"]))
    assert stamp is not None and (stamp.session, stamp.sequence) == (3, 7)
    assert upstream.stats.audio_chunks_in == upstream.stats.audio_chunks_out == 1


async def test_an_opening_request_that_never_ends_is_cut_off(certificate: Certificate) -> None:
    async with EchoUpstream(certificate, EchoMode.STREAM) as upstream:
        async with await listen(upstream.base_url, upstream.api_key, str(certificate.cert)) as pipe:
            reader, writer = await asyncio.open_connection("127.0.0.1", pipe.sockets[0].getsockname()[1])
            writer.write(b"GET / HTTP/1.1\r\n" + b"x-padding: " + b"a" * MAX_HEAD_BYTES)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing sent upstream
            writer.close()
    assert upstream.stats.connections == 0


async def test_an_upstream_without_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="host and a port"):
        await listen("https://127.0.0.1", "key", "unused.pem")
