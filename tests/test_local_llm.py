"""Tool calling through both chat-model paths, with the packaged SmolLM2 (validity, not wisdom).

- In process: llama.cpp constrained by the grammar built from the tools'
  schemas. A 135 M model chooses badly, but every call it makes must name a
  declared tool with arguments that fit its schema.
- Over HTTP: a real server on loopback speaking OpenAI's streaming
  chat-completions wire format (Server-Sent Events over chunked HTTP/1.1),
  whose answers come from llama-cpp-python's own OpenAI-compatible
  ``create_chat_completion`` on the same model. The client must stream text
  and assemble tool-call deltas into checked calls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
import pytest

from assistant.backends.local.chat_tools import ToolSpec
from assistant.backends.local.conversation import CallTools, Conversation
from assistant.backends.local.dialogue import ModelDialogue
from assistant.backends.local.llm import (
    DEFAULT_CHAT_MODEL,
    ChatError,
    ChatMessage,
    GenerationSettings,
    LlamaCppChat,
    OpenAIChat,
    StopGeneration,
    TextDelta,
    TokenUsage,
    ToolCalls,
    resolve_gguf,
)
from assistant.protocol import Content, FunctionDeclaration, Part
from assistant.protocol.models import GenerationConfig

pytestmark = pytest.mark.slow

DECLARATIONS = [
    FunctionDeclaration(
        name="turn_on_lights",
        description="Switch the lights on in a room.",
        parameters={
            "type": "OBJECT",
            "properties": {
                "room": {"type": "STRING", "enum": ["kitchen", "hall", "bedroom"]},
                "brightness": {"type": "INTEGER", "minimum": 0, "maximum": 100},
            },
            "required": ["room", "brightness"],
        },
    ),
    FunctionDeclaration(
        name="set_timer",
        description="Start a countdown timer.",
        parameters={
            "type": "OBJECT",
            "properties": {"seconds": {"type": "NUMBER"}, "label": {"type": "STRING"}},
            "required": ["seconds"],
        },
    ),
    FunctionDeclaration(name="get_current_time", description="The current time."),
]
TOOLS = [ToolSpec.from_declaration(declaration) for declaration in DECLARATIONS]
SYSTEM = ChatMessage("system", "You are a home assistant. Use the tools.")


def assert_valid(calls: list[tuple[str, dict[str, Any]]], tools: list[ToolSpec]) -> None:
    by_name = {tool.name: tool for tool in tools}
    assert calls
    for name, arguments in calls:
        assert name in by_name
        jsonschema.validate(arguments, by_name[name].parameters)


@pytest.fixture(scope="module")
def smollm() -> LlamaCppChat:
    return LlamaCppChat(resolve_gguf(DEFAULT_CHAT_MODEL), context_tokens=2048)


@pytest.mark.parametrize(
    "request_text",
    ["Turn on the kitchen lights.", "Set a timer for five minutes.", "What time is it?", "Make the hall bright."],
)
async def test_grammar_calls_are_valid_by_construction(smollm: LlamaCppChat, request_text: str) -> None:
    settings = GenerationSettings(max_tokens=96, temperature=0.8, require_tool=True)
    events = [event async for event in smollm.stream([SYSTEM, ChatMessage("user", request_text)], TOOLS, settings)]
    [calls] = [event for event in events if isinstance(event, ToolCalls)]
    assert not any(isinstance(event, TextDelta) for event in events)
    assert_valid(calls.calls, TOOLS)


def test_the_backend_reads_prompts_on_its_threads_and_generates_on_the_decode_threads() -> None:
    """Token-by-token steps are too small to share among threads (see ``LocalConfig.decode_threads``)."""
    from assistant.backends.local import LocalBackend, LocalConfig

    chat = LocalBackend(LocalConfig(threads=3, decode_threads=1))._load_chat()
    assert isinstance(chat, LlamaCppChat)
    assert (chat._llama.n_threads, chat._llama.n_threads_batch) == (1, 3)


async def test_without_tools_the_model_streams_text(smollm: LlamaCppChat) -> None:
    settings = GenerationSettings(max_tokens=24)
    events = [event async for event in smollm.stream([ChatMessage("user", "Say hello to Ada.")], [], settings)]
    *text, usage = events
    assert len(text) > 3 and all(isinstance(event, TextDelta) for event in text)
    assert isinstance(usage, TokenUsage)


@pytest.mark.parametrize("max_tokens", [40, 5])  # ends by itself; cut at max_tokens
async def test_a_reply_counts_its_tokens_as_llama_cpp_does(smollm: LlamaCppChat, max_tokens: int) -> None:
    """The streamed reply's usage equals what llama.cpp reports for the same generation unstreamed."""
    messages = [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", "Say hello in five words.")]
    settings = GenerationSettings(max_tokens=max_tokens, temperature=0.0, seed=1)
    events = [event async for event in smollm.stream(messages, [], settings)]
    reference = smollm._llama.create_chat_completion(
        messages=[{"role": m.role, "content": m.content} for m in messages],  # type: ignore[misc]
        max_tokens=max_tokens,
        temperature=0.0,
        seed=1,
    )
    counted = reference["usage"]  # type: ignore[index]
    assert events[-1] == TokenUsage(counted["prompt_tokens"], counted["completion_tokens"])


async def test_a_reply_stopped_early_still_says_what_it_cost(smollm: LlamaCppChat) -> None:
    """A guard that has heard enough throws ``StopGeneration`` in: generation stops, and its count comes back."""
    settings = GenerationSettings(max_tokens=120, temperature=0.0, seed=1)
    stream = smollm.stream([ChatMessage("user", "Count slowly from one to thirty in words.")], [], settings)
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    spent = await stream.athrow(StopGeneration())
    assert isinstance(spent, TokenUsage)
    assert spent.prompt_tokens > 0 and 1 <= spent.response_tokens < 120  # stopped long before max_tokens
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


def test_generation_settings_follow_the_clients_generation_config() -> None:
    config = GenerationConfig(temperature=1.1, top_p=0.8, top_k=20.0, seed=7, max_output_tokens=64)
    settings = GenerationSettings.from_config(config)
    assert (settings.max_tokens, settings.temperature) == (64, 1.1)
    assert settings.sampling() == {"top_p": 0.8, "top_k": 20, "seed": 7}
    assert GenerationSettings.from_config(GenerationConfig(temperature=0.0)).temperature == 0.0
    assert GenerationSettings.from_config(None) == GenerationSettings() and GenerationSettings().sampling() == {}


async def test_reading_ahead_changes_neither_the_reply_nor_its_count(smollm: LlamaCppChat) -> None:
    """The reply reuses what ``prefill`` read (llama.cpp's prefix match), and is the reply it would be without."""
    history = [
        ChatMessage("system", "You are a helpful assistant."),
        ChatMessage("user", "My cat is called Tom."),
        ChatMessage("assistant", "Tom is a fine name for a cat."),
    ]
    messages = [*history, ChatMessage("user", "What is my cat called?")]
    settings = GenerationSettings(max_tokens=16, temperature=0.0, seed=1)

    async def reply() -> list[object]:
        return [event async for event in smollm.stream(messages, [], settings)]

    await smollm.prefill([ChatMessage("user", "Something else entirely.")], [])
    cold = await reply()
    await smollm.prefill(history, [])
    assert await reply() == cold


async def test_a_seed_makes_sampling_repeatable(smollm: LlamaCppChat) -> None:
    settings = GenerationSettings(max_tokens=24, temperature=1.2, top_k=100, seed=1234)
    messages = [ChatMessage("user", "Invent a name for a cat.")]

    async def reply() -> str:
        events = [event async for event in smollm.stream(messages, [], settings)]
        return "".join(event.text for event in events if isinstance(event, TextDelta))

    first = await reply()
    assert first and await reply() == first


async def test_a_cancelled_generation_frees_the_model(smollm: LlamaCppChat) -> None:
    settings = GenerationSettings(max_tokens=400)
    stream = smollm.stream([ChatMessage("user", "Tell me a very long story.")], [], settings)
    async for _ in stream:
        break
    await stream.aclose()  # the worker stops at its next token and releases the lock
    again = [event async for event in smollm.stream([ChatMessage("user", "Hi")], [], GenerationSettings(max_tokens=4))]
    assert again


class OpenAIServer(ThreadingHTTPServer):
    """A chat-completions server over llama-cpp-python's OpenAI-compatible generator."""

    daemon_threads = True

    def __init__(self) -> None:
        from llama_cpp import Llama

        super().__init__(("127.0.0.1", 0), OpenAIHandler)
        self.llama = Llama(
            model_path=str(resolve_gguf(DEFAULT_CHAT_MODEL)),
            n_ctx=2048,
            n_threads=2,
            chat_format="chatml-function-calling",
            verbose=False,
        )
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.usages: list[dict[str, int]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class OpenAIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: OpenAIServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows what matters."""

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self.send_error(404, "no such endpoint")
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        tool_choice = body.get("tool_choice")
        if tool_choice == "required" and len(body.get("tools", [])) == 1:
            # "required" with one tool means that tool; llama-cpp-python's handler takes it by name
            tool_choice = {"type": "function", "function": {"name": body["tools"][0]["function"]["name"]}}
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with self.server.lock:
            chunks = self.server.llama.create_chat_completion(
                messages=body["messages"],
                tools=body.get("tools"),
                tool_choice=tool_choice,
                stream=True,
                max_tokens=body.get("max_tokens"),
                temperature=body.get("temperature", 0.2),
            )
            generated = 0
            for chunk in chunks:
                generated += 1
                self._event(json.dumps(chunk))
            if (body.get("stream_options") or {}).get("include_usage"):
                # OpenAI's last chunk: no choices, the counts (llama-cpp-python streams none of its own)
                usage = {"prompt_tokens": self.server.llama.n_tokens - generated, "completion_tokens": generated}
                self.server.usages.append(usage)
                self._event(json.dumps({"choices": [], "usage": usage}))
        self._event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")

    def _event(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()


@pytest.fixture(scope="module")
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_openai_endpoint_streams_text(openai_server: OpenAIServer) -> None:
    chat = OpenAIChat(openai_server.url, "smollm2")
    try:
        messages = [ChatMessage("user", "Say hello to Ada in one sentence.")]
        settings = GenerationSettings(max_tokens=24, top_p=0.9, seed=5)
        events = [event async for event in chat.stream(messages, [], settings)]
    finally:
        await chat.aclose()
    *text, usage = events
    assert len(text) > 3 and all(isinstance(event, TextDelta) for event in text)
    sent = openai_server.usages[-1]
    assert usage == TokenUsage(sent["prompt_tokens"], sent["completion_tokens"]) and usage.prompt_tokens > 0
    body = openai_server.requests[-1]
    assert body["stream"] is True and "tools" not in body
    assert (body["top_p"], body["seed"], body["max_tokens"]) == (0.9, 5, 24) and "top_k" not in body


async def test_openai_endpoint_tool_calls_become_checked_calls(openai_server: OpenAIServer) -> None:
    timer = [tool for tool in TOOLS if tool.name == "set_timer"]
    chat = OpenAIChat(openai_server.url, "smollm2")
    dialogue = ModelDialogue(chat)
    conversation = Conversation(
        "Use the tools.", [Content(role="user", parts=[Part(text="Set a timer for five minutes.")])], DECLARATIONS[1:2]
    )
    try:
        settings = GenerationSettings(max_tokens=64, require_tool=True)
        events = [event async for event in dialogue.respond(conversation, settings)]
    finally:
        await chat.aclose()
    [call_event] = [event for event in events if isinstance(event, CallTools)]
    [call] = call_event.calls
    assert call.id and call.name == "set_timer"
    assert_valid([(call.name, call.args)], timer)
    sent = openai_server.requests[-1]
    assert sent["tool_choice"] == "required"
    assert sent["tools"][0]["function"]["parameters"]["properties"]["seconds"] == {"type": "number"}


async def test_openai_endpoint_errors_are_reported(openai_server: OpenAIServer) -> None:
    chat = OpenAIChat(openai_server.url.replace("/v1", "/nowhere"), "smollm2")
    try:
        with pytest.raises(ChatError, match="HTTP 404"):
            async for _ in chat.stream([ChatMessage("user", "hi")], [], GenerationSettings()):
                pass
    finally:
        await chat.aclose()
