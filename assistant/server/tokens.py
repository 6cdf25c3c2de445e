"""Ephemeral tokens, as Gemini's ``auth_tokens`` service mints them.

A page or a phone should never hold the server's long-lived access key. An
operator's backend (or the page itself, through an HttpOnly cookie) asks
``POST /v1alpha/auth_tokens`` for a short-lived token, then connects with it
on the ``BidiGenerateContentConstrained`` path. The request and response are
Gemini's JSON, so ``client.auth_tokens.create`` of the google-genai SDK works
unchanged:

- ``uses``: how many sessions the token may start (default 1, 0 for no
  limit); resuming a session does not count, as on Gemini.
- ``expireTime``: after it the token opens nothing and its sessions close
  (default 30 minutes).
- ``newSessionExpireTime``: after it the token starts no new session
  (default 1 minute), though sessions may still resume until ``expireTime``.
- ``bidiGenerateContentSetup`` (the SDK's ``liveConnectConstraints``) and
  ``fieldMask`` (its ``lock_additional_fields``): the setup fields the token
  fixes. Without a mask every constrained field is locked and the client's
  own setup is replaced by the token's; with a mask only the named fields
  (``model``, ``generationConfig.temperature``...) are taken from the token.

Tokens live behind ``TokenStore`` so a later store (Redis) can share them
between server processes; ``MemoryTokenStore`` keeps them in this process,
bounded in number.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from assistant.errors import AssistantError

TOKEN_PREFIX = "auth_tokens/"
DEFAULT_USES = 1
DEFAULT_EXPIRE_S = 30 * 60
DEFAULT_NEW_SESSION_EXPIRE_S = 60
MAX_LIFETIME_S = 20 * 60 * 60  # Gemini caps a token's life at 20 hours
MAX_USES = 1_000_000
DEFAULT_MAX_TOKENS = 10_000
# Session-resumption handles are per connection: a token minted earlier cannot know them.
CLIENT_OWNED_FIELDS = frozenset({"sessionResumption"})
_SNAKE = re.compile(r"_([a-z0-9])")


class TokenRequestError(AssistantError, ValueError):
    """A mint request this server cannot honour; the message is safe to show the client."""


class TokenRefused(AssistantError):
    """A token that cannot open this connection; the message is the close reason."""


@dataclass(slots=True)
class EphemeralToken:
    """One minted token and what it still allows."""

    name: str
    minted_by: str  # who asked for it: the principal its sessions count against
    uses_left: int | None  # None: no limit
    expire_at: float  # seconds since the epoch
    new_session_expire_at: float
    setup: dict[str, Any] | None  # the constrained setup, camelCase
    locked_fields: frozenset[str] | None  # None: every field of ``setup`` is locked

    def constrain(self, client_setup: dict[str, Any]) -> dict[str, Any]:
        """The setup this token allows, given the one the client sent."""
        if self.setup is None:
            return client_setup
        client = camel_keys(client_setup)
        if self.locked_fields is None:
            constrained = dict(self.setup)
            for name in CLIENT_OWNED_FIELDS & client.keys():
                constrained[name] = client[name]
            return constrained
        constrained = {key: dict(value) if isinstance(value, dict) else value for key, value in client.items()}
        for path in self.locked_fields:
            _set_path(constrained, path, _get_path(self.setup, path))
        return constrained


class TokenStore(Protocol):
    """Where tokens live: in this process now, in Redis once servers share them."""

    def mint(self, request: dict[str, Any], minted_by: str) -> EphemeralToken:
        """A new token from a Gemini ``auth_tokens`` request body; ``TokenRequestError`` if it is wrong."""
        ...

    def find(self, name: str) -> EphemeralToken | None:
        """The token called ``name`` (``auth_tokens/...``), even expired (so refusals can say so), or None."""
        ...

    def redeem(self, name: str, *, resuming: bool) -> EphemeralToken:
        """Spend one use of ``name`` on a new session (none on a resumption); ``TokenRefused`` if it can't."""
        ...


