"""Shared fixtures: TLS certificates made at test time and servers on loopback."""

from __future__ import annotations

import asyncio
import inspect
import logging
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import looptime
import pytest

from assistant.server import LiveServer, ServerConfig
from assistant.server.tokens import TokenStore
from assistant.session import Backend, MemoryResumptionStore, ProfileResolver, ResumptionStore, ServerTools
from assistant.session.counts import SessionCounter
from tests.support.redis_server import RedisServer
from tests.support.virtual_time import runs_on_virtual_time

LEAK_SETTLE_TURNS = 50  # 0.5 s for tasks already ending


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test keeps its data (sessions, memory, knowledge) apart from the user's and other tests'.

    Servers open the knowledge store at startup, and the embedded store admits
    one process at a time: a test must never find it held by another.
    """
    folder = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def kural_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded knowledge store with the Thirukkural indexed, built once per test run.

    Indexing embeds 1,330 couplets (a minute or more on a busy two-core
    machine); tests copy this folder (``kural_store_copy``) instead.
    """
    from assistant.knowledge import KnowledgeStore
    from assistant.knowledge.thirukkural import COLLECTION, ThirukkuralCorpus

    folder = tmp_path_factory.mktemp("kural-index") / "knowledge"
    with KnowledgeStore.open(folder) as store:
        result = store.add_corpus(ThirukkuralCorpus(), COLLECTION)
    assert (result.status, result.passages) == ("added", 1330)
    return folder


def kural_store_copy(kural_index: Path, folder: Path) -> Path:
    """A private copy of the indexed Thirukkural store at ``folder`` (the embedded store is one client's)."""
    shutil.copytree(kural_index, folder)
    return folder


@pytest.fixture
def kural_data_dir(kural_index: Path, private_data_dir: Path) -> Path:
    """This test's data dir, its knowledge store holding the indexed Thirukkural (for servers it starts)."""
    kural_store_copy(kural_index, private_data_dir / "knowledge")
    return private_data_dir


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
        persona_catalog: Callable[[], dict[str, Any]] | None = None,
        tokens: TokenStore | None = None,
        session_counts: SessionCounter | None = None,
        **overrides: object,
    ) -> AsyncIterator[LiveServer]:
        base = config or ServerConfig()
        server = LiveServer(
            replace(base, port=0, **overrides),  # type: ignore[arg-type]
            backend,
            store=store if store is not None else MemoryResumptionStore(),
            tools=tools,
            profiles=profiles,
            persona_catalog=persona_catalog,
            tokens=tokens,
            session_counts=session_counts,
        )
        await server.start()
        try:
            yield server
        finally:
            await server.stop()

    return start


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private ``redis-server`` on a free loopback port (``tests.support.redis_server``)."""
    server = RedisServer(tmp_path / "redis")
    server.folder.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the transformers engine tests run their models; cuda needs a CUDA GPU (see make gpu-check)",
    )


@pytest.fixture(scope="session")
def model_device(request: pytest.FixtureRequest) -> str:
    """The device of ``--device``: the transformers engine tests run there for real, on any machine."""
    return str(request.config.getoption("--device"))


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo what a test's in-process command (``main(["serve", ...])``) did to logging.

    ``configure_logging`` points the root logger at the stderr pytest captured
    for that test, which is closed afterwards: every later log record then
    printed a "Logging error" traceback, and the load made the spoken tests
    that followed mishear their questions.
    """
    root, websockets = logging.getLogger(), logging.getLogger("websockets")
    handlers, level, websockets_level = root.handlers[:], root.level, websockets.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        websockets.setLevel(websockets_level)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """A test on virtual time (``tests.support.virtual_time``) stays on it while its fixtures are torn down.

    Back on the real clock, every timer the test left would be long due (its
    deadline is on the virtual clock, which starts near zero): a task left
    sleeping would wake and finish before ``no_tasks_left_running`` looked.
    """
    runner = getattr(item, "funcargs", {}).get("_function_scoped_runner")  # pytest-asyncio's loop for the test
    loop = runner.get_loop() if isinstance(runner, asyncio.Runner) else None
    if not isinstance(loop, looptime.LoopTimeEventLoop) or loop.looptime_on or not runs_on_virtual_time(item):
        return (yield)
    with loop.looptime_enabled():
        return (yield)


@pytest.fixture(autouse=True)
async def no_tasks_left_running(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail an asynchronous test that leaves tasks running after itself and its fixtures.

    A session whose reader never stops, a timer nobody cancels or a server
    left serving pass their own test and break a later one (or hang the run
    at exit); the event loop would cancel them silently when it closes. As
    an autouse fixture set up first, this one is torn down after every other
    fixture of the test, so servers and clients the fixtures own are gone.
    On virtual time (``tests.support.virtual_time``) the settling turns take
    no real time, and a task left sleeping is still found sleeping.
    """
    yield
    if not inspect.iscoroutinefunction(request.function):
        return
    this = asyncio.current_task()
    for _ in range(LEAK_SETTLE_TURNS):  # tasks finishing their last steps (a close handshake) may do so
        if not [task for task in asyncio.all_tasks() if task is not this]:
            return
        await asyncio.sleep(0.01)
    left = [task for task in asyncio.all_tasks() if task is not this]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    names = ", ".join(sorted(f"{task.get_name()} ({getattr(task.get_coro(), '__qualname__', '?')})" for task in left))
    pytest.fail(f"the test left {len(left)} task(s) running: {names}")
