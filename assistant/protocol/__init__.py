"""The Gemini Live wire protocol as plain, I/O-free code.

``parse_client_message`` and ``client_events`` turn a client frame into typed,
normalised events; ``encode_message`` writes a server message as the service
does. Nothing here touches a socket, so the server, the backends and the tests
share one definition of the protocol.
"""

from assistant.protocol.codec import decode_server_message, encode_message, parse_client_message
from assistant.protocol.errors import CloseCode, ProtocolError, fit_close_reason
from assistant.protocol.events import (
    INPUT_AUDIO_RATE,
    ActivityEnd,
    ActivityStart,
    AudioChunk,
    AudioStreamEnd,
    ClientEvent,
    ClientTurns,
    ContextChange,
    TextInput,
    ToolResponses,
    VideoFrame,
    client_events,
)
from assistant.protocol.models import (
    OUTPUT_AUDIO_RATE,
    Blob,
    ClientMessage,
    Content,
    FunctionCall,
    FunctionDeclaration,
    FunctionResponse,
    Part,
    ServerContent,
    ServerMessage,
    SessionResumptionUpdate,
    Setup,
    SetupComplete,
    Tool,
    Transcription,
    UsageMetadata,
    VoiceActivity,
    VoiceActivityDetectionSignal,
)

__all__ = [
    "INPUT_AUDIO_RATE",
    "OUTPUT_AUDIO_RATE",
    "ActivityEnd",
    "ActivityStart",
    "AudioChunk",
    "AudioStreamEnd",
    "Blob",
    "ClientEvent",
    "ClientMessage",
    "ClientTurns",
    "CloseCode",
    "Content",
    "ContextChange",
    "FunctionCall",
    "FunctionDeclaration",
    "FunctionResponse",
    "Part",
    "ProtocolError",
    "ServerContent",
    "ServerMessage",
    "SessionResumptionUpdate",
    "Setup",
    "SetupComplete",
    "TextInput",
    "Tool",
    "ToolResponses",
    "Transcription",
    "UsageMetadata",
    "VideoFrame",
    "VoiceActivity",
    "VoiceActivityDetectionSignal",
    "client_events",
    "decode_server_message",
    "encode_message",
    "fit_close_reason",
    "parse_client_message",
]
