"""``@tool`` for typed Python functions, and ``raw_tool`` for handlers with a schema of their own.

    @tool
    async def get_weather(city: str, unit: Literal["C", "F"] = "C") -> Forecast:
        '''Today's weather for a city.

        Args:
            city: The city, e.g. "Lisbon".
            unit: Celsius or Fahrenheit.
        '''

The decorated object is still the function for callers and type checkers
(``get_weather("Lisbon")`` works and keeps its signature), and carries the
``ToolSpec`` the registry needs. ``raw_tool`` is the escape hatch for tools
whose arguments are only known at run time (MCP servers, generated APIs):
the handler gets the validated arguments as a dict.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypedDict, TypeVar, Unpack, overload

from assistant.protocol.models import Behavior, Scheduling
from assistant.tools.base import BaseTool, CallContext, Invocation, ToolSpec
from assistant.tools.schema import SchemaError, Signature, signature_schema

P = ParamSpec("P")
R = TypeVar("R")


def _is_async(function: Callable[..., Any]) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one."""
    target = inspect.unwrap(function)
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(type(target).__call__)


class ToolSettings(TypedDict, total=False):
    """How the registry runs a tool (see ``ToolSpec``)."""

    behavior: Behavior
    scheduling: Scheduling
    timeout: float
    cancellable: bool
    read_only: bool


class ToolOptions(ToolSettings, total=False):
    """``ToolSettings`` plus what the model sees, when not taken from the function."""

    name: str
    description: str


def _spec(name: str, description: str, parameters: dict[str, Any], settings: ToolSettings) -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        parameters=parameters,
        behavior=settings.get("behavior", "BLOCKING"),
        scheduling=settings.get("scheduling"),
        timeout_s=settings.get("timeout"),
        cancellable=settings.get("cancellable", True),
        read_only=settings.get("read_only", False),
    )


class FunctionTool(BaseTool, Generic[P, R]):
    """A typed function offered to the model; calling it calls the function."""

    def __init__(self, function: Callable[P, R], **options: Unpack[ToolOptions]) -> None:
        self.function = function
        tool_name = options.get("name") or getattr(function, "__name__", None)
        if not tool_name:
            raise SchemaError(f"{function!r} has no __name__; pass name=")
        self.signature: Signature = signature_schema(function, CallContext, tool_name)
        description = options.get("description")
        self.spec = _spec(
            tool_name,
            description if description is not None else self.signature.description,
            self.signature.parameters,
            options,
        )
        self._async = _is_async(function)
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<tool {self.spec.name} -> {getattr(self.function, '__qualname__', self.function)!r}>"

    @property
    def is_async(self) -> bool:
        return self._async

    @property
    def watches_cancellation(self) -> bool:
        return bool(self.signature.context_parameters)

    def bind(self, arguments: dict[str, Any], context: CallContext) -> Invocation:
        # The schema already passed; pydantic turns JSON values into the annotated types
        # (enum members, models, lists of models) without changing what the model sent.
        parsed = self.signature.arguments_model.model_validate(arguments)
        values = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        values.update({name: context for name in self.signature.context_parameters})
        return functools.partial(self.function, **values)


@overload
def tool(function: Callable[P, R], /) -> FunctionTool[P, R]: ...


@overload
def tool(**options: Unpack[ToolOptions]) -> Callable[[Callable[P, R]], FunctionTool[P, R]]: ...


def tool(
    function: Callable[P, R] | None = None, /, **options: Unpack[ToolOptions]
) -> FunctionTool[P, R] | Callable[[Callable[P, R]], FunctionTool[P, R]]:
    """Make a typed function (sync or async) a tool; usable bare or with options.

    Args:
        function: The function; its name, docstring and type hints become the declaration.
        options: ``name`` (default: the function's), ``description`` (default:
            the docstring's), ``behavior`` (``NON_BLOCKING`` lets the
            conversation go on while the tool runs), ``scheduling`` (for
            non-blocking tools: ``SILENT``, ``WHEN_IDLE`` (default) or
            ``INTERRUPT``), ``timeout`` (seconds; default: the registry's),
            ``cancellable`` (False lets a call the model cancels run to completion),
            ``read_only`` (True: the call changes nothing, so it may run before
            the user has finished speaking, its answer kept only if they have).
    """

    def decorate(target: Callable[P, R]) -> FunctionTool[P, R]:
        return FunctionTool(target, **options)

    return decorate(function) if function is not None else decorate


RawHandler = Callable[[dict[str, Any], CallContext], Any]


class RawTool(BaseTool):
    """A tool whose JSON Schema is given, not derived: the handler gets the arguments as a dict."""

    def __init__(self, spec: ToolSpec, handler: RawHandler) -> None:
        self.spec = spec
        self.handler = handler
        self._async = _is_async(handler)

    def __repr__(self) -> str:
        return f"<raw tool {self.spec.name}>"

    @property
    def is_async(self) -> bool:
        return self._async

    def bind(self, arguments: dict[str, Any], context: CallContext) -> Invocation:
        return functools.partial(self.handler, arguments, context)


def raw_tool(
    name: str, description: str, parameters: dict[str, Any], handler: RawHandler, **settings: Unpack[ToolSettings]
) -> RawTool:
    """A tool from a JSON Schema and a ``handler(arguments, context)``, sync or async.

    The schema is checked now: one that Gemini declarations cannot express
    fails here, at registration, not in the middle of a session.
    """
    spec = _spec(name, description, parameters, settings)
    spec.declaration()
    return RawTool(spec, handler)
