"""The jitter buffer between the network and the speaker, and the record of what was played."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from audio.alignment import EchoAligner, EchoLagTracker
from audio.pcm import FrameSplitter, WavFormatError, level_dbfs, read_wav, write_wav
from audio.playback import REFERENCE_LEAD_S, PlaybackBuffer, ReferenceTimeline


def pcm(samples: int, value: int = 1000) -> bytes:
    return np.full(samples, value, dtype=np.int16).tobytes()


def test_playback_waits_for_the_prebuffer_then_plays_in_order() -> None:
    buffer = PlaybackBuffer(24_000, prebuffer_ms=80)
    buffer.push(pcm(960, 1))  # 40 ms: not enough yet
    assert not buffer.read(480).any() and not buffer.audible
    buffer.push(pcm(960, 2))
    block = buffer.read(1440)
    assert list(block[:960]) == [1] * 960 and list(block[960:]) == [2] * 480
    assert buffer.audible and buffer.started_at is not None


def test_an_underrun_is_counted_and_playback_prebuffers_again() -> None:
    buffer = PlaybackBuffer(24_000, prebuffer_ms=80)
    buffer.push(pcm(1920))
    buffer.read(2400)  # asks for more than there is: underrun, padded with silence
    assert buffer.underruns == 1
    buffer.push(pcm(960))
    assert not buffer.read(480).any(), "waits for the prebuffer again"


def test_the_end_of_a_turn_plays_a_tail_shorter_than_the_prebuffer() -> None:
    buffer = PlaybackBuffer(24_000, prebuffer_ms=80)
    buffer.push(pcm(240))
    assert not buffer.read(240).any()
    buffer.end_of_turn()
    assert buffer.read(480)[:240].all() and buffer.underruns == 0
    assert buffer.idle is False and not buffer.read(480).any() and buffer.idle


def test_flush_drops_everything_at_once() -> None:
    buffer = PlaybackBuffer(48_000, source_rate=24_000, prebuffer_ms=20)
    buffer.push(pcm(24_000))  # one second, resampled to the device's 48 kHz
    assert buffer.read(960).any()
    dropped = buffer.flush()
    assert dropped == pytest.approx(0.98, abs=0.04)  # a second, less the 20 ms played and the filter's delay
    assert buffer.buffered_s == 0 and not buffer.read(960).any()


def test_the_reference_pairs_each_microphone_frame_with_what_was_playing() -> None:
    timeline = ReferenceTimeline(16_000)
    ramp = np.arange(1, 16_001, dtype=np.int16)
    timeline.write(np.zeros(1600, dtype=np.int16), play_time=9.9)  # silence first: placement follows the clock
    timeline.write(ramp[:8000], play_time=10.0)
    timeline.write(ramp[8000:], play_time=10.5 + 0.012)  # timestamp jitter does not break the stream
    frame = timeline.read(160, capture_time=10.25 - REFERENCE_LEAD_S)
    assert list(frame[:3]) == [4001, 4002, 4003]
    following = timeline.read(160, capture_time=10.26 - REFERENCE_LEAD_S + 0.007)
    assert following[0] == 4161, "reads continue unbroken despite jittery capture times"
    assert not timeline.read(160, capture_time=20.0).any(), "nothing was played then"


def test_the_aligner_moves_the_reference_back_when_the_echo_moves() -> None:
    rng = np.random.default_rng(3)
    played = (rng.standard_normal(16_000 * 6) * 3000).astype(np.int16)
    timeline = ReferenceTimeline(16_000, capacity_s=8.0)
    timeline.write(played, play_time=100.0)
    disturbed: list[bool] = []
    aligner = EchoAligner(timeline, EchoLagTracker(), on_disturbance=lambda: disturbed.append(True))
    for start in range(0, played.size - 16_000, 160):
        delay = 480 if start < 32_000 else 800  # the echo arrives 20 ms later after two seconds
        echo = np.concatenate([np.zeros(delay), played]).astype(np.int16)[start : start + 160] // 2
        aligner.reference_for(echo, 100.0 + start / 16_000 - REFERENCE_LEAD_S)
    assert aligner.expected_lag == 480 and aligner.moves == 1 and disturbed


def test_frames_are_cut_exactly() -> None:
    splitter = FrameSplitter(160)
    assert splitter.push(bytes(200)) == []
    frames = splitter.push(bytes(500))
    assert [len(f) for f in frames] == [320, 320] and splitter.push(bytes(260)) == [bytes(320)]


def test_wav_files_are_read_at_the_rate_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(44_100)
        wav.writeframes(np.tile(np.array([1000, 3000], dtype=np.int16), 44_100).tobytes())
    mono = np.frombuffer(read_wav(path, 16_000), dtype=np.int16)
    assert mono.size == pytest.approx(16_000, abs=2)
    assert abs(int(np.median(mono)) - 2000) <= 2, "channels are averaged"
    assert level_dbfs(bytes(320)) == -120.0
    write_wav(tmp_path / "out.wav", mono.tobytes(), 16_000)
    assert read_wav(tmp_path / "out.wav", 16_000) == mono.tobytes()


def test_a_wav_of_the_wrong_kind_says_how_to_convert_it(tmp_path: Path) -> None:
    path = tmp_path / "eight-bit.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(bytes(800))
    with pytest.raises(WavFormatError, match="8-bit samples; convert it with: sox"):
        read_wav(path, 16_000)
