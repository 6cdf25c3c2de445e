"""The offline dialogue: routed calls with deterministic arguments, answers from templates.

These run the real router (MiniLM in NumPy) with no chat model, so only the
tool paths are exercised; conversation with SmolLM2 is covered by the slow tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from assistant.backends.local.chat_tools import ToolSpec
from assistant.backends.local.conversation import CallTools, Conversation, ReadAloud, Say, window_start
from assistant.backends.local.dialogue import CHAT_HISTORY_MESSAGES, RouterDialogue
from assistant.backends.local.llm import ChatEvent, ChatMessage, GenerationSettings, TextDelta
from assistant.backends.local.originals import Original, asks_for_original, last_original
from assistant.backends.local.router import INTENTS, ToolRouter
from assistant.embeddings import load_embedder
from assistant.protocol import Content, FunctionCall, FunctionDeclaration, FunctionResponse, Part

TOOLS = [FunctionDeclaration(name=name) for name in sorted({i.tool for i in INTENTS if i.tool})]
NOW = datetime(2026, 11, 28, 15, 42).astimezone()


@pytest.fixture(scope="module")
def router() -> ToolRouter:
    return ToolRouter(load_embedder())


def user(text: str) -> Content:
    return Content(role="user", parts=[Part(text=text)])


async def events(dialogue: RouterDialogue, conversation: Conversation) -> list[Say | ReadAloud | CallTools]:
    return [event async for event in dialogue.respond(conversation, GenerationSettings())]


@pytest.mark.parametrize(
    ("said", "tool", "args"),
    [
        ("What's twelve times seven?", "calculate", {"expression": "12*7"}),
        ("Set a timer for five minutes.", "set_timer", {"seconds": 300}),
        ("Set a tea timer for 3 minutes", "set_timer", {"seconds": 180, "label": "tea"}),
        ("What time is it in Tokyo?", "get_current_time", {"timezone": "Asia/Tokyo"}),
        ("What time is it?", "get_current_time", {}),
        ("Remind me to call Mum in ten minutes.", "set_reminder", {"text": "call Mum", "seconds": 600}),
        ("Remember that I parked on level 3.", "remember", {"fact": "I parked on level 3"}),
        ("Where did I park?", "recall", {"query": "Where did I park"}),
        ("What am I holding?", "describe_view", {}),
    ],
)
async def test_everyday_requests_become_calls(router: ToolRouter, said: str, tool: str, args: dict) -> None:
    dialogue = RouterDialogue(router, None, now=lambda: NOW)
    [event] = await events(dialogue, Conversation(None, [user(said)], TOOLS))
    assert isinstance(event, CallTools)
    [call] = event.calls
    assert (call.name, call.args) == (tool, args)
    assert call.id and call.id.startswith("call-")


async def test_the_answer_is_phrased_from_the_response(router: ToolRouter) -> None:
    dialogue = RouterDialogue(router, None)
    conversation = Conversation(None, [user("What time is it in Tokyo?")], TOOLS)
    [event] = await events(dialogue, conversation)
    assert isinstance(event, CallTools)
    [call] = event.calls
    response = FunctionResponse(id=call.id, name=call.name, response={"output": {"time": "11:42 PM"}})
    conversation.turns += [
        Content(role="model", parts=[Part(function_call=call)]),
        Content(role="user", parts=[Part(function_response=response)]),
    ]
    assert await events(dialogue, conversation) == [Say("It's 11:42 PM in Tokyo. ")]


async def test_a_missing_argument_is_asked_for_then_taken_from_the_answer(router: ToolRouter) -> None:
    dialogue = RouterDialogue(router, None)
    conversation = Conversation(None, [user("Set a timer.")], TOOLS)
    assert await events(dialogue, conversation) == [
        Say("For how long should I set the timer?", ends_turn="NEED_MORE_INPUT")
    ]
    conversation.turns += [Content(role="model", parts=[Part(text="For how long?")]), user("Ten minutes.")]
    [event] = await events(dialogue, conversation)
    assert isinstance(event, CallTools) and event.calls[0].args == {"seconds": 600}


async def test_undeclared_tools_are_never_called(router: ToolRouter) -> None:
    dialogue = RouterDialogue(router, None)
    [event] = await events(dialogue, Conversation(None, [user("What time is it?")], []))
    assert isinstance(event, Say) and "Sorry" in event.text


async def test_an_unknown_place_is_said_not_guessed(router: ToolRouter) -> None:
    dialogue = RouterDialogue(router, None)
    said = await events(dialogue, Conversation(None, [user("What time is it in Narnia?")], TOOLS))
    assert said == [Say("Sorry, I don't know the time zone of Narnia.")]


def test_chat_messages_carry_history_and_tool_traffic() -> None:
    call = {"id": "c1", "name": "calculate", "args": {"expression": "1+1"}}
    response = {"id": "c1", "name": "calculate", "response": {"output": {"result": 2}}}
    turns = [
        user("Hi, I'm Ada."),
        Content(role="model", parts=[Part(text="Hello Ada!")]),
        Content(role="model", parts=[Part(function_call=call)]),
        Content(role="user", parts=[Part(function_response=response)]),
        user("Thanks"),
    ]
    conversation = Conversation("Be brief.", turns, TOOLS)
    with_tools = conversation.chat_messages("persona", with_tools=True)
    assert [m.role for m in with_tools] == ["system", "user", "assistant", "assistant", "tool", "user"]
    assert with_tools[0].content == "Be brief."
    assert with_tools[3].tool_calls[0].name == "calculate" and with_tools[4].tool_call_id == "c1"
    plain = conversation.chat_messages("persona", with_tools=False)
    assert [(m.role, m.content) for m in plain] == [
        ("system", "Be brief."),
        ("user", "Hi, I'm Ada."),
        ("assistant", "Hello Ada!"),
        ("user", "Thanks"),
    ]


@pytest.mark.parametrize(
    ("said", "complete"),
    [
        ("What time is it?", True),
        ("Set a timer for five minutes.", True),
        ("Set a timer for", False),
        ("Tell me a story about", False),
        ("Tell me a joke.", True),  # an ask the chat model answers
        ("Explain black holes to me!", True),
        ("Tell me a joke about.", False),  # a fragment Whisper closed
        ("I like jokes.", False),  # a statement: the full silence decides
        ("Could you tell me?", True),
        # Whisper punctuates a fragment cut by a pause as if it were whole
        ("What time is it in?", False),
        ("Remember that my sister's.", False),
        ("Remember that my sister's birthday is in May.", True),
        ("Remember that my sisters.", False),  # heard so, with a full stop, before "... birthday is in May"
        ("Please remember I parked downstairs.", True),
        ("What's the date today?", True),
    ],
)
async def test_complete_requests_are_recognised(router: ToolRouter, said: str, complete: bool) -> None:
    dialogue = RouterDialogue(router, None)
    assert await dialogue.sounds_complete(said, {tool.name for tool in TOOLS}) is complete


# -- a persona that consults its knowledge, and reading an original aloud --------------------------

VALLUVAR = "You are a companion in the spirit of Thiruvalluvar. Call search_knowledge for every life question."
PERSONA_TOOLS = [FunctionDeclaration(name="search_knowledge"), FunctionDeclaration(name="get_current_time")]
ANGER = {
    "text": "Kural 305, from the chapter Restraining Anger (31):\nIf a man would guard himself, let him guard against "
    "anger;\nMeaning: If a man would guard himself, let him guard against anger.",
    "source": "Thirukkural, couplet 305, chapter 31: Restraining Anger",
    "score": 0.61,
    "document": "corpus:thirukkural",
    "metadata": {"number": 305, "tamil": "தன்னைத்தான் காக்கின் சினங்காக்க"},
}


def searched(call_id: str, passages: list[dict], read_aloud: dict | None = None) -> list[Content]:
    call = {"id": call_id, "name": "search_knowledge", "args": {"query": "anger"}}
    output: dict = {"passages": passages}
    if read_aloud:
        output["read_aloud"] = read_aloud
    response = {"id": call_id, "name": "search_knowledge", "response": {"output": output}}
    return [
        Content(role="model", parts=[Part(function_call=call)]),
        Content(role="user", parts=[Part(function_response=response)]),
    ]


async def test_a_persona_that_consults_its_knowledge_answers_with_the_couplet_and_reads_the_tamil(
    router: ToolRouter,
) -> None:
    dialogue = RouterDialogue(router, None)
    conversation = Conversation(VALLUVAR, [user("How should I deal with anger?")], PERSONA_TOOLS)
    [event] = await events(dialogue, conversation)
    assert isinstance(event, CallTools)
    [call] = event.calls
    assert (call.name, call.args) == ("search_knowledge", {"query": "How should I deal with anger"})
    assert call.id is not None
    conversation.turns += searched(call.id, [ANGER], {"voice": "ta", "field": "tamil"})
    [answer] = await events(dialogue, conversation)
    spoken = " ".join(ANGER["text"].split())  # the couplet cites itself; its lines are read as one
    assert answer == Say(spoken + " I can read it in Tamil if you like. ")
    conversation.turns += [Content(role="model", parts=[Part(text=answer.text)]), user("Read it in Tamil.")]
    assert await events(dialogue, conversation) == [ReadAloud("தன்னைத்தான் காக்கின் சினங்காக்க", "ta")]
    conversation.turns += [Content(role="model", parts=[Part(text="…")]), user("Hello!")]
    assert await events(dialogue, conversation) == [Say("Hello! What can I do for you?")]  # small talk, no search
    conversation.turns += [Content(role="model", parts=[Part(text="Hello!")]), user("Tell me a joke.")]
    [joke] = await events(dialogue, conversation)
    assert isinstance(joke, Say) and "Sorry" in joke.text  # small talk: the chat model's (none here)


async def test_the_default_assistant_does_not_search_for_life_questions(router: ToolRouter) -> None:
    dialogue = RouterDialogue(router, None)
    [event] = await events(dialogue, Conversation(None, [user("How should I deal with anger?")], TOOLS))
    assert isinstance(event, Say)  # conversation (here: no chat model), not a search


@pytest.mark.parametrize(
    ("said", "asks"),
    [
        ("Read it in Tamil.", True),
        ("Can you say that in Tamil?", True),
        ("How does it sound in the original?", True),
        ("Tamil, please.", True),
        ("The original please", True),
        ("What does Tamil culture say about guests?", False),  # asks about content, not to hear it
        ("Is Tamil an old language?", False),
        ("Read me another one.", False),
    ],
)
def test_requests_to_hear_the_original(said: str, asks: bool) -> None:
    original = Original("தன்னைத்தான் காக்கின்", "ta", "tamil")
    assert asks_for_original(said, original) is asks


def test_only_a_search_that_offers_an_original_can_be_read_aloud() -> None:
    assert last_original(searched("c1", [ANGER])) is None  # no read_aloud hint: not this collection's to read
    document = {**ANGER, "metadata": {"page": 2}}
    assert last_original(searched("c2", [document], {"voice": "ta", "field": "tamil"})) is None
    found = last_original([*searched("c3", [ANGER], {"voice": "ta", "field": "tamil"}), user("thanks")])
    assert found == Original("தன்னைத்தான் காக்கின் சினங்காக்க", "ta", "tamil")


class ReadingChat:
    """A chat model that keeps what it was given to read ahead and what it was asked to answer."""

    name = "reading"

    def __init__(self) -> None:
        self.read: list[list[ChatMessage]] = []
        self.asked: list[list[ChatMessage]] = []

    async def prefill(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> None:
        self.read.append(messages)

    async def stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], settings: GenerationSettings
    ) -> AsyncIterator[ChatEvent]:
        self.asked.append(messages)
        yield TextDelta("Sure.")


@pytest.mark.parametrize(("earlier_messages", "kept"), [(2, 2), (8, 4), (12, 4)])  # it moves at the 9th and 13th
async def test_what_the_chat_model_reads_ahead_is_the_start_of_the_next_prompt(
    router: ToolRouter, earlier_messages: int, kept: int
) -> None:
    chat = ReadingChat()
    dialogue = RouterDialogue(router, chat)
    call = FunctionCall(id="c1", name="get_current_time", args={})
    tool_exchange = [  # four turns, two chat messages: the small model never sees the tool traffic
        user("What time is it?"),
        Content(role="model", parts=[Part(function_call=call)]),
        Content(role="user", parts=[Part(function_response=FunctionResponse(id="c1", name=call.name, response={}))]),
        Content(role="model", parts=[Part(text="It is noon.")]),
    ]
    said = [
        Content(role="user" if i % 2 == 0 else "model", parts=[Part(text=f"message {i} of our little chat")])
        for i in range(earlier_messages - 2)
    ]
    conversation = Conversation(None, [*tool_exchange, *said], TOOLS)
    await dialogue.prepare(conversation)
    conversation.turns.append(user("Tell me a joke."))
    await events(dialogue, conversation)
    [read], [asked] = chat.read, chat.asked
    assert len(read) == 1 + kept  # the system message, then what stays in the window once the user has spoken
    assert asked[: len(read)] == read and asked[-1] == ChatMessage("user", "Tell me a joke.")


def test_the_chat_history_window_moves_in_steps_and_keeps_at_most_its_limit() -> None:
    starts = [window_start(count, CHAT_HISTORY_MESSAGES) for count in range(40)]
    assert all(count - start <= CHAT_HISTORY_MESSAGES for count, start in enumerate(starts))
    assert all(count - start > CHAT_HISTORY_MESSAGES // 2 for count, start in enumerate(starts) if start)
    moves = [count for count in range(1, 40) if starts[count] != starts[count - 1]]
    assert moves == list(range(CHAT_HISTORY_MESSAGES + 1, 40, CHAT_HISTORY_MESSAGES // 2))
