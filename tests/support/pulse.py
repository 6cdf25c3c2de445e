"""A private PulseAudio server for tests: null sinks for a speaker and a microphone feed.

The daemon runs with its own runtime, state and socket folders, so tests
running side by side (or a user's own sound server) never see each other.
PortAudio reaches it through ALSA's pulse plugin (libasound2-plugins) when
``PULSE_SERVER`` points at its socket: set ``server.environ`` on the process
under test.

- ``spk``: the speaker. Whatever is played to the default output lands here;
  ``record("spk.monitor", ...)`` captures it.
- ``micfeed``: a sink whose monitor is remapped as the source ``mic``, the
  default input: ``play(wav, "micfeed")`` is heard by the microphone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MISSING = [name for name in ("pulseaudio", "pactl", "paplay", "parecord") if shutil.which(name) is None]


@dataclass
class PulseServer:
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def socket(self) -> Path:
        return self.folder / "native"

    @property
    def environ(self) -> dict[str, str]:
        return {**os.environ, "PULSE_SERVER": f"unix:{self.socket}", "PULSE_RUNTIME_PATH": str(self.folder / "client")}

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self.environ, check=True, capture_output=True, text=True)
        return done.stdout

    def play(self, wav: Path, sink: str = "micfeed", volume_db: float = 0.0) -> subprocess.Popen[bytes]:
        """Start playing ``wav`` into ``sink``; returns the paplay process."""
        volume = str(round(65536 * 10 ** (volume_db / 20)))
        return subprocess.Popen(["paplay", f"--device={sink}", f"--volume={volume}", str(wav)], env=self.environ)

    def record(self, source: str, path: Path, rate: int = 16000) -> subprocess.Popen[bytes]:
        """Start recording raw 16-bit mono PCM from ``source`` to ``path``; terminate it to stop."""
        return subprocess.Popen(
            ["parecord", f"--device={source}", f"--rate={rate}", "--channels=1", "--format=s16le", "--raw", str(path)],
            env=self.environ,
        )


@contextlib.contextmanager
def pulse_server(folder: Path) -> Iterator[PulseServer]:
    """Start a private PulseAudio daemon in ``folder``; stop it (by its pid) afterwards."""
    if MISSING:
        pytest.fail(f"PulseAudio tools missing ({', '.join(MISSING)}); run `make test` (scripts/debian-test.txt)")
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "native"
    environ = {
        **os.environ,
        "HOME": str(folder),
        "XDG_RUNTIME_DIR": str(folder),
        "PULSE_RUNTIME_PATH": str(folder / "runtime"),
        "PULSE_STATE_PATH": str(folder / "state"),
        "PULSE_CONFIG_PATH": str(folder / "config"),
    }
    process = subprocess.Popen(
        [
            "pulseaudio",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--system=no",
            "-n",
            f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
            "--load=module-null-sink sink_name=spk rate=48000",
            "--load=module-null-sink sink_name=micfeed rate=48000",
            "--load=module-remap-source source_name=mic master=micfeed.monitor",
        ],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "pulseaudio.log", "wb"),
    )
    server = PulseServer(folder, process)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                log = (folder / "pulseaudio.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"pulseaudio exited with {process.returncode}:\n{log}")
            if socket.exists():
                with contextlib.suppress(subprocess.CalledProcessError):
                    server.pactl("info")
                    break
            if time.monotonic() > deadline:
                pytest.fail("pulseaudio did not start within 10 s")
            time.sleep(0.05)
        server.pactl("set-default-sink", "spk")
        server.pactl("set-default-source", "mic")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