class MemoryTokenStore:
    """Tokens in a dict, at most ``max_tokens`` alive at once; expired ones are dropped as new ones come."""

    def __init__(self, *, max_tokens: int = DEFAULT_MAX_TOKENS, clock: Callable[[], float] = time.time) -> None:
        self.max_tokens = max_tokens
        self.clock = clock
        self._tokens: dict[str, EphemeralToken] = {}
        self._lock = threading.Lock()

    def mint(self, request: dict[str, Any], minted_by: str) -> EphemeralToken:
        now = self.clock()
        token = parse_token_request(request, now, minted_by)
        with self._lock:
            self._drop_expired(now)
            if len(self._tokens) >= self.max_tokens:
                raise TokenRequestError(f"this server holds {self.max_tokens} live tokens already; try again later")
            self._tokens[token.name] = token
        return token

    def find(self, name: str) -> EphemeralToken | None:
        with self._lock:
            return self._tokens.get(name)

    def redeem(self, name: str, *, resuming: bool) -> EphemeralToken:
        now = self.clock()
        with self._lock:
            token = self._tokens.get(name)
            if token is None:
                raise TokenRefused("ephemeral token not valid; ask the server for a new one")
            if now >= token.expire_at:
                del self._tokens[name]
                raise TokenRefused("ephemeral token expired; ask the server for a new one")
            if resuming:
                return token
            if now >= token.new_session_expire_at:
                raise TokenRefused("ephemeral token can no longer start sessions; ask the server for a new one")
            if token.uses_left is not None:
                if token.uses_left <= 0:
                    raise TokenRefused("ephemeral token used up; ask the server for a new one")
                token.uses_left -= 1
            return token

    def __len__(self) -> int:
        return len(self._tokens)

    def _drop_expired(self, now: float) -> None:
        for name in [name for name, token in self._tokens.items() if now >= token.expire_at]:
            del self._tokens[name]


def parse_token_request(body: dict[str, Any], now: float, minted_by: str) -> EphemeralToken:
    """An ``EphemeralToken`` from the JSON the SDKs send to ``auth_tokens``; ``TokenRequestError`` if wrong."""
    known = {"uses", "expireTime", "newSessionExpireTime", "bidiGenerateContentSetup", "fieldMask"}
    body = camel_keys(body)
    unknown = sorted(set(body) - known)
    if unknown:
        raise TokenRequestError(f"unknown field {unknown[0]!r}; expected some of {', '.join(sorted(known))}")
    uses = body.get("uses", DEFAULT_USES)
    if isinstance(uses, str) and uses.isdigit():  # int64 travels as a string in Google's JSON
        uses = int(uses)
    if not isinstance(uses, int) or isinstance(uses, bool) or not 0 <= uses <= MAX_USES:
        raise TokenRequestError(f"uses must be a whole number from 0 (no limit) to {MAX_USES}")
    expire_at = _timestamp(body, "expireTime", now + DEFAULT_EXPIRE_S, now)
    new_session_at = _timestamp(body, "newSessionExpireTime", now + DEFAULT_NEW_SESSION_EXPIRE_S, now)
    setup = body.get("bidiGenerateContentSetup")
    if setup is not None and not isinstance(setup, dict):
        raise TokenRequestError("bidiGenerateContentSetup must be an object (a Live setup)")
    if isinstance(setup, dict) and isinstance(setup.get("setup"), dict):
        setup = setup["setup"]  # the request as the SDK builds it before its own rewrite
    mask = body.get("fieldMask")
    if mask is not None and not isinstance(mask, (str, list)):
        raise TokenRequestError("fieldMask must be a comma-separated string of setup field paths")
    locked = None
    if mask is not None:
        paths = mask.split(",") if isinstance(mask, str) else mask
        if not all(isinstance(path, str) for path in paths):
            raise TokenRequestError("fieldMask must be a comma-separated string of setup field paths")
        locked = frozenset(_camel(path.strip()) for path in paths if path.strip())
    return EphemeralToken(
        name=TOKEN_PREFIX + secrets.token_urlsafe(32),
        minted_by=minted_by,
        uses_left=None if uses == 0 else uses,
        expire_at=expire_at,
        new_session_expire_at=min(new_session_at, expire_at),
        setup=camel_keys(setup) if setup else None,
        locked_fields=locked,
    )


def token_response(token: EphemeralToken) -> dict[str, Any]:
    """The ``AuthToken`` JSON: its ``name`` is the secret clients present."""
    return {
        "name": token.name,
        "expireTime": _iso(token.expire_at),
        "newSessionExpireTime": _iso(token.new_session_expire_at),
    }


def camel_keys(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with the keys of its first two levels in camelCase, as Google's JSON accepts both."""
    return {
        _camel(key): {_camel(k): v for k, v in item.items()} if isinstance(item, dict) else item
        for key, item in value.items()
    }


def _camel(name: str) -> str:
    return ".".join(_SNAKE.sub(lambda match: match.group(1).upper(), part) for part in name.split("."))


def _get_path(value: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _set_path(value: dict[str, Any], path: str, item: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        child = value.get(part)
        if not isinstance(child, dict):
            child = value[part] = {}
        value = child
    if item is None:
        value.pop(last, None)
    else:
        value[last] = item


def _timestamp(body: dict[str, Any], name: str, default: float, now: float) -> float:
    raw = body.get(name)
    if raw is None:
        return default
    try:
        moment = datetime.fromisoformat(raw).timestamp() if isinstance(raw, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise TokenRequestError(f"{name} must be an RFC 3339 time such as 2030-01-01T12:00:00Z")
    if not now < moment <= now + MAX_LIFETIME_S:
        raise TokenRequestError(f"{name} must be in the future and at most {MAX_LIFETIME_S // 3600} hours away")
    return moment


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")
