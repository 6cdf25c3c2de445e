"""The tool registry: the one place where tool calls are checked, run, timed and answered.

It implements ``ServerTools`` for the session. For every call it:

1. validates the arguments against the tool's JSON Schema (``jsonschema``)
   and answers ``{"error": ...}`` naming the bad argument when they are wrong;
2. runs the tool: async tools on the loop, sync tools in a thread of their
   own (``threads``), under the tool's timeout;
3. propagates cancellation (toolCallCancellation, barge-in) into the tool;
4. shapes the outcome: ``{"output": value}`` with the value made JSON-safe
   (dataclasses, pydantic models, datetimes, paths, enums...), the message
   of a ``ToolError``, or a generic failure for a crash (logged with its
   traceback; the model never sees internals);
5. for non-blocking tools, adds the scheduling hint and delivers later
   results (``CallContext.follow_up``) through the session.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from assistant.errors import AssistantError
from assistant.protocol import FunctionCall, FunctionDeclaration, FunctionResponse
from assistant.session.tools import ToolContext
from assistant.tools.base import DEFAULT_TIMEOUT_S, BaseTool, CallContext, FollowUp, ToolError, ToolSpec
from assistant.tools.decorator import FunctionTool
from assistant.tools.schema import SchemaError
from assistant.tools.threads import run_in_thread

logger = logging.getLogger("assistant.tools")

MAX_REPORTED_ERRORS = 3
MAX_ERROR_CHARS = 200


class InvalidArguments(AssistantError):
    """The model's arguments do not fit the schema; the message names each bad argument."""


class CallTimedOut(AssistantError):
    """The call ran past its tool's timeout (not a ``TimeoutError`` the tool raised itself, which is a crash)."""


class DuplicateTool(AssistantError, ValueError):
    """A tool of that name is already registered (from ``source``)."""


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """A plugin (module, entry point, MCP server, tool) that was skipped, and why."""

    source: str
    message: str


