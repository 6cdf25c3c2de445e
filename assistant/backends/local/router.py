"""Routing everyday requests to the built-in tools by meaning.

The offline chat model (SmolLM2-135M) picks the wrong tool more often than
not; a sentence-embedding nearest-neighbour router over a few example
phrases per intent picked the right one for 12 of 12 unseen phrasings here
(../shared/docs/offline-models.md). Each intent names the tool it calls and
a ``variant`` that decides how the answer is phrased (the same
``get_current_time`` answers "what time is it" and "what's the date").

"Chat" examples are intents too: a request is routed to a tool only when it
is closer to that tool's examples than to small talk by a margin, and only
when the session declared the tool (by name), so a client without timers
never gets a ``set_timer`` call.

Sessions that consult their knowledge first (a persona such as
Thiruvalluvar, whose instruction says to call ``search_knowledge`` for every
life question) route differently: everything that is neither another tool's
request nor small talk is a question for the knowledge. Life questions are
too varied for a few examples to reach the tool threshold (measured: most
score 0.25-0.5 against any example), so the test is relative. A request goes
to the knowledge when it is closer to the "counsel" examples than to small
talk, or when it is a sentence of some length that small talk does not
claim; short acknowledgements ("okay", "no thanks") stay conversation. The
counsel examples are inert in every other session, so the default
assistant's small talk never becomes a search.

Some intents call no tool (``self_answered``): questions about the assistant
itself ("who are you", "what can you do"), asks it cannot serve offline
("what's the weather like") and questions of general knowledge, which a
capable chat model answers and the small one invents. The dialogue answers them from what the session
really has, in every session, instead of leaving them to the small chat
model, which invents both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from assistant.backends.local import cues
from assistant.embeddings import Embedder

CHAT = "chat"
FACTS = "facts"  # questions of general knowledge: the small offline model invents the answers
COUNSEL = "counsel"
ROUTE_THRESHOLD = 0.5  # a tool needs at least this similarity to its nearest example
CHAT_MARGIN = 0.04  # and must beat the nearest small-talk example by this much
# Consulting sessions: small talk claims a request only with at least this similarity (greetings,
# thanks and "tell me a joke" score 0.55-1.0; life questions score below 0.35 against small talk)...
SMALL_TALK_SCORE = 0.5
# ...and a request of this many words that small talk does not claim is a question for the knowledge.
CONSULT_MIN_WORDS = 5
# A general question is one for facts unless it is closer to life counsel by more than this (measured: life
# questions without "I" or "my" score 0.11-0.45 nearer the counsel examples than the facts ones).
FACTS_MARGIN = 0.08


@dataclass(frozen=True, slots=True)
class Intent:
    """Something a user asks for: the tool that answers it (or chat) and example phrasings."""

    name: str
    tool: str | None
    examples: tuple[str, ...]
    consulting_only: bool = False  # applies only to sessions that consult their knowledge first
    self_answered: bool = False  # the dialogue answers it itself, without a tool, in every session


INTENTS: tuple[Intent, ...] = (
    Intent(
        "time",
        "get_current_time",
        (
            "what time is it",
            "what's the time",
            "tell me the time",
            "do you know what time it is",
            "what time is it in Tokyo",
            "current time please",
            "how late is it",
            "got the time",
            "can you tell me what time it is",
            "i want to know the time",
            "what time is it there in sydney",
            "current local time in berlin",
        ),
    ),
    Intent(
        "date",
        "get_current_time",
        (
            "what's the date today",
            "what day is it",
            "what is today's date",
            "which day of the week is it",
            "what's the date",
            "what month is it",
            "what date is it today",
            "tell me the date please",
            "what day of the month is it",
            "is it tuesday today",
            "which year are we in",
        ),
    ),
    Intent(
        "calculate",
        "calculate",
        (
            "what's twelve times seven",
            "what is 15 percent of 80",
            "calculate 45 divided by 9",
            "what's the square root of 144",
            "how much is 3 plus 4",
            "add 12 and 30",
            "what is 2 to the power of 10",
            "what's 100 minus 37",
        ),
    ),
    Intent(
        "timer",
        "set_timer",
        (
            "set a timer for five minutes",
            "start a ten minute timer",
            "timer for 30 seconds",
            "set a tea timer for 3 minutes",
            "count down two minutes",
            "set a timer",
            "wake me up in twenty minutes",
            "put on a timer for twelve minutes",
            "i need a five minute countdown",
            "can you start a timer for an hour",
            "please set a timer for 45 minutes",
            "time twenty minutes for me",
            "set the oven timer for 25 minutes",
            "timer ten minutes",
        ),
    ),
    Intent(
        "reminder",
        "set_reminder",
        (
            "remind me to call mum in ten minutes",
            "remind me in an hour to take the bread out",
            "set a reminder to check the oven in 15 minutes",
            "don't let me forget to water the plants at 5 pm",
            "remind me to buy milk",
            "remind me at 7 pm to lock the door",
            "in half an hour remind me to stretch",
            "can you remind me to water the plants tomorrow",
            "please set a reminder for 4 pm to call the dentist",
            "give me a reminder in two hours to leave",
            "nudge me in 20 minutes to check the stove",
            "make sure I don't forget to take the bins out at 8",
        ),
    ),
    Intent(
        "remember",
        "remember",
        (
            "remember that my sister's birthday is on the 3rd of May",
            "please remember I parked on level 3",
            "note that the wifi password is blue banana",
            "keep in mind that I'm allergic to peanuts",
            "don't forget that my dentist appointment is on Friday",
            "remember that my neighbour is called Tom",
            "can you remember that my passport expires in March",
            "please note that the boiler was serviced in June",
            "make a note that my niece likes dinosaurs",
            "save this: my seat is 14C",
            "memorize that my bank is on King Street",
            "i want you to remember my doctor is called doctor Lee",
            "store the fact that the meeting room is on floor two",
            "for the record, my favourite tea is earl grey",
        ),
    ),
    Intent(
        "recall",
        "recall",
        (
            "when is my sister's birthday",
            "what did I tell you about my car",
            "where did I park",
            "what's the wifi password",
            "do you remember what I said about the dentist",
            "what do you know about me",
            "am I allergic to anything",
            "what's my neighbour called",
            "when does my passport expire",
            "what did I ask you to remember",
            "where's my seat",
            "what's the name of my doctor",
            "do you remember my favourite tea",
            "what did I save earlier",
            "remind me where I put my glasses",
            "who did I say my neighbour was",
        ),
    ),
    Intent(
        "look",
        "describe_view",
        (
            "what am I holding",
            "what do you see",
            "what's in front of me",
            "read this to me",
            "can you see this",
            "describe what you see",
            "what does this say",
            "look at this",
            "what colour is the thing I'm holding",
            "what is this",
            "what am I looking at",
            "can you read the label",
            "what's written here",
            "read out the text in front of me",
            "describe my surroundings",
            "tell me what's on the screen",
            "what does the sign say",
            "check what's in front of the camera",
        ),
    ),
    Intent(
        "search",
        "search_knowledge",
        (
            "search my notes for the project deadline",
            "look up the refund policy in my documents",
            "what do my documents say about holidays",
            "find the meeting notes in my files",
            "check my notes about the budget",
            "look in my files for the invoice",
            "search the documents for the lease end date",
            "what do the notes say about the trip",
            "find the section on refunds in my documents",
            "is there anything in my documents about parking",
            "check the knowledge base for the wifi setup",
            "look up what the handbook says about sick leave",
        ),
    ),
    Intent(
        COUNSEL,
        "search_knowledge",
        (
            "what should I do when I lose my temper",
            "what should I do when someone insults me",
            "how can I be a good friend",
            "is honesty always the best policy",
            "how do I stop wasting my time",
            "what does the poet say about wealth",
            "what does the Kural teach about kindness",
            "how should I treat my parents",
            "I feel sad and lost",
            "how do I find peace of mind",
            "what makes a person truly great",
            "how should I spend my money wisely",
            "why should I be humble",
            "what is the right way to live",
            "how do I become a better person",
            "give me advice about love",
            "what wisdom is there about family life",
        ),
        consulting_only=True,
    ),
    Intent(
        "identity",
        None,
        (
            "who are you",
            "what is your name",
            "what are you",
            "tell me about yourself",
            "introduce yourself",
            "are you a robot",
        ),
        self_answered=True,
    ),
    Intent(
        "capabilities",
        None,
        (
            "what can you do",
            "help",
            "what are you able to do",
            "how can you help me",
            "what kind of things can I ask you",
            "what are your features",
            "what are you for",
            "what can I do with you",
            "how does this work",
            "what functions do you have",
            "i need help",
            "how can I use this assistant",
        ),
        self_answered=True,
    ),
    Intent(
        "weather",
        None,
        (
            "what's the weather like",
            "will it rain tomorrow",
            "what's the forecast for the weekend",
            "how hot is it outside",
            "do I need an umbrella today",
            "is it going to snow",
        ),
        self_answered=True,
    ),
    Intent(
        FACTS,
        None,
        (
            "what's the capital of France",
            "why is the sky blue",
            "how many days are in a year",
            "how far away is the moon",
            "who discovered penicillin",
            "when was the Eiffel Tower built",
            "how does electricity work",
            "what is the biggest animal in the world",
            "who was Albert Einstein",
            "explain how the internet works",
            "how deep is the ocean",
            "what language is spoken in Egypt",
            "who wrote Romeo and Juliet",
            "when did the first man walk on the moon",
            "what is gravity",
            "where is the Sahara desert",
            "tell me about the history of Japan",
            "how many people live in India",
        ),
        self_answered=True,
    ),
    Intent(
        CHAT,
        None,
        (
            "hello",
            "how are you",
            "thank you",
            "tell me a joke",
            "tell me a story about a dragon",
            "I'm feeling tired today",
            "good morning",
            "can you help me write a poem",
            "what do you think about music",
            "what's your favourite food",
            "what's your favourite animal",
            "do you have a favourite song",
            "do you like movies",
            "okay thanks",
            "hi",
            "bye for now",
            "let's talk",
            "that's funny",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: ``intent`` is None for conversation."""

    intent: Intent | None
    score: float
    chat_score: float


