"""`assistant talk --backend local` on a machine with no sound card: a spoken question in a WAV, a spoken reply out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audio.pcm import read_wav
from tests.support.talking import spoken_wav, voiced_seconds

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def test_the_local_backend_answers_a_spoken_question_into_a_wav(tmp_path: Path) -> None:
    question = spoken_wav(tmp_path, "question.wav", "what time is it")
    reply = tmp_path / "reply.wav"
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PULSE")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "talk",
            "--backend",
            "local",
            "--input",
            str(question),
            "--output",
            str(reply),
        ],
        cwd=REPO,
        env={**environ, "HF_HUB_OFFLINE": "1"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    heard = [line for line in done.stdout.splitlines() if line.startswith("you:")]
    assert heard and "time" in heard[0].lower(), done.stdout
    assert any(line.startswith("assistant:") for line in done.stdout.splitlines()), done.stdout
    assert voiced_seconds(read_wav(reply, 24_000), 24_000) >= 0.5, "the reply is spoken into the file"
