"""Reading the Tamil of a couplet aloud with the real espeak-ng program."""

from __future__ import annotations

import os
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.personas import ReadAloudError, read_aloud, speech, stream_espeak
from assistant.personas.speech import OUTPUT_RATE

KURAL_1_TAMIL = "அகர முதல எழுத்தெல்லாம் ஆதி\nபகவன் முதற்றே உலகு."


def _reference_seconds(text: str, tmp_path: Path) -> float:
    """How long espeak-ng's own WAV file of ``text`` lasts."""
    path = tmp_path / "reference.wav"
    subprocess.run(["espeak-ng", "-v", "ta", "-b", "1", "-w", str(path), text], check=True)
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


async def test_tamil_is_spoken_as_24khz_pcm_of_the_right_length(tmp_path: Path) -> None:
    pcm = await read_aloud(KURAL_1_TAMIL, "ta")
    assert len(pcm) % 2 == 0
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    seconds = len(samples) / OUTPUT_RATE
    assert seconds == pytest.approx(_reference_seconds(KURAL_1_TAMIL, tmp_path), rel=0.01)
    assert seconds > 2.0  # two lines of verse, not a beep
    frames = samples[: len(samples) // 480 * 480].reshape(-1, 480)  # 20 ms frames
    voiced = np.sqrt((frames**2).mean(axis=1)) > 500
    assert voiced.mean() > 0.3  # speech, not silence or a click


async def test_audio_streams_in_chunks_and_closing_early_stops_the_program() -> None:
    long_text = " ".join([KURAL_1_TAMIL] * 6)
    stream = stream_espeak(long_text, "ta")
    first = await anext(stream)
    assert first and len(first) % 2 == 0
    await stream.aclose()
    assert _espeak_children() == []


def _espeak_children() -> list[str]:
    """Process ids of espeak-ng programs this test process started and that still exist."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split()
        except OSError:
            continue
        if fields[1] == "(espeak-ng)" and int(fields[3]) == os.getpid():
            children.append(fields[0])
    return children


async def test_errors_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ReadAloudError, match=r"voice 'xx-nothing'.*does not exist"):
        await read_aloud("vanakkam", "xx-nothing")
    with pytest.raises(ReadAloudError, match="nothing to read"):
        await read_aloud("   ")
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(ReadAloudError, match="apt-get install espeak-ng"):
        await read_aloud(KURAL_1_TAMIL)
