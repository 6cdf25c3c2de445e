"""End to end: the google-genai SDK talks to ``assistant serve --backend gemini`` (a real
process), whose Gemini is the fake; the conversation goes on across an upstream goAway."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from google.genai import types

from tests.conftest import Certificate
from tests.support.fake_gemini import DEFAULT_KEY, FakeConnection, FakeGemini
from tests.test_gemini_conversations import MODEL, kinds, transcript
from tests.test_server_sdk import sdk_client, turn

ENDPOINT = re.compile(r"Live endpoint\s+wss?://127\.0\.0\.1:(\d+)/")


@dataclass
class ServeProcess:
    """A running ``python -m assistant serve``: its port and the log lines it wrote so far."""

    process: asyncio.subprocess.Process
    port: int
    log: list[str]
    reader: asyncio.Task[None]

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the server (SIGTERM drains it) and wait for it to exit; its exit status."""
        if self.process.returncode is None:
            self.process.send_signal(signum)
        status = await self.process.wait()
        await self.reader
        return status


async def start_assistant_serve(
    certificate: Certificate, gemini_url: str, *options: str, tls: bool = True
) -> ServeProcess:
    """Start ``python -m assistant serve [options]`` with the Gemini backend and wait until it listens.

    Gemini (the fake) is reached over TLS with ``certificate`` either way; ``tls`` is whether the
    server itself serves wss:// with it (a browser test serves plain http on loopback instead).
    """
    env = {**os.environ, "GEMINI_API_KEY": DEFAULT_KEY, "SSL_CERT_FILE": str(certificate.cert)}
    for name in ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI"):
        env.pop(name, None)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "assistant", "serve", "--backend", "gemini", "--port", "0"),
        *(("--tls-cert", str(certificate.cert), "--tls-key", str(certificate.key)) if tls else ()),
        *("--gemini-base-url", gemini_url, "--resumption-store", "memory"),
        *options,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stderr is not None
    log: list[str] = []
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def read_log() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            log.append(line)
            match = ENDPOINT.search(line)
            if match and not port.done():
                port.set_result(int(match.group(1)))
        if not port.done():
            port.set_exception(AssertionError("assistant serve exited:\n" + "\n".join(log)))

    reader = asyncio.create_task(read_log())
    serving = ServeProcess(process, 0, log, reader)
    try:
        serving.port = await asyncio.wait_for(port, 30)
    except BaseException:
        await serving.stop()
        raise
    return serving


@asynccontextmanager
async def assistant_serve(
    certificate: Certificate, gemini_url: str, *options: str
) -> AsyncIterator[tuple[int, list[str]]]:
    """Run ``python -m assistant serve [options]`` until the block ends; yields its port and its log lines."""
    serving = await start_assistant_serve(certificate, gemini_url, *options)
    try:
        yield serving.port, serving.log
    finally:
        await serving.stop()


async def test_the_sdk_talks_to_assistant_serve_across_an_upstream_go_away(tls_certificate: Certificate) -> None:
    handles: list[str | None] = []

    async def first(c: FakeConnection) -> None:
        handles.append(await c.exchange("hello", "Hi there."))
        await c.go_away("30s")

    async def second(c: FakeConnection) -> None:
        assert c.presented_handle == handles[0]
        await c.exchange("how are you?", "Fine, thanks.")

    async with FakeGemini(tls_certificate, [first, second]) as fake:
        async with assistant_serve(tls_certificate, fake.base_url) as (port, log):
            client = sdk_client(port, tls_certificate)
            config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO])
            async with client.aio.live.connect(model=MODEL, config=config) as session:
                await session.send_realtime_input(text="hello")
                hello = await turn(session)
                await session.send_realtime_input(text="how are you?")
                how = await turn(session)
        fake.check()
    assert (transcript(hello), transcript(how)) == ("Hi there.", "Fine, thanks.")
    assert "goAway" not in kinds(hello + how) and "sessionResumptionUpdate" not in kinds(hello + how)
    assert len(fake.connections) == 2
    assert any("Gemini sent goAway: moved to connection 2 (resumed)" in line for line in log), "\n".join(log)
    assert any("uvloop event loop" in line for line in log), "\n".join(log)  # the default, where installed
