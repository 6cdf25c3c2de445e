"""Local agreement: partial transcripts only ever add words; the final sends the rest."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.backends.local.asr import WhisperRecognizer, drop_repeats, normalise_text, split_words
from assistant.backends.local.transcript import (
    ASK_AGAIN,
    ASK_AGAIN_BELOW,
    MAX_VOCABULARY,
    StreamingTranscript,
    recogniser_prompt,
    reply_prompt,
    vocabulary_prompt,
    words_after,
)
from assistant.backends.local.tts import EspeakVoice
from assistant.bench.speech import spoken_prompt


def test_fragments_add_agreed_words_and_join_to_the_final_text() -> None:
    transcript = StreamingTranscript()
    fragments = []
    # successive decodes of a growing window, each after the committed prefix (as Whisper returns them)
    for hypothesis in [" What's the way?", " What's 12 times?", " 12 times seven?", " seven and can you"]:
        fragment = transcript.agree(hypothesis)
        if fragment:
            fragments.append(fragment)
        assert hypothesis.startswith(" ")
    assert fragments == ["What's", " 12 times", " seven"]
    assert transcript.prefix == "What's 12 times seven"
    fragments.append(transcript.finish(" and can you also tell me a story?"))
    assert "".join(fragments) == "What's 12 times seven and can you also tell me a story?"
    assert transcript.text == "".join(fragments)


def test_the_last_word_waits_even_when_two_decodes_agree() -> None:
    transcript = StreamingTranscript()
    assert transcript.agree(" set a timer for five") == ""
    assert transcript.agree(" set a timer for five") == "Set a timer for"  # "five" may yet become "fifty"
    assert transcript.finish(" fifty minutes.") == " fifty minutes."


def test_case_and_punctuation_do_not_block_agreement() -> None:
    transcript = StreamingTranscript()
    transcript.agree(" Remember, that my")
    assert transcript.agree(" remember that my sister") == "Remember that my"  # the newer decode's words


def test_a_trim_moves_committed_words_to_the_context() -> None:
    transcript = StreamingTranscript()
    transcript.agree(" one two three four")
    transcript.agree(" one two three four five")
    transcript.trim(2)
    assert transcript.context == "One two"
    assert transcript.prefix == "three four"
    assert transcript.text == "One two three four"


def test_repeats_past_the_audio_are_dropped() -> None:
    assert drop_repeats(" What time is it? What time is it? What time") == " What time is it?"
    prefix = "The quick brown fox."
    assert drop_repeats(" and the lazy dog. The quick brown fox.", prefix=prefix) == " and the lazy dog."
    assert drop_repeats(" Yes. Yes.") == " Yes. Yes."  # too short to call a repeat
    assert drop_repeats(" Yes. Yes. Yes.") == " Yes."  # a loop
    assert drop_repeats(" What's 12 times 7? 7? 7? 7?") == " What's 12 times 7?"  # it fed the next prompt
    assert drop_repeats(" Is it 7? 7 or 8?") == " Is it 7? 7 or 8?"
    assert drop_repeats(" Set a timer for five minutes. Set a timer for") == " Set a timer for five minutes."
    # The sentence said twice may have begun in the prefix the decoder was forced to continue.
    assert drop_repeats(" Tamil. Read it in Tamil.", prefix="Read it in") == " Tamil."
    assert drop_repeats(" Tamil. And then in English.", prefix="Read it in") == " Tamil. And then in English."
    # A prefix that covers the audio: the decoder says it again, its two sentences as one.
    prefix = "Set a timer for five minutes. And call it tea."
    assert drop_repeats(" Set a timer for five minutes and call it tea. Set", prefix=prefix) == ""
    assert drop_repeats(" It's for the five minutes.", prefix=prefix) == " It's for the five minutes."


def test_a_continuation_says_only_what_came_after_the_earlier_words() -> None:
    earlier = "Set a timer for five minutes."
    assert words_after(earlier, " Set a timer for five minutes and call it tea.") == " and call it tea."
    assert words_after("What time isn't", " What time is it in Tokyo?") == " is it in Tokyo?"  # reworded
    assert words_after("Hello there.", " Good morning.") == " Good morning."  # nothing shared


def test_words_keep_their_spaces() -> None:
    assert split_words(" What time is it?") == [" What", " time", " is", " it?"]
    assert normalise_text("It's 3.42 PM!") == "it's 342 pm"


def test_what_was_said_before_the_turn_prompts_the_decoder_but_is_not_the_users() -> None:
    transcript = StreamingTranscript(prompt="I can read it in Tamil if you like.")
    assert transcript.context == "I can read it in Tamil if you like."
    transcript.finish(" Please read it in Tamil.")
    transcript.trim(2)  # "Please read" moves out of the window with its audio
    assert transcript.context == "I can read it in Tamil if you like. Please read"
    assert transcript.text == "Please read it in Tamil."  # the prompt is never part of what the user said


def test_asking_again_does_not_prompt_the_recogniser() -> None:
    assert ASK_AGAIN.endswith("?") and reply_prompt(ASK_AGAIN) == ""  # the user says the request again


def test_the_vocabulary_is_the_names_the_user_said_newest_last() -> None:
    said = ["Remember that my sister's name is Priya.", "Hello. My brother Arjun is in Paris. I'm fine."]
    assert vocabulary_prompt(said) == "Priya, Arjun, Paris."
    assert vocabulary_prompt(["What time is it?", "I said Priya. Priya is my sister."]) == "Priya."
    assert vocabulary_prompt(["what time is it", "I'm here. Where am I?"]) == ""
    many = [f"I met {name} today." for name in ("Ann", "Bob", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal") * 2]
    names = vocabulary_prompt([*many, "I met Ivy and Jo and Kim and Lee and Max."]).removesuffix(".").split(", ")
    assert len(names) == MAX_VOCABULARY and names[-1] == "Max" and "Ann" not in names


def test_the_recogniser_prompt_is_the_vocabulary_then_an_inviting_reply() -> None:
    assert recogniser_prompt("Priya.", "7 times 8 is 56.") == "Priya."
    assert recogniser_prompt("Priya.", "For how long?") == "Priya. For how long?"
    assert recogniser_prompt("", "For how long?") == "For how long?"


def test_a_transcript_is_as_sure_as_the_decodes_that_made_it() -> None:
    transcript = StreamingTranscript()
    assert transcript.confidence is None and not transcript.unsure
    transcript.agree(" What's the", -0.2)
    transcript.agree(" What's twelve times", -0.4)  # commits "What's": its decode counts
    transcript.agree(" What's twelve times", -3.0)  # a decode that commits nothing does not count
    transcript.finish(" twelve times seven?", -0.6)
    assert transcript.confidence == pytest.approx(-0.5) and not transcript.unsure
    unsure = StreamingTranscript()
    unsure.finish(" At a time or.", ASK_AGAIN_BELOW - 0.1)
    assert unsure.unsure
    assert not StreamingTranscript().unsure  # nothing heard is a noise, not something to ask again


@pytest.mark.parametrize(
    ("reply", "prompt"),
    [
        ("7 times 8 is 56.", ""),  # a statement pulls the next request towards itself: no prompt
        ("Sorry, I can't look that up offline; with a bigger model (--llm-url) or Gemini I could.", ""),
        ("For how long should I set the timer?", "For how long should I set the timer?"),
        ("Kural 305. I can read it in Tamil if you like.", "Kural 305. I can read it in Tamil if you like."),
    ],
)
def test_only_a_reply_that_invites_an_answer_prompts_the_recogniser(reply: str, prompt: str) -> None:
    assert reply_prompt(reply) == prompt


@pytest.mark.slow
def test_a_new_request_after_a_sum_is_not_heard_as_the_sum() -> None:
    """The issue's "7 times 4. 5 seconds": tiny.en, espeak-ng, after the reply "7 times 8 is 56."."""
    recognizer = WhisperRecognizer()
    said = "set a timer for five seconds"
    audio = np.frombuffer(spoken_prompt(said, EspeakVoice()), dtype="<i2").astype(np.float32) / 32768
    heard = recognizer.transcribe(audio, "", StreamingTranscript(prompt=reply_prompt("7 times 8 is 56.")).context)
    assert "timer" in normalise_text(heard), heard
    tamil = np.frombuffer(spoken_prompt("read it in Tamil", EspeakVoice()), dtype="<i2").astype(np.float32) / 32768
    offer = reply_prompt("Kural 305. I can read it in Tamil if you like.")
    assert "tamil" in normalise_text(recognizer.transcribe(tamil, "", offer))
