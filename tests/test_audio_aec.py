"""Echo processing on a simulated laptop (real speech from espeak-ng), and its fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from audio import aec
from audio.aec import (
    FRAME_SAMPLES,
    EchoMode,
    EchoUnavailable,
    HalfDuplexGate,
    SpeexEchoCanceller,
    create_echo_processor,
)
from audio.alignment import EchoLagTracker, echo_lag
from audio.echo_bench import EchoFigures, EchoScene, default_scene, measure
from audio.speexdsp import SpeexUnavailable


@pytest.fixture(scope="module")
def scene() -> EchoScene:
    return default_scene()


@pytest.fixture(scope="module")
def product(scene: EchoScene) -> EchoFigures:
    figures = measure(SpeexEchoCanceller(), scene)
    print(figures.table_row("speex AEC + suppressor, gated until trusted"))
    return figures


def test_the_canceller_removes_the_echo_once_it_has_learnt_the_room(product: EchoFigures) -> None:
    assert product.erle_db > 22


def test_the_user_talking_over_the_reply_survives_and_is_heard(product: EchoFigures) -> None:
    assert product.double_talk_kept_db > -2, "the user's voice is not suppressed during double talk"
    assert product.double_talk_si_sdr_out_db > product.double_talk_si_sdr_in_db + 8, "and it comes out cleaner"
    assert product.near_alone_kept_db > -1
    assert product.barge_in_heard_ms is not None and product.barge_in_heard_ms < 200


def test_the_assistant_never_hears_itself_while_the_canceller_learns(scene: EchoScene, product: EchoFigures) -> None:
    ungated = measure(SpeexEchoCanceller(trusted_erle_db=None), scene)
    assert ungated.false_barge_ins > 0, "the first seconds' echo alone would sound like the user"
    assert product.false_barge_ins == 0


def test_the_gate_mutes_while_the_speaker_is_active_and_for_the_hangover() -> None:
    gate = HalfDuplexGate(hangover_ms=50)
    voice = np.full(FRAME_SAMPLES, 3000, dtype=np.int16)
    silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    assert np.array_equal(gate.process(voice, silence, speaker_active=False), voice)
    assert not gate.process(voice, voice, speaker_active=True).any()
    muted = [not gate.process(voice, silence, speaker_active=False).any() for _ in range(7)]
    assert muted == [True] * 4 + [False] * 3  # 50 ms: the active frame and four more


def test_without_speexdsp_auto_falls_back_to_the_gate_and_cancel_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(*args: object, **kwargs: object) -> None:
        raise SpeexUnavailable("libspeexdsp is not installed; install it with: sudo apt-get install libspeexdsp1")

    monkeypatch.setattr(aec, "SpeexEchoCanceller", missing)
    assert isinstance(create_echo_processor(EchoMode.AUTO), HalfDuplexGate)
    with pytest.raises(EchoUnavailable, match="apt-get install libspeexdsp1"):
        create_echo_processor(EchoMode.CANCEL)
    assert create_echo_processor(EchoMode.OFF) is None


def test_the_echo_lag_is_found_from_the_signals(scene: EchoScene) -> None:
    window = slice(16_000, 32_000)
    lag, confidence = echo_lag(scene.microphone[window], scene.reference[window], max_lag=4800)
    assert abs(lag - 704) <= 4  # the 40 ms delay plus the speaker high-pass filter's 64 samples
    assert confidence > 10
    tracker = EchoLagTracker()
    reports = [
        tracker.observe(scene.microphone[i : i + FRAME_SAMPLES], scene.reference[i : i + FRAME_SAMPLES])
        for i in range(0, 48_000, FRAME_SAMPLES)
    ]
    found = [lag for lag in reports if lag is not None]
    assert found and all(abs(lag - 704) <= 4 for lag in found)
