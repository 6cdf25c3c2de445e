"""Turn-taking on an audio timeline: deterministic, no sleeps, no model."""

from __future__ import annotations

import pytest

from assistant.backends.local.turns import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnEvent,
    TurnSettings,
)
from assistant.protocol.models import AutomaticActivityDetection, RealtimeInputConfig

FRAME = 0.032


def run(detector: TurnDetector, probabilities: list[float], start: float = 0.0) -> list[tuple[float, TurnEvent]]:
    """Feed one probability per 32 ms frame; the events with the time of the frame that caused them."""
    events = []
    for index, probability in enumerate(probabilities):
        at = start + index * FRAME
        events += [(round(at, 3), event) for event in detector.push(probability, at, FRAME)]
    return events


def speech(seconds: float, probability: float = 0.9) -> list[float]:
    return [probability] * round(seconds / FRAME)


def silence(seconds: float) -> list[float]:
    return [0.02] * round(seconds / FRAME)


def test_a_question_then_silence_ends_the_turn_after_the_silence_duration() -> None:
    detector = TurnDetector(TurnSettings(silence_s=0.5))
    events = run(detector, silence(0.32) + speech(1.0) + silence(0.8))
    kinds = [type(event) for _, event in events]
    assert kinds == [SpeechStarted, SpeechPaused, TurnEnded]
    started, paused, ended = (event for _, event in events)
    assert isinstance(started, SpeechStarted) and started.at == pytest.approx(0.32)
    assert isinstance(paused, SpeechPaused) and paused.at == pytest.approx(1.312)
    assert isinstance(ended, TurnEnded)
    assert ended.speech_end == pytest.approx(1.312)
    assert ended.at - ended.speech_end == pytest.approx(0.512)  # the first frame boundary past 500 ms


def test_a_short_pause_resumes_without_ending_the_turn() -> None:
    detector = TurnDetector(TurnSettings(silence_s=0.5))
    events = run(detector, speech(0.6) + silence(0.3) + speech(0.6) + silence(0.6))
    assert [type(event) for _, event in events] == [SpeechStarted, SpeechPaused, SpeechResumed, SpeechPaused, TurnEnded]


def test_a_click_shorter_than_the_start_duration_is_not_speech() -> None:
    detector = TurnDetector(TurnSettings(start_speech_s=0.1))
    assert run(detector, silence(0.2) + speech(0.064) + silence(1.0)) == []
    assert [type(e) for _, e in run(detector, speech(0.128))] == [SpeechStarted]


def test_hysteresis_keeps_speech_going_between_the_two_thresholds() -> None:
    detector = TurnDetector(TurnSettings(start_threshold=0.5, end_threshold=0.35, silence_s=0.2))
    events = run(detector, speech(0.3) + speech(0.5, probability=0.4) + silence(0.3))
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechPaused, TurnEnded]
    paused = events[1][1]
    assert isinstance(paused, SpeechPaused) and paused.at == pytest.approx(0.8)  # after 9 + 16 frames


def test_a_stream_end_finishes_the_turn_at_once() -> None:
    detector = TurnDetector(TurnSettings(silence_s=2.0))
    run(detector, speech(0.5))
    assert detector.user_active
    assert detector.flush(0.5) == [TurnEnded(0.5, 0.5)]
    assert not detector.user_active
    assert detector.flush(0.6) == []


def test_settings_follow_realtime_input_config() -> None:
    config = RealtimeInputConfig(
        automatic_activity_detection=AutomaticActivityDetection(
            start_of_speech_sensitivity="START_SENSITIVITY_LOW",
            end_of_speech_sensitivity="END_SENSITIVITY_LOW",
            prefix_padding_ms=300,
            silence_duration_ms=800,
        ),
        activity_handling="NO_INTERRUPTION",
    )
    settings = TurnSettings.from_config(config)
    assert settings.automatic and not settings.interrupts
    assert (settings.start_threshold, settings.end_threshold) == (0.7, 0.15)
    assert (settings.start_speech_s, settings.silence_s) == (0.3, 0.8)

    defaults = TurnSettings.from_config(None, default_silence_ms=400)
    assert defaults.automatic and defaults.interrupts and defaults.silence_s == 0.4

    manual = TurnSettings.from_config(
        RealtimeInputConfig(automatic_activity_detection=AutomaticActivityDetection(disabled=True))
    )
    assert not manual.automatic


