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
itself ("who are you", "what can you do") and asks it cannot serve offline
("what's the weather like"). The dialogue answers them from what the session
really has, in every session, instead of leaving them to the small chat
model, which invents both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from assistant.embeddings import Embedder

CHAT = "chat"
COUNSEL = "counsel"
ROUTE_THRESHOLD = 0.5  # a tool needs at least this similarity to its nearest example
CHAT_MARGIN = 0.04  # and must beat the nearest small-talk example by this much
# Consulting sessions: small talk claims a request only with at least this similarity (greetings,
# thanks and "tell me a joke" score 0.55-1.0; life questions score below 0.35 against small talk)...
SMALL_TALK_SCORE = 0.5
# ...and a request of this many words that small talk does not claim is a question for the knowledge.
CONSULT_MIN_WORDS = 5


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
            "what colour is this",
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
        CHAT,
        None,
        (
            "hello",
            "how are you",
            "thank you",
            "tell me a joke",
            "tell me a story about a dragon",
            "what's the capital of France",
            "why is the sky blue",
            "I'm feeling tired today",
            "good morning",
            "can you help me write a poem",
            "what do you think about music",
            "how many days are in a year",
            "how far away is the moon",
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
        candidates = [
            (score, intent)
            for score, intent in best.values()
            if (intent.self_answered or intent.tool in declared) and not intent.consulting_only
        ]
        if candidates:
            score, intent = max(candidates, key=lambda pair: pair[0])
            if score >= ROUTE_THRESHOLD and score >= chat_score + CHAT_MARGIN:
                return Route(intent, score, chat_score)
        counsel = best.get(COUNSEL)
        if consulting and counsel is not None and counsel[1].tool in declared:
            counsel_score, intent = counsel
            # talk about the assistant itself is conversation too, not a question for the knowledge
            talk_score = max([chat_score, *(score for score, other in best.values() if other.self_answered)])
            small_talk = talk_score >= SMALL_TALK_SCORE or len(text.split()) < CONSULT_MIN_WORDS
            if counsel_score > talk_score or not small_talk:
                return Route(intent, counsel_score, chat_score)
        top = max((score for score, _ in candidates), default=chat_score)
        return Route(None, top, chat_score)
