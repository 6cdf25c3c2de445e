"""Sentence splitting for streaming speech, speakable text, pronouns said back."""

from __future__ import annotations

import pytest

from assistant.backends.local.text import SentenceSplitter, second_person, speakable

REPLY = "Sure, here's one. Dr. Smith paid 3.50 for e.g. apples! Then, after a long and winding walk, he went home."


def pieces_of(text: str, step: int) -> list[str]:
    splitter = SentenceSplitter()
    pieces: list[str] = []
    for start in range(0, len(text), step):
        pieces += splitter.feed(text[start : start + step])
    return pieces + splitter.flush()


def test_first_clause_goes_early_then_whole_sentences() -> None:
    pieces = pieces_of(REPLY, len(REPLY))
    assert pieces == [
        "Sure,",
        " here's one.",
        " Dr. Smith paid 3.50 for e.g. apples!",
        " Then, after a long and winding walk, he went home.",
    ]
    assert "".join(pieces) == REPLY


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_token_by_token_gives_the_same_pieces(step: int) -> None:
    assert pieces_of(REPLY, step) == pieces_of(REPLY, len(REPLY))


def test_an_opening_clause_is_cut_at_its_comma() -> None:
    assert pieces_of("One day, a knight rode out. The end.", 1)[0] == "One day,"
    # one word is a piece of its own: it is synthesised (and heard) while the rest is still on its way
    assert pieces_of("Sorry, I can't look that up offline.", 1) == ["Sorry,", " I can't look that up offline."]


def test_a_boundary_waits_for_the_next_character() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("It costs 3.") == []
    assert splitter.feed("5 euros. Next") == ["It costs 3.5 euros."]
    assert splitter.flush() == [" Next"]


def test_run_on_text_is_cut_at_a_word_boundary() -> None:
    splitter = SentenceSplitter()
    pieces = splitter.feed("word " * 80)
    assert pieces and all(len(piece) <= 240 for piece in pieces)
    assert not pieces[0].endswith("wor")


def test_speakable_drops_markdown() -> None:
    assert speakable("**Bold** and _soft_ [a link](http://x) `code`") == "Bold and soft code"


def test_second_person() -> None:
    assert second_person("my sister's birthday is in May") == "your sister's birthday is in May"
    assert second_person("I parked on level 3 and I'm late") == "you parked on level 3 and you're late"
    assert second_person("call Mum") == "call Mum"
    assert second_person("My keys are in my coat") == "Your keys are in your coat"


def test_a_first_piece_without_punctuation_ends_at_a_phrase() -> None:
    text = "The sky looks blue because of a process called Rayleigh scattering. It is pretty."
    assert pieces_of(text, 1)[0] == "The sky looks blue"
    assert "".join(pieces_of(text, 1)) == text
    long_run = "one two three four five six seven eight nine ten eleven"
    assert pieces_of(long_run, 1)[0] == "one two three four five"
    assert pieces_of("A timer is set for five minutes.", 1)[0] == "A timer is set"
    # only the first piece is cut that way
    assert pieces_of("Yes. The sky looks blue because of light.", 1) == [
        "Yes.",
        " The sky looks blue because of light.",
    ]