def test_low_start_sensitivity_needs_more_speech_than_high() -> None:
    high = TurnDetector(TurnSettings.from_config(None))
    low_config = RealtimeInputConfig(
        automatic_activity_detection=AutomaticActivityDetection(start_of_speech_sensitivity="START_SENSITIVITY_LOW")
    )
    low = TurnDetector(TurnSettings.from_config(low_config))
    burst = speech(0.128, probability=0.8)
    assert [type(e) for _, e in run(high, burst)] == [SpeechStarted]
    assert run(low, burst) == []


def test_a_complete_request_ends_the_turn_after_the_shorter_silence() -> None:
    detector = TurnDetector(TurnSettings(silence_s=0.5, eager_silence_s=0.3))
    run(detector, speech(1.0))
    events = run(detector, silence(0.128), start=1.024)
    assert [type(e) for _, e in events] == [SpeechPaused]
    detector.sounds_complete()  # the speculative transcript was a whole question
    [(_, ended)] = run(detector, silence(0.4), start=1.152)
    assert isinstance(ended, TurnEnded) and ended.at - ended.speech_end == pytest.approx(0.32)


def test_the_hint_lapses_when_the_user_goes_on() -> None:
    detector = TurnDetector(TurnSettings(silence_s=0.5, eager_silence_s=0.3))
    run(detector, speech(1.0) + silence(0.128))
    detector.sounds_complete()
    run(detector, speech(0.3), start=1.152)
    events = run(detector, silence(0.64), start=1.44)
    [ended] = [e for _, e in events if isinstance(e, TurnEnded)]
    assert ended.at - ended.speech_end == pytest.approx(0.512)


def test_the_shorter_silence_is_only_for_clients_that_set_none() -> None:
    assert TurnSettings.from_config(None, eager_ms=300).eager_silence_s == 0.3
    assert TurnSettings.from_config(None).eager_silence_s is None
    explicit = RealtimeInputConfig(automatic_activity_detection=AutomaticActivityDetection(silence_duration_ms=700))
    assert TurnSettings.from_config(explicit, eager_ms=300).eager_silence_s is None


def test_words_and_voice_agreeing_end_the_turn_after_the_shortest_silence() -> None:
    settings = TurnSettings(silence_s=0.5, eager_silence_s=0.3, agreed_silence_s=0.15)
    detector = TurnDetector(settings)
    run(detector, speech(1.0))
    assert [type(e) for _, e in run(detector, silence(0.064), start=1.024)] == [SpeechPaused]
    detector.sounds_complete(voice_agrees=True)
    [(_, ended)] = run(detector, silence(0.4), start=1.088)
    assert isinstance(ended, TurnEnded) and ended.at - ended.speech_end == pytest.approx(0.16)

    # the words alone: the eager silence; the voice's verdict lapses with the turn
    detector = TurnDetector(settings)
    run(detector, speech(1.0) + silence(0.064))
    detector.sounds_complete(voice_agrees=False)
    [(_, ended)] = run(detector, silence(0.4), start=1.088)
    assert isinstance(ended, TurnEnded) and ended.at - ended.speech_end == pytest.approx(0.32)


def test_the_voice_verdict_lapses_when_the_user_goes_on() -> None:
    detector = TurnDetector(TurnSettings(silence_s=0.5, eager_silence_s=0.3, agreed_silence_s=0.15))
    run(detector, speech(1.0) + silence(0.064))
    detector.sounds_complete(voice_agrees=True)
    run(detector, speech(0.3), start=1.088)
    events = run(detector, silence(0.64), start=1.376)
    [ended] = [e for _, e in events if isinstance(e, TurnEnded)]
    assert ended.at - ended.speech_end == pytest.approx(0.512)


def test_the_agreed_silence_needs_the_eager_one_and_a_client_that_set_none() -> None:
    assert TurnSettings.from_config(None, eager_ms=300, agreed_ms=150).agreed_silence_s == 0.15
    assert TurnSettings.from_config(None, eager_ms=0, agreed_ms=150).agreed_silence_s is None
    explicit = RealtimeInputConfig(automatic_activity_detection=AutomaticActivityDetection(silence_duration_ms=700))
    assert TurnSettings.from_config(explicit, eager_ms=300, agreed_ms=150).agreed_silence_s is None
