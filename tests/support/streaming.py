"""A turn through streaming recognition, as the local session's loop runs it, without the session."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from assistant.backends.local.asr import Recognizer
from assistant.backends.local.transcript import SpeechWindow, StreamingTranscript, trim_window


@dataclass
class StreamedTurn:
    """What one turn left: committed fragments, the transcript and window, and each call's seconds."""

    fragments: list[str] = field(default_factory=list)
    transcript: StreamingTranscript = field(default_factory=StreamingTranscript)
    window: SpeechWindow = field(default_factory=SpeechWindow)
    longest_window_s: float = 0.0
    call_seconds: list[float] = field(default_factory=list)


def stream_turn(recognizer: Recognizer, audio: np.ndarray, chunk: int) -> StreamedTurn:
    """``audio`` arriving ``chunk`` samples at a time: decode, agree, trim; a final decode at the end.

    Committed fragments are never revised, so they must add up to the final
    transcript, whatever decoded them.
    """
    turn = StreamedTurn()
    window, transcript = turn.window, turn.transcript

    def decode(settle: Callable[[str], str]) -> None:
        started = time.perf_counter()
        hypothesis = recognizer.transcribe(window.audio(), transcript.prefix, transcript.context)
        turn.call_seconds.append(time.perf_counter() - started)
        turn.fragments.append(settle(hypothesis))

    for start in range(0, len(audio), chunk):
        window.append(audio[start : start + chunk])
        decode(transcript.agree)
        trim_window(recognizer, window, transcript)
        turn.longest_window_s = max(turn.longest_window_s, window.duration_s)
    decode(transcript.finish)
    return turn