class ToolRouter:
    """Nearest-example routing over sentence embeddings; shared by all sessions (read-only)."""

    def __init__(self, embedder: Embedder, intents: tuple[Intent, ...] = INTENTS) -> None:
        self.embedder = embedder
        self.intents = intents
        self._owners: list[Intent] = [intent for intent in intents for _ in intent.examples]
        self._examples = embedder.embed([example for intent in intents for example in intent.examples])

    def route(
        self,
        text: str,
        declared: Collection[str],
        boosts: Mapping[str, float] | None = None,
        *,
        consulting: bool = False,
    ) -> Route:
        """The intent for ``text`` among tools in ``declared`` and self-answered ones (None: make conversation).

        ``boosts`` add to an intent's score when a deterministic cue backs it
        (an arithmetic expression parses out of the request, say): embeddings
        of "what's 9 plus 10" sit close to many things. ``consulting``: the
        session consults its knowledge first (see the module docstring).
        """
        [vector] = self.embedder.embed([text])
        scores = self._examples @ vector
        best: dict[str, tuple[float, Intent]] = {}
        for score, intent in zip(scores.tolist(), self._owners, strict=True):
            score += (boosts or {}).get(intent.name, 0.0)
            if score > best.get(intent.name, (-1.0, intent))[0]:
                best[intent.name] = (score, intent)
        chat_score = best[CHAT][0] if CHAT in best else -1.0
        # talk about the assistant itself is conversation too, neither knowledge nor facts
        talk_score = max(
            [chat_score, *(score for score, other in best.values() if other.self_answered and other.name != FACTS)]
        )
        candidates = [
            (score, intent)
            for score, intent in best.values()
            if (intent.self_answered or intent.tool in declared) and not intent.consulting_only
        ]
        nearest = max((pair for pair in best.values() if not pair[1].consulting_only), key=lambda pair: pair[0])
        if candidates:
            score, intent = max(candidates, key=lambda pair: pair[0])
            # the nearest intent must be this one: "what time is it" is not a timer because no clock is declared
            if score >= ROUTE_THRESHOLD and score >= chat_score + CHAT_MARGIN and intent is nearest[1]:
                return Route(intent, score, chat_score)
        counsel = best.get(COUNSEL)
        if consulting and counsel is not None and counsel[1].tool in declared:
            counsel_score, intent = counsel
            small_talk = talk_score >= SMALL_TALK_SCORE or len(text.split()) < CONSULT_MIN_WORDS
            if counsel_score > talk_score or not small_talk:
                return Route(intent, counsel_score, chat_score)
        facts = best.get(FACTS)
        if not consulting and facts is not None and cues.asks_about_the_world(text) and not boosts:
            # general questions are too varied for their examples to reach the threshold; the shape of the
            # question decides, unless small talk claims it or it is closer to life counsel than to facts
            counsel_score = best[COUNSEL][0] if COUNSEL in best else -1.0
            if talk_score < SMALL_TALK_SCORE and facts[0] >= counsel_score - FACTS_MARGIN:
                return Route(facts[1], facts[0], chat_score)
        top = max((score for score, _ in candidates), default=chat_score)
        return Route(None, top, chat_score)