@dataclass(frozen=True, slots=True)
class RegisteredTool:
    """A tool with where it came from ("builtin", "entry point ...", "mcp ...")."""

    tool: BaseTool
    source: str
    declaration: FunctionDeclaration
    validator: jsonschema.protocols.Validator

    @property
    def spec(self) -> ToolSpec:
        return self.tool.spec

    def check(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The arguments if they fit the schema; ``InvalidArguments`` otherwise.

        A null for an optional argument that is not nullable is read as "not
        given" (models sometimes send it), so its default applies.
        """
        arguments = dict(arguments)
        required = set(self.spec.parameters.get("required", []))
        errors = list(self.validator.iter_errors(arguments))
        nulls = {
            error.path[0]
            for error in errors
            if len(error.path) == 1 and error.instance is None and error.path[0] not in required
        }
        if nulls:
            arguments = {key: value for key, value in arguments.items() if key not in nulls}
            errors = list(self.validator.iter_errors(arguments))
        if errors:
            raise InvalidArguments(f"invalid arguments for {self.spec.name}: {describe_errors(errors)}")
        return arguments


def describe_errors(errors: Iterable[jsonschema.ValidationError]) -> str:
    """The first few schema violations, each naming the argument it concerns."""
    parts = []
    for error in sorted(errors, key=jsonschema.exceptions.relevance)[:MAX_REPORTED_ERRORS]:
        if error.validator == "required" and not error.path:
            missing = error.message.split("'")[1] if error.message.count("'") >= 2 else error.message
            parts.append(f"missing required argument {missing!r}")
            continue
        if error.validator == "additionalProperties" and not error.path:
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            parts.append(f"unexpected argument{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}")
            continue
        where = ".".join(str(part) for part in error.absolute_path) or "arguments"
        message = error.message if len(error.message) <= MAX_ERROR_CHARS else error.message[:MAX_ERROR_CHARS] + "..."
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def to_json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: dataclasses, models, datetimes, paths, enums, sets all convert."""
    try:
        return to_jsonable_python(value, inf_nan_mode="strings")
    except PydanticSerializationError as exc:
        raise TypeError(f"the result ({type(value).__name__}) cannot be turned into JSON: {exc}") from exc


class ToolRegistry:
    """Server-side tools offered to every session, with the rules every call follows."""

    def __init__(self, *, default_timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.default_timeout_s = default_timeout_s
        self.problems: list[PluginProblem] = []
        self._tools: dict[str, RegisteredTool] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._closers: list[Callable[[], Awaitable[None]]] = []

    # -- registration --------------------------------------------------------

    def add(self, tool: BaseTool | Callable[..., Any], source: str = "python") -> BaseTool:
        """Register a tool, or a typed function (made a tool on the way); returns the tool.

        Raises ``SchemaError`` for a schema that cannot be declared and
        ``DuplicateTool`` when the name is taken.
        """
        if not isinstance(tool, BaseTool):
            tool = FunctionTool(tool)
        name = tool.spec.name
        existing = self._tools.get(name)
        if existing is not None:
            raise DuplicateTool(f"a tool named {name} is already registered (from {existing.source})")
        try:
            validator_class = jsonschema.validators.validator_for(tool.spec.parameters, jsonschema.Draft202012Validator)
            validator_class.check_schema(tool.spec.parameters)
        except jsonschema.SchemaError as exc:
            raise SchemaError(f"{name}: the parameters are not a valid JSON Schema: {exc.message}") from exc
        self._tools[name] = RegisteredTool(tool, source, tool.spec.declaration(), validator_class(tool.spec.parameters))
        return tool

    def remove(self, name: str) -> bool:
        """Withdraw a tool (e.g. one the config disables); whether it was there."""
        return self._tools.pop(name, None) is not None

    def report(self, source: str, message: str, error: BaseException | None = None) -> None:
        """Record a plugin that was skipped (logging the traceback, if any); the server goes on without it."""
        logger.warning("skipped %s: %s", source, message, exc_info=error)
        self.problems.append(PluginProblem(source, message))

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` when the registry closes (MCP connections, stores)."""
        self._closers.append(closer)

    def tools(self) -> list[RegisteredTool]:
        return list(self._tools.values())

    def get(self, name: str) -> RegisteredTool | None:
        return self._tools.get(name)

    # -- ServerTools ---------------------------------------------------------

    def declarations(self) -> list[FunctionDeclaration]:
        return [registered.declaration for registered in self._tools.values()]

    def handles(self, name: str) -> bool:
        return name in self._tools

    def read_only(self, name: str) -> bool:
        registered = self._tools.get(name)
        return registered is not None and registered.spec.read_only

    async def call(self, call: FunctionCall, context: ToolContext) -> FunctionResponse:
        registered = self._tools.get(call.name)
        if registered is None:
            return FunctionResponse(
                id=call.id, name=call.name, response={"error": f"there is no tool named {call.name}"}
            )
        spec = registered.spec
        ctx = CallContext(call_id=call.id or "", tool_name=spec.name, session=context)
        try:
            output = await self._run(registered, call.args, ctx)
            payload: dict[str, Any] = {"output": to_json_safe(output)}
        except (InvalidArguments, ToolError, CallTimedOut) as exc:
            payload = {"error": str(exc) or f"{spec.name} failed"}
        except asyncio.CancelledError:
            _discard(ctx.follow_ups)
            raise
        except Exception:
            logger.exception("tool %s crashed (session %s, call %s)", spec.name, context.session_id, call.id)
            payload = {"error": f"{spec.name} failed with an internal error; the server log has the details"}
        follow_ups = ctx.follow_ups if "output" in payload else _discard(ctx.follow_ups)
        if follow_ups:
            self._start_follow_ups(call, spec, ctx, follow_ups)
        return FunctionResponse(
            id=call.id,
            name=call.name,
            response=payload,
            scheduling=spec.response_scheduling,
            will_continue=True if follow_ups else None,
        )

    # -- running -------------------------------------------------------------

    async def _run(self, registered: RegisteredTool, arguments: dict[str, Any], ctx: CallContext) -> Any:
        spec = registered.spec
        checked = registered.check(arguments)
        try:
            invocation = registered.tool.bind(checked, ctx)
        except ValidationError as exc:  # the schema passed, but a model's own validator did not
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise InvalidArguments(f"invalid arguments for {spec.name}: {problems}") from exc
        timeout = spec.timeout_s or self.default_timeout_s
        execution: Awaitable[Any] = self._execute(registered.tool, invocation, ctx)
        shielded: asyncio.Future[Any] | None = None
        if not spec.cancellable:
            # Cancelling the call stops the wait, not the work, whose result is then dropped.
            shielded = self._keep(asyncio.ensure_future(execution))
            execution = asyncio.shield(shielded)
        try:
            async with asyncio.timeout(timeout) as scope:
                return await execution
        except TimeoutError:
            if not scope.expired():
                raise  # the tool's own TimeoutError: a crash like any other
            _abandon(spec, ctx, shielded)
            raise CallTimedOut(f"{spec.name} did not finish within {timeout:g} s") from None
        except asyncio.CancelledError:
            _abandon(spec, ctx, shielded)
            raise

    async def _execute(self, tool: BaseTool, invocation: Callable[[], Any], ctx: CallContext) -> Any:
        if tool.is_async:
            result = invocation()
        else:
            result = await run_in_thread(
                invocation, ctx.cancelled, f"tool-{tool.name}-{ctx.call_id}", interrupt=not tool.watches_cancellation
            )
        if inspect.isawaitable(result):
            result = await result
        return result

    def _keep(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        """Track work that may outlive its call, so closing the registry ends it."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _start_follow_ups(
        self, call: FunctionCall, spec: ToolSpec, ctx: CallContext, follow_ups: list[FollowUp]
    ) -> None:
        left = [len(follow_ups)]

        async def deliver(follow_up: FollowUp) -> None:
            try:
                payload: dict[str, Any] = {"output": to_json_safe(await follow_up.work)}
            except ToolError as exc:
                payload = {"error": str(exc) or f"{spec.name} failed"}
            except Exception:
                logger.exception("later result of %s crashed (call %s)", spec.name, call.id)
                payload = {"error": f"{spec.name} failed with an internal error; the server log has the details"}
            left[0] -= 1
            response = FunctionResponse(
                id=call.id,
                name=call.name,
                response=payload,
                scheduling=follow_up.scheduling,
                will_continue=True if left[0] else None,
            )
            try:
                await ctx.session.send_response(response)
            except Exception as exc:  # the session ended: nobody is left to tell
                logger.info("session %s ended before %s could deliver a result (%r)", ctx.session_id, spec.name, exc)

        for follow_up in follow_ups:
            self._keep(asyncio.ensure_future(deliver(follow_up)))

    async def aclose(self) -> None:
        """Stop pending later results and leftover calls, then close what plugins opened."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:
                logger.exception("closing a tool source failed")
        self._closers.clear()


def _abandon(spec: ToolSpec, ctx: CallContext, shielded: asyncio.Future[Any] | None) -> None:
    """Nobody waits for the call any more: stop a cancellable tool; let a shielded one finish, and log it."""
    if shielded is None:
        ctx.cancelled.set()
        return

    def finished(task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            logger.info("%s (call %s) finished after it was abandoned; its result was dropped", spec.name, ctx.call_id)
        else:
            logger.warning("%s (call %s) failed after it was abandoned: %r", spec.name, ctx.call_id, error)

    shielded.add_done_callback(finished)


def _discard(follow_ups: list[FollowUp]) -> list[FollowUp]:
    """Drop later work of a call that failed; close coroutines so none is left un-awaited."""
    for follow_up in follow_ups:
        if inspect.iscoroutine(follow_up.work):
            follow_up.work.close()
        elif isinstance(follow_up.work, asyncio.Future):
            follow_up.work.cancel()
    return []
