"""The session manager: one Live conversation per connection.

``Session`` runs the handshake and both directions; ``Backend`` is the seam
the Gemini and local backends implement; ``ServerTools`` is the seam for the
tool registry; ``ResumptionStore`` keeps handles between connections;
``LateResults`` carries a non-blocking tool's later result to whichever
connection holds its conversation by then.
"""

from assistant.session.backend import Backend, BackendError, BackendStream, SessionRequest
from assistant.session.late import LateResultRouter, LateResults
from assistant.session.limits import SessionSettings
from assistant.session.profiles import ProfileResolver, SessionProfile, UnknownProfile
from assistant.session.resumption import (
    DEFAULT_HANDLE_TTL_S,
    MemoryResumptionStore,
    ResumptionStore,
    SavedSession,
    SqliteResumptionStore,
    StoreUnavailable,
)
from assistant.session.session import Session, SessionStats
from assistant.session.tools import NoServerTools, ServerTools, ToolContext
from assistant.session.transport import Transport, TransportClosed

__all__ = [
    "DEFAULT_HANDLE_TTL_S",
    "Backend",
    "BackendError",
    "BackendStream",
    "LateResultRouter",
    "LateResults",
    "MemoryResumptionStore",
    "NoServerTools",
    "ProfileResolver",
    "ResumptionStore",
    "SavedSession",
    "ServerTools",
    "Session",
    "SessionProfile",
    "SessionRequest",
    "SessionSettings",
    "SessionStats",
    "SqliteResumptionStore",
    "StoreUnavailable",
    "ToolContext",
    "Transport",
    "TransportClosed",
    "UnknownProfile",
]
