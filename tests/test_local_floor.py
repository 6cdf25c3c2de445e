"""The local conversation's turn-taking rules, driven directly: no event loop, no models, no audio.

Each test feeds a ``Floor`` what happened (speech started at an audio time,
a turn ended, its final transcript, typed text, a late tool response, a
reply finished) and asserts the effects it returns, in order. ``Table``
plays ``LocalStream``'s part only where the floor asks to be told: it
reports a fresh handle for each turn and reply the effects create.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.backends.local.floor import (
    AddToHistory,
    CarryInto,
    CommitPrepared,
    ContinueTurn,
    DropPrepared,
    Effect,
    FinishTurn,
    Floor,
    Interrupt,
    KeepEnded,
    OpenTurn,
    ReadAhead,
    StartReply,
)
from assistant.protocol import Content, FunctionResponse, Part

SILENCE_S = 0.25  # the default silence that ends a turn (exact in binary: a boundary test means it)


@dataclass(eq=False)
class Turn:
    name: str


@dataclass(eq=False)
class Answer:
    name: str
    called_tools: bool = False


def said(text: str) -> Content:
    return Content(role="user", parts=[Part(text=text)])


def alarm(call_id: str = "timer-1") -> Content:
    response = FunctionResponse(id=call_id, name="set_timer", response={"fired": True})
    return Content(role="user", parts=[Part(function_response=response)])


class Table:
    """A ``Floor`` and the driver's reports: each turn or reply an effect creates gets a new handle."""

    def __init__(self, interrupts: bool = True) -> None:
        self.floor: Floor[Turn, Answer] = Floor(interrupts=interrupts, silence_s=SILENCE_S)
        self.turns: list[Turn] = []
        self.replies: list[Answer] = []

    def do(self, effects: list[Effect[Turn, Answer]]) -> list[Effect[Turn, Answer]]:
        for effect in effects:
            if isinstance(effect, OpenTurn | ContinueTurn):
                self.turns.append(Turn(f"turn {len(self.turns) + 1}"))
                self.floor.user_opened(self.turns[-1])
            elif isinstance(effect, StartReply):
                self.replies.append(Answer(f"reply {len(self.replies) + 1}"))
                self.floor.reply_started(self.replies[-1])
            elif isinstance(effect, KeepEnded):
                self.floor.keep_ended(effect.turn, effect.speech_end, said(effect.text))
        return effects

    def user_says(self, text: str, start: float = 0.0, end: float = 1.0) -> Turn:
        """A whole turn of speech the VAD ended at ``end``; its final transcript is ``text``."""
        self.do(self.floor.speech_started(start))
        turn = self.turns[-1]
        assert self.do(self.floor.turn_ended(end)) == [FinishTurn(turn, end)]
        self.do(self.floor.heard(turn, text, end))
        return turn


def test_speech_during_a_reply_barges_in_and_opens_a_turn() -> None:
    table = Table()
    table.user_says("Tell me a story.")
    story = table.floor.reply
    assert story is not None

    effects = table.do(table.floor.speech_started(5.0))

    assert effects == [Interrupt(story), OpenTurn(5.0)]
    assert table.floor.reply is None and table.floor.user is table.turns[-1]


def test_without_interruption_speech_and_typed_text_wait_for_the_reply() -> None:
    table = Table(interrupts=False)
    table.user_says("Tell me a story.")
    story = table.floor.reply

    assert table.do(table.floor.speech_started(5.0)) == [OpenTurn(5.0)]  # the reply goes on
    table.do(table.floor.turn_ended(6.0))
    assert table.do(table.floor.heard(table.turns[-1], "Go on.", 6.0)) == []  # it waits for the story
    assert table.do(table.floor.typed("And then?")) == []
    assert table.floor.reply is story

    assert table.do(table.floor.reply_finished(story)) == [StartReply((said("Go on."), said("And then?")))]


def test_typed_text_barges_in_on_a_reply() -> None:
    table = Table()
    table.user_says("Tell me a story.")
    story = table.floor.reply

    assert table.do(table.floor.typed("Stop.")) == [Interrupt(story), StartReply((said("Stop."),))]


def test_speech_soon_after_an_early_end_runs_on_from_that_turn() -> None:
    table = Table()
    first = table.user_says("Set a timer.", end=1.0)
    reply = table.floor.reply
    ended = table.floor.ended
    assert ended is not None and ended.turn is first and ended.reply is reply and ended.content == said("Set a timer.")

    effects = table.do(table.floor.speech_started(1.0 + SILENCE_S / 2))

    assert effects == [Interrupt(reply), ContinueTurn(ended, withdraw=True)]  # the reply only spoke
    assert table.floor.ended is None  # one run-on per ended turn


