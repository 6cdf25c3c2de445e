"""Hands-free talk: the microphone reaches the server only after the wake word.

``WakeGate`` is plain code driven by the app with the time passed in, so
tests run it on a virtual clock. Two states:

- ``asleep``: every microphone block goes to the local detector and nowhere
  else; nothing leaves the machine.
- ``awake``: the word was heard; blocks stream to the server as in an
  ordinary session, from the block after the one in which the word ended
  (the word itself is not sent: the recogniser would otherwise write it
  into the request).

Back to sleep after a stretch with nothing going on, the rule the mature
assistants follow (Alexa and Google both wait about eight seconds for a
command after the word, and keep listening about five seconds after a reply
for a follow-up without the word): ``COMMAND_WINDOW_S`` after the word for
the user to begin, then ``FOLLOW_UP_S`` after the last sign of the
conversation going on: the user's voice, a server message of the turn, or
reply audio still playing. So the whole exchange, however long the reply,
stays awake, and a follow-up question needs no second wake word. When it
falls asleep the app sends ``audioStreamEnd``, which closes any turn the
server still has open.
"""

from __future__ import annotations

from enum import Enum

from audio.wakeword import WakeWordDetector

COMMAND_WINDOW_S = 8.0  # after the wake word: time to start speaking
FOLLOW_UP_S = 5.0  # after the last voice, server message or reply audio: time for a follow-up


class WakeState(Enum):
    ASLEEP = "asleep"
    AWAKE = "awake"


class WakeGate:
    """Decides, block by block, whether the microphone goes to the server."""

    def __init__(
        self,
        detector: WakeWordDetector,
        command_window_s: float = COMMAND_WINDOW_S,
        follow_up_s: float = FOLLOW_UP_S,
    ) -> None:
        self.detector = detector
        self.command_window_s = command_window_s
        self.follow_up_s = follow_up_s
        self.state = WakeState.ASLEEP
        self.wakes = 0
        self._awake_until = 0.0

    @property
    def awake(self) -> bool:
        return self.state is WakeState.AWAKE

    def audio(self, pcm: bytes, voiced: bool, now: float) -> bool:
        """One microphone block: True when it is to be sent to the server."""
        if self.awake:
            if voiced:
                self.activity(now)
            return True
        if self.detector.detect(pcm):
            self.state = WakeState.AWAKE
            self.wakes += 1
            self._awake_until = now + self.command_window_s
        return False

    def activity(self, now: float) -> None:
        """The conversation goes on (the user's voice, the server's turn, reply audio playing)."""
        if self.awake:
            self._awake_until = max(self._awake_until, now + self.follow_up_s)

    def tick(self, now: float) -> bool:
        """Called often; True when the gate has just fallen asleep (the app then ends the audio stream)."""
        if self.awake and now >= self._awake_until:
            self.state = WakeState.ASLEEP
            self.detector.reset()
            return True
        return False

    def seconds_left(self, now: float) -> float:
        """How long it stays awake if nothing more happens (0 asleep)."""
        return max(0.0, self._awake_until - now) if self.awake else 0.0
