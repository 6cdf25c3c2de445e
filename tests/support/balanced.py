"""Real processes for the load-balanced deployment: ``assistant serve`` processes and HAProxy.

Each server process gets its own data dir (the embedded knowledge store
admits one process at a time) and shares only what a real deployment
shares: the Redis conversation store and the upstream. HAProxy runs
``deploy/haproxy.cfg`` unchanged, with the addresses in its environment.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

ENDPOINT = re.compile(r"Live endpoint\s+ws://127\.0\.0\.1:(\d+)/")
HAPROXY = "/usr/sbin/haproxy"
HAPROXY_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
START_TIMEOUT_S = 60.0


class ServeProcess:
    """``python -m assistant serve --port 0 [options]``; its port and log lines."""

    def __init__(self, name: str, data_dir: Path, env: dict[str, str], *options: str) -> None:
        self.name = name
        self.data_dir = data_dir
        self.env = {**env, "ASSISTANT_DATA_DIR": str(data_dir)}
        self.options = options
        self.log: list[str] = []
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "assistant", "serve", "--port", "0", *self.options),
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_log(port))
        self.port = await asyncio.wait_for(port, START_TIMEOUT_S)

    async def _read_log(self, port: asyncio.Future[int]) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            match = ENDPOINT.search(line)
            if match and not port.done():
                port.set_result(int(match.group(1)))
        if not port.done():
            port.set_exception(AssertionError(f"{self.name} exited:\n" + "\n".join(self.log)))

    def kill(self) -> None:
        """SIGKILL: the process vanishes mid-conversation, as when its machine fails."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM: the process drains (``--drain-seconds``) and exits, as a deploy restarts it."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)

    async def exit_code(self, timeout: float = 30.0) -> int:
        """Wait for the process to end; its exit status."""
        assert self._process is not None
        return await asyncio.wait_for(self._process.wait(), timeout)

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 15)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._process is not None:
            await self._process.wait()
        if self._reader is not None:
            await self._reader

    def metric(self, name: str) -> float:
        """One unlabelled sample of this process's ``/metrics`` (read directly, not through the balancer)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise AssertionError(f"{name} is not in {self.name}'s /metrics")


class HAProxy:
    """HAProxy with ``deploy/haproxy.cfg`` in the foreground, balancing ``servers``."""

    def __init__(self, port: int, servers: list[int]) -> None:
        if shutil.which(HAPROXY) is None:
            pytest.fail(f"{HAPROXY} is missing: install the Debian package haproxy (scripts/debian-test.txt)")
        self.port = port
        self.env = {
            **os.environ,
            "ASSISTANT_LB_BIND": f"127.0.0.1:{port}",
            **{f"ASSISTANT_{n}": f"127.0.0.1:{server}" for n, server in enumerate(servers, 1)},
        }
        self.log: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            HAPROXY, "-db", "-f", str(HAPROXY_CONFIG), stderr=asyncio.subprocess.PIPE, env=self.env
        )
        self._reader = asyncio.create_task(self._read_log())
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                if self._process.returncode is not None:
                    raise AssertionError("haproxy exited:\n" + "\n".join(self.log))
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    async def _read_log(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            self.log.append(raw.decode(errors="replace").rstrip())

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        if self._reader is not None:
            await self._reader