def test_a_run_on_leaves_a_reply_that_called_a_tool_in_the_history() -> None:
    table = Table()
    table.user_says("Set a timer.", end=1.0)
    reply = table.floor.reply
    assert reply is not None
    reply.called_tools = True  # the timer may be set already
    ended = table.floor.ended

    effects = table.do(table.floor.speech_started(1.0 + SILENCE_S / 2))

    assert effects == [Interrupt(reply), ContinueTurn(ended, withdraw=False)]


def test_speech_after_the_default_silence_is_a_new_turn() -> None:
    table = Table()
    table.user_says("Set a timer.", end=1.0)
    reply = table.floor.reply

    assert table.do(table.floor.speech_started(1.0 + SILENCE_S)) == [Interrupt(reply), OpenTurn(1.0 + SILENCE_S)]


def test_no_run_on_once_the_reply_to_that_turn_gave_way() -> None:
    table = Table()
    table.user_says("Set a timer.", end=1.0)
    first_reply = table.floor.reply
    table.do(table.floor.announce(alarm(), "INTERRUPT"))  # a timer's alarm cut the reply in
    assert table.floor.reply is not first_reply

    effects = table.do(table.floor.speech_started(1.1))

    assert effects == [Interrupt(table.replies[-1]), OpenTurn(1.1)]


def test_no_run_on_once_the_reply_to_that_turn_finished() -> None:
    table = Table()
    table.user_says("Hello.", end=1.0)
    reply = table.floor.reply
    assert reply is not None
    table.do(table.floor.reply_finished(reply))

    assert table.do(table.floor.speech_started(1.1)) == [OpenTurn(1.1)]


def test_no_run_on_when_speech_does_not_interrupt() -> None:
    table = Table(interrupts=False)
    table.user_says("Tell me a story.", end=1.0)

    assert table.do(table.floor.speech_started(1.1)) == [OpenTurn(1.1)]  # the story goes on; a turn of its own


def test_a_turn_the_client_ended_cannot_be_run_on_from() -> None:
    table = Table()
    table.do(table.floor.speech_started(0.0))
    turn = table.turns[-1]
    table.do(table.floor.turn_ended())  # activityEnd: no speech end in audio time

    effects = table.do(table.floor.heard(turn, "Set a timer.", None))

    assert effects == [StartReply((said("Set a timer."),))] and table.floor.ended is None


def test_a_matching_speculative_reply_is_committed() -> None:
    table = Table()
    table.do(table.floor.speech_started(0.0))
    turn = table.turns[-1]
    assert table.floor.may_prepare
    prepared = Answer("prepared in the pause")
    table.do(table.floor.turn_ended(1.0))

    effects = table.do(table.floor.heard(turn, "Hello.", 1.0, prepared=prepared, prepared_matches=True))

    assert effects == [CommitPrepared(prepared), KeepEnded(turn, 1.0, "Hello.")]
    assert table.floor.reply is prepared and table.replies == []


def test_a_speculative_reply_to_other_words_is_dropped_and_the_words_answered() -> None:
    table = Table()
    table.do(table.floor.speech_started(0.0))
    turn = table.turns[-1]
    prepared = Answer("prepared for 'Hello'")
    table.do(table.floor.turn_ended(1.0))

    effects = table.do(table.floor.heard(turn, "Hello there.", 1.0, prepared=prepared, prepared_matches=False))

    assert effects[:2] == [DropPrepared(prepared), StartReply((said("Hello there."),))]
    assert table.floor.reply is table.replies[-1]


def test_a_speculative_reply_is_dropped_when_a_reply_took_the_floor_meanwhile() -> None:
    table = Table(interrupts=False)
    table.user_says("Tell me a story.")
    story = table.floor.reply
    assert not table.floor.may_prepare  # a reply holds the floor: nothing to prepare for
    table.do(table.floor.speech_started(5.0))
    turn = table.turns[-1]
    prepared = Answer("prepared anyway")
    table.do(table.floor.turn_ended(6.0))

    effects = table.do(table.floor.heard(turn, "Go on.", 6.0, prepared=prepared, prepared_matches=True))

    assert effects == [DropPrepared(prepared)] and table.floor.reply is story


def test_an_announcement_waits_while_the_user_speaks_then_goes_with_the_turn() -> None:
    table = Table()
    table.do(table.floor.speech_started(0.0))
    turn = table.turns[-1]

    assert table.do(table.floor.announce(alarm(), "WHEN_IDLE")) == []
    assert table.do(table.floor.announce(alarm("timer-2"), "INTERRUPT")) == []  # never interrupts the user
    table.do(table.floor.turn_ended(1.0))
    effects = table.do(table.floor.heard(turn, "What was that?", 1.0))

    assert effects[0] == StartReply((alarm(), alarm("timer-2"), said("What was that?")))


