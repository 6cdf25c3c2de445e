"""Shared fixtures: TLS certificates made at test time and servers on loopback."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from assistant.server import LiveServer, ServerConfig
from assistant.session import Backend, MemoryResumptionStore, ProfileResolver, ResumptionStore, ServerTools


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def tls_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert, key)


ServerFactory = Callable[..., AbstractAsyncContextManager[LiveServer]]


@pytest.fixture
def live_server() -> ServerFactory:
    """Start a ``LiveServer`` on a free loopback port for the length of a block."""

    @asynccontextmanager
    async def start(
        backend: Backend,
        *,
        config: ServerConfig | None = None,
        store: ResumptionStore | None = None,
        tools: ServerTools | None = None,
        profiles: ProfileResolver | None = None,
        **overrides: object,
    ) -> AsyncIterator[LiveServer]:
        base = config or ServerConfig()
        server = LiveServer(
            replace(base, port=0, **overrides),  # type: ignore[arg-type]
            backend,
            store=store if store is not None else MemoryResumptionStore(),
            tools=tools,
            profiles=profiles,
        )
        await server.start()
        try:
            yield server
        finally:
            await server.stop()

    return start
