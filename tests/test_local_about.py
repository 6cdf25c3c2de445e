"""The offline assistant answers "who are you" and "what can you do" from what the session really has.

The dialogue tests run the real router (MiniLM in NumPy) and no chat model:
these answers never reach a model, so they cannot be invented.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from assistant.backends.local import about
from assistant.backends.local.conversation import CallTools, Conversation, ReadAloud, Say
from assistant.backends.local.dialogue import RouterDialogue
from assistant.backends.local.llm import ChatEvent, ChatMessage, GenerationSettings, TextDelta, ToolSpec
from assistant.backends.local.router import INTENTS, ToolRouter
from assistant.embeddings import load_embedder
from assistant.protocol import Content, FunctionDeclaration, Part

ROUTABLE = sorted({intent.tool for intent in INTENTS if intent.tool})
VALLUVAR = (
    "You are a warm, unhurried companion in the spirit of Thiruvalluvar, the Tamil poet of the Thirukkural.\n"
    "For every such question, call search_knowledge with the question in plain words before you answer."
)


@pytest.fixture(scope="module")
def router() -> ToolRouter:
    return ToolRouter(load_embedder())


def declared(*names: str) -> list[FunctionDeclaration]:
    return [FunctionDeclaration(name=name) for name in names]


async def reply(
    router: ToolRouter,
    said: str,
    tools: list[FunctionDeclaration],
    instruction: str | None = None,
    video: bool = False,
) -> list[Say | ReadAloud | CallTools]:
    dialogue = RouterDialogue(router, None)
    conversation = Conversation(instruction, [Content(role="user", parts=[Part(text=said)])], tools, video)
    return [event async for event in dialogue.respond(conversation, GenerationSettings())]


@pytest.mark.parametrize(
    ("instruction", "who"),
    [
        (None, about.DEFAULT_IDENTITY),
        ("Answer briefly. Speak French.", about.DEFAULT_IDENTITY),
        (VALLUVAR, "I'm a warm, unhurried companion in the spirit of Thiruvalluvar, the Tamil poet of the Thirukkural"),
        ("You are a pirate who answers your questions in rhyme.", "I'm a pirate"),
        ("Be brief. You are Ada, a kitchen helper.", "I'm Ada, a kitchen helper"),
        ("Your name is Ada. Be kind.", "My name is Ada, and I run offline on this computer"),
        ("Your name is Ada. You are a kitchen helper.", "My name is Ada, a kitchen helper"),
    ],
)
def test_identity_comes_from_the_instruction(instruction: str | None, who: str) -> None:
    assert about.identity(instruction) == who


def test_capabilities_follow_the_session() -> None:
    everything = about.SessionFacts(tools=ROUTABLE)
    assert about.capabilities(everything) == (
        "I can tell the time and date, do sums, set timers and reminders, remember what you tell me, "
        "describe what your camera shows once you turn it on, search your notes and documents and chat a little. "
        'For example, say "set a timer for five minutes".'
    )
    watching = about.SessionFacts(tools=["describe_view"], video=True, chats=False)
    assert about.capabilities(watching) == (
        'I can describe what your camera or screen shows. For example, say "what do you see".'
    )
    assert about.capabilities(about.SessionFacts(tools=[], chats=False)).startswith("In this session I have no tools")
    assert about.capabilities(about.SessionFacts(tools=[])) == "I can chat a little."


@pytest.mark.parametrize("said", ["What can you do?", "help", "what can you help me with", "What are you capable of?"])
async def test_what_can_you_do_lists_this_sessions_tools(router: ToolRouter, said: str) -> None:
    [event] = await reply(router, said, declared("set_timer", "calculate", "get_local_time"))
    # get_local_time is the page's own: the router cannot call it, so it is not offered
    assert event == Say('I can do sums and set timers. For example, say "set a timer for five minutes".')


async def test_the_camera_state_is_part_of_the_answer(router: ToolRouter) -> None:
    [off] = await reply(router, "What can you do?", declared("describe_view"))
    [on] = await reply(router, "What can you do?", declared("describe_view"), video=True)
    assert isinstance(off, Say) and "once you turn it on" in off.text
    assert isinstance(on, Say) and "describe what your camera or screen shows" in on.text


@pytest.mark.parametrize("said", ["Who are you?", "what's your name", "Tell me about yourself."])
async def test_who_are_you_is_the_default_assistant(router: ToolRouter, said: str) -> None:
    [event] = await reply(router, said, declared("get_current_time"))
    assert event == Say(f"{about.DEFAULT_IDENTITY}. I can tell the time and date.")


async def test_a_persona_introduces_itself(router: ToolRouter) -> None:
    tools = declared("search_knowledge", "get_current_time")
    [event] = await reply(router, "Who are you?", tools, instruction=VALLUVAR)
    assert event == Say(
        "I'm a warm, unhurried companion in the spirit of Thiruvalluvar, the Tamil poet of the Thirukkural. "
        "I can tell the time and date and answer from my sources."
    )


async def test_the_weather_is_an_honest_cannot(router: ToolRouter) -> None:
    for said in ["What's the weather like?", "is it going to rain today", "How cold is it outside?"]:
        assert await reply(router, said, declared(*ROUTABLE)) == [Say(about.NO_WEATHER)]


class KnowingChat:
    """A capable chat model stand-in: it knows an answer to the question it was asked."""

    name = "knowing"

    async def stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], settings: GenerationSettings
    ) -> AsyncIterator[ChatEvent]:
        yield TextDelta(f"Here is what I know about {len(messages[-1].content.split())} words of question.")


QUESTIONS = ["What's the capital of France?", "who invented the radio", "Explain black holes to me."]


@pytest.mark.parametrize("said", QUESTIONS)
async def test_general_questions_get_an_honest_cannot_from_the_small_model(router: ToolRouter, said: str) -> None:
    assert await reply(router, said, declared(*ROUTABLE)) == [Say(about.NO_FACTS)]
    capable = RouterDialogue(router, KnowingChat(), chat_knows_facts=True)
    conversation = Conversation(None, [Content(role="user", parts=[Part(text=said)])], declared(*ROUTABLE))
    events = [event async for event in capable.respond(conversation, GenerationSettings())]
    assert events == [Say(f"Here is what I know about {len(said.split())} words of question.")]
