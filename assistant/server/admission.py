"""Letting a websocket in: session limits, and the setup an ephemeral token allows.

``SessionLimits`` counts live sessions, in all and per principal (the access
key, the key that minted a token, or the client's address when the server
has no key), so one client cannot take every slot. The count per principal
sits in the conversation store's ``SessionCounter``, so behind a load
balancer ``--max-sessions-per-key`` holds across every process that shares
the store; the total is this process's own (what its machine can carry). ``TokenGate`` reads the
first message of a token's connection, spends a use (a resumption spends
none, as on Gemini), puts the token's constraints over the client's setup,
and hands the session that setup as if the client had sent it.
"""

from __future__ import annotations

import json
from collections import Counter

from assistant.server.tokens import EphemeralToken, TokenStore
from assistant.session import Transport
from assistant.session.counts import MemorySessionCounter, SessionCounter, SessionSlot
from assistant.session.transport import MessageSink

TRY_AGAIN_REASON = "server busy: too many sessions; try again later"
TRY_AGAIN_KEY_REASON = "too many sessions for this key or address; try again later"


class SessionLimits:
    """At most ``total`` live sessions here, and at most ``per_principal`` for any one principal (None: no limit).

    ``counter`` counts sessions per principal; give it the conversation
    store's so that processes sharing the store share the limit. Principals
    must be labels, never secrets: a shared counter may keep them.
    """

    def __init__(
        self, total: int | None = None, per_principal: int | None = None, counter: SessionCounter | None = None
    ) -> None:
        self.total = total
        self.per_principal = per_principal
        self.counter = counter if counter is not None else MemorySessionCounter()
        self._live: Counter[str] = Counter()
        self._slots: dict[str, list[SessionSlot]] = {}

    async def admit(self, principal: str) -> str | None:
        """Count a new session for ``principal``; the refusal reason (close 1013) when over a limit."""
        if self.total is not None and sum(self._live.values()) >= self.total:
            return TRY_AGAIN_REASON
        self._live[principal] += 1  # before the shared count is asked, so admissions meanwhile see it
        if self.per_principal is None:
            return None
        slot = None
        try:
            slot = await self.counter.acquire(principal, self.per_principal)
        finally:
            if slot is None:
                self._uncount(principal)
        if slot is None:
            return TRY_AGAIN_KEY_REASON
        self._slots.setdefault(principal, []).append(slot)
        return None

    async def release(self, principal: str) -> None:
        """One of ``principal``'s sessions ended (its shared slot goes back too)."""
        self._uncount(principal)
        slots = self._slots.get(principal)
        if slots:
            slot = slots.pop()  # a principal's slots are alike: any one gives its place back
            if not slots:
                del self._slots[principal]
            await slot.release()

    def _uncount(self, principal: str) -> None:
        self._live[principal] -= 1
        if self._live[principal] <= 0:
            del self._live[principal]

    def live(self, principal: str | None = None) -> int:
        """Sessions live in this process, for ``principal`` or in all."""
        return self._live[principal] if principal is not None else sum(self._live.values())


class TokenGate:
    """A ``Transport`` whose first frame is the client's setup, redeemed against a token and constrained.

    ``open`` must be called before the session reads; it raises
    ``TokenRefused`` (the close reason) when the token cannot open a session.
    """

    def __init__(self, inner: Transport, store: TokenStore, token_name: str) -> None:
        self.inner = inner
        self.peer = inner.peer
        self.store = store
        self.token_name = token_name
        self._first: str | bytes | None = None

    def open(self, first_frame: str | bytes) -> EphemeralToken:
        """Redeem the token for this setup and keep the setup it allows, to be the session's first frame."""
        message = _json_object(first_frame)
        setup = message.get("setup") if message is not None else None
        if not isinstance(setup, dict):
            # Not a setup the token could constrain: spend a use anyway and let the session explain.
            self._first = first_frame
            return self.store.redeem(self.token_name, resuming=False)
        resumption = setup.get("sessionResumption") or setup.get("session_resumption")
        resuming = isinstance(resumption, dict) and bool(resumption.get("handle"))
        token = self.store.redeem(self.token_name, resuming=resuming)
        self._first = json.dumps({"setup": token.constrain(setup)})
        return token

    async def recv(self) -> str | bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self.inner.recv()

    async def send(self, data: bytes) -> None:
        await self.inner.send(data)

    def send_now(self, data: bytes) -> bool:
        return self.inner.send_now(data)

    def push_messages(self, sink: MessageSink | None) -> bool:
        if self._first is not None and sink is not None:
            return False  # the setup it holds must be read first, through ``recv``
        return self.inner.push_messages(sink)

    async def close(self, code: int, reason: str) -> None:
        await self.inner.close(code, reason)


def _json_object(frame: str | bytes) -> dict[str, object] | None:
    try:
        value = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