def test_an_idle_announcement_waits_for_the_reply_to_finish() -> None:
    table = Table()
    table.user_says("Set a timer.")
    reply = table.floor.reply
    assert reply is not None

    assert table.do(table.floor.announce(alarm(), "WHEN_IDLE")) == []
    assert table.do(table.floor.reply_finished(Answer("a stale reply"))) == []
    assert table.do(table.floor.reply_finished(reply)) == [StartReply((alarm(),))]


def test_a_reply_over_with_nothing_waiting_lets_the_dialogue_read_ahead() -> None:
    table = Table()
    table.user_says("Hello.")
    reply = table.floor.reply
    assert reply is not None

    assert table.do(table.floor.reply_finished(reply)) == [ReadAhead()]


def test_no_read_ahead_while_the_user_speaks() -> None:
    table = Table(interrupts=False)
    table.user_says("Tell me a story.")
    story = table.floor.reply
    assert story is not None
    table.do(table.floor.speech_started(5.0))  # the user speaks over the story, which goes on

    assert table.do(table.floor.reply_finished(story)) == []


def test_an_interrupt_announcement_cuts_a_reply_in() -> None:
    table = Table()
    table.user_says("Tell me a story.")
    story = table.floor.reply

    assert table.do(table.floor.announce(alarm(), "INTERRUPT")) == [Interrupt(story), StartReply((alarm(),))]


def test_an_interrupt_announcement_spares_a_reply_the_user_speaks_over() -> None:
    table = Table(interrupts=False)
    table.user_says("Tell me a story.")
    story = table.floor.reply
    table.do(table.floor.speech_started(5.0))  # the user speaks over the story, which goes on

    assert table.do(table.floor.announce(alarm(), "INTERRUPT")) == []
    assert table.floor.reply is story


def test_a_silent_announcement_only_joins_the_history() -> None:
    table = Table()
    assert table.do(table.floor.announce(alarm(), "SILENT")) == [AddToHistory((alarm(),))]
    assert not table.floor.waiting and table.floor.reply is None


def test_a_noise_that_held_the_floor_lets_what_waited_go() -> None:
    table = Table()
    table.do(table.floor.speech_started(0.0))
    noise = table.turns[-1]
    table.do(table.floor.announce(alarm(), "WHEN_IDLE"))
    table.do(table.floor.turn_ended(1.0))
    prepared = Answer("prepared for nothing")

    assert table.do(table.floor.heard(noise, "", 1.0, prepared=prepared)) == [
        DropPrepared(prepared),
        StartReply((alarm(),)),
    ]


def test_an_unsure_transcript_is_answered_by_asking_again_once() -> None:
    table = Table()
    table.do(table.floor.speech_started(0.0))
    turn = table.turns[-1]
    table.do(table.floor.turn_ended(1.0))

    effects = table.do(table.floor.heard(turn, "Sat a tamer.", 1.0, unsure=True))

    assert effects == [StartReply((said("Sat a tamer."),), ask_again=True)]
    asking = table.floor.reply
    assert table.do(table.floor.typed("Set a timer.")) == [
        Interrupt(asking),
        StartReply((said("Set a timer."),), ask_again=False),
    ]


def test_a_turn_finished_after_the_user_went_on_leads_the_new_turn() -> None:
    table = Table()
    table.do(table.floor.speech_started(0.0))
    first = table.turns[-1]
    table.do(table.floor.turn_ended(1.0))
    table.do(table.floor.speech_started(1.1))  # before the first turn's final transcript is in
    second = table.turns[-1]
    prepared = Answer("prepared for half")

    effects = table.do(table.floor.heard(first, "Set a timer", 1.0, prepared=prepared, prepared_matches=True))

    assert effects == [CarryInto(second, "Set a timer "), DropPrepared(prepared)]
    assert table.floor.reply is None and table.floor.user is second


def test_a_complete_client_turn_answers_what_the_user_said_so_far() -> None:
    table = Table()
    table.do(table.floor.speech_started(0.0))
    speaking = table.turns[-1]

    assert table.do(table.floor.client_turns([])) == [FinishTurn(speaking, None)]
    assert table.do(table.floor.heard(speaking, "Hello.", None)) == [StartReply((said("Hello."),))]


def test_an_empty_complete_client_turn_asks_for_a_reply_to_the_history() -> None:
    table = Table()
    table.user_says("Hello.")
    reply = table.floor.reply

    assert table.do(table.floor.client_turns([])) == [Interrupt(reply), StartReply(())]
    assert table.do(table.floor.client_turns([said("Hi.")]))[-1] == StartReply((said("Hi."),))


def test_a_closed_floor_starts_nothing() -> None:
    table = Table()
    table.floor.close()

    assert table.do(table.floor.typed("Hello?")) == [] and not table.floor.may_prepare
