"""The tool calls out of one session, without I/O: who runs each, by id, and who hears of it.

``SessionCore`` hands every call the model makes to a ``CallBook``, which
gives it an id, sends it to the client (a function the client declared) or
starts a server tool, answers an unknown one with an error, and routes
cancellations to whoever runs the call. Like the core, every method returns
effects and never awaits.

A backend that prepares its reply while the user only pauses (the local
stack) offers the calls early (``EarlyToolCalls``): read-only server tools
start at once, and only the backend hears their answers. When the reply is
committed the same calls come as ``ToolCalls`` and are recorded as made then,
without running again; when the user goes on, their cancellation drops them,
and neither the client nor the history ever saw them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, Literal

from assistant.logs import SessionLogger
from assistant.protocol import FunctionCall, FunctionResponse, ToolActivity, ToolCalls, ToolCancellation, ToolResponses
from assistant.protocol.models import ServerToolActivity
from assistant.session.effects import CancelServerTool, Effect, SendToBackend, SendToClient, StartServerTool
from assistant.session.history import ConversationLog
from assistant.session.tools import ServerTools

ActivityState = Literal["running", "done", "failed", "cancelled"]


def with_call_ids(event: ToolCalls) -> ToolCalls:
    """Give every call an id, so its response and cancellation can be matched."""
    return ToolCalls(
        [call if call.id else call.model_copy(update={"id": f"call-{secrets.token_hex(6)}"}) for call in event.calls]
    )


class CallBook:
    """Calls out, by id: the client's, the server tools', and read-only ones started early."""

    def __init__(
        self, tools: ServerTools, offers: Callable[[str], bool], log: SessionLogger, observe_tools: bool
    ) -> None:
        """``offers``: whether this session may use a server tool (its profile may narrow the set)."""
        self.tools = tools
        self.offers = offers
        self.log = log
        self.observe_tools = observe_tools
        self.client_tool_names: set[str] = set()
        self.client_calls: dict[str, str] = {}  # id -> name of calls the client runs
        self.server_calls: dict[str, str] = {}  # id -> name of calls the server's tools run
        self.early_calls: dict[str, FunctionResponse | None] = {}  # id -> its answer, None while it runs

    def out(self) -> bool:
        """A call the model waits for is unanswered (early ones do not count: nobody heard of them)."""
        return bool(self.client_calls) or bool(self.server_calls)

    def route(self, calls: list[FunctionCall], conversation: ConversationLog) -> list[Effect]:
        """Calls the model made (with ids): to the client, to a server tool, or answered as unknown."""
        effects: list[Effect] = []
        for_client: list[FunctionCall] = []
        unknown: list[FunctionResponse] = []
        for call in calls:
            assert call.id is not None
            if call.id in self.early_calls:
                effects += self._confirm_early(call, conversation)
            elif call.name in self.client_tool_names:
                self.client_calls[call.id] = call.name
                for_client.append(call)
            elif self.offers(call.name):
                self.server_calls[call.id] = call.name
                effects += self._activity(call.id, call.name, "running", args=call.args)
                effects.append(StartServerTool(call))
            else:
                self.log.warning("model called unknown tool %s", call.name)
                error = {"error": f"there is no tool named {call.name}"}
                unknown.append(FunctionResponse(id=call.id, name=call.name, response=error))
        if for_client:
            effects.append(SendToClient(ToolCalls(for_client)))
        if unknown:
            conversation.tool_results(unknown)
            effects.append(SendToBackend(ToolResponses(unknown)))
        return effects

    def start_early(self, calls: list[FunctionCall]) -> list[Effect]:
        """Run the read-only server tools among calls a reply may yet make; the rest wait for ``route``."""
        effects: list[Effect] = []
        for call in calls:
            if (
                call.id
                and call.id not in self.early_calls
                and call.id not in self.server_calls
                and call.name not in self.client_tool_names
                and self.offers(call.name)
                and self.tools.read_only(call.name)
            ):
                self.early_calls[call.id] = None
                effects.append(StartServerTool(call))
        return effects

    def _confirm_early(self, call: FunctionCall, conversation: ConversationLog) -> list[Effect]:
        """The reply made a call that already ran (or runs): record it as made now, and do not run it again."""
        assert call.id is not None
        answer = self.early_calls.pop(call.id)
        effects = self._activity(call.id, call.name, "running", args=call.args)
        if answer is None:  # still running: ``finished`` completes it as any other call
            self.server_calls[call.id] = call.name
            return effects
        return effects + self.record(answer, conversation)

    def cancel(self, ids: list[str]) -> list[Effect]:
        """The model no longer wants these answered: stop server tools, tell the client of its own."""
        effects: list[Effect] = []
        for call_id in ids:
            if call_id in self.early_calls:  # the user went on; nobody else heard of the call
                effects += [CancelServerTool(call_id)] if self.early_calls.pop(call_id) is None else []
                continue
            name = self.server_calls.pop(call_id, None)
            if name is not None:
                effects.append(CancelServerTool(call_id))
                effects += self._activity(call_id, name, "cancelled")
        for_client = [call_id for call_id in ids if self.client_calls.pop(call_id, None) is not None]
        if for_client:
            effects.append(SendToClient(ToolCancellation(for_client)))
        if ids:
            self.log.info("cancelled tool calls %s", ", ".join(ids))
        return effects

    def client_answers(self, event: ToolResponses) -> ToolResponses | None:
        """The client's responses to calls it was sent; others are logged and dropped (None: none left)."""
        known = []
        for response in event.responses:
            if response.id is not None and self.client_calls.pop(response.id, None) is not None:
                known.append(response)
            else:
                self.log.warning("ignoring toolResponse for call %s: no such call is pending", response.id)
        return ToolResponses(known) if known else None

    def finished(
        self, call: FunctionCall, response: FunctionResponse, conversation: ConversationLog
    ) -> list[Effect] | None:
        """A server tool answered ``call``: what follows, under the call's id and name; None if nobody waits."""
        assert call.id is not None
        response = response.model_copy(update={"id": call.id, "name": call.name})
        if call.id in self.early_calls:
            self.early_calls[call.id] = response  # recorded when the reply confirms the call
            return [SendToBackend(ToolResponses([response]))]
        if self.server_calls.pop(call.id, None) is None:
            return None  # cancelled meanwhile: the model no longer waits for it
        return self.answer(response, conversation)

    def answer(self, response: FunctionResponse, conversation: ConversationLog) -> list[Effect]:
        """A tool's answer for the model: a server tool's, or a late one that came after its call returned."""
        return [SendToBackend(ToolResponses([response])), *self.record(response, conversation)]

    def record(self, response: FunctionResponse, conversation: ConversationLog) -> list[Effect]:
        """A tool's answer into the history, and to a client that watches tools."""
        conversation.tool_results([response])
        failed = response.response is not None and "error" in response.response
        state: ActivityState = "failed" if failed else "done"
        return self._activity(response.id or "", response.name or "", state, response=response.response)

    def _activity(
        self,
        call_id: str,
        name: str,
        state: ActivityState,
        args: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
    ) -> list[Effect]:
        """Tell a client that asked (``?events=tools``) what a server tool is doing."""
        if not self.observe_tools:
            return []
        activity = ServerToolActivity(id=call_id, name=name, state=state, args=args, response=response)
        return [SendToClient(ToolActivity(activity))]
